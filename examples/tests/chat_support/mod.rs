//! Shared by the chat tests that run the real `chat` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `chat` binary, started on a free port; killed on drop if still running.
pub struct ChatProcess {
    child: Option<Child>,
    /// The first stdout line, as printed.
    pub first_line: String,
    /// `http://127.0.0.1:PORT/`
    pub http_url: String,
    /// `ws://127.0.0.1:PORT/ws`
    pub ws_url: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Where the binary's stderr (its logs) goes.
    pub log: PathBuf,
}

impl ChatProcess {
    /// Start `chat --addr 127.0.0.1:0` and read where it listens from its first line.
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// Like [`start`](Self::start), with more arguments and environment variables.
    pub fn start_with(extra_args: &[&str], envs: &[(&str, &str)]) -> Self {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "chat-{}-{}.log",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let log_file = std::fs::File::create(&log).expect("create the chat log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(["--addr", "127.0.0.1:0"])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start the chat binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the binary never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut process = Self {
            child: Some(child),
            first_line: String::new(),
            http_url: String::new(),
            ws_url: String::new(),
            addr: String::new(),
            log,
        };
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) => line,
            other => panic!(
                "chat printed no first line within 60 s ({other:?}); its log: {}",
                process.log_text()
            ),
        };
        let line = line.trim_end().to_owned();
        // chat on http://127.0.0.1:PORT/ (WebSocket ws://127.0.0.1:PORT/ws)
        let parsed = line
            .strip_prefix("chat on http://")
            .and_then(|rest| rest.split_once("/ (WebSocket ws://"))
            .and_then(|(addr, ws)| Some((addr, ws.strip_suffix("/ws)")?)));
        let Some((addr, ws_addr)) = parsed else {
            panic!(
                "unexpected first line {line:?}; its log: {}",
                process.log_text()
            );
        };
        assert_eq!(addr, ws_addr, "page and WebSocket on the same port: {line}");
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "a real port: {line}"
        );
        process.http_url = format!("http://{addr}/");
        process.ws_url = format!("ws://{addr}/ws");
        process.addr = addr.to_owned();
        process.first_line = line;
        process
    }

    /// The binary's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Send SIGINT (what Ctrl-C sends) and wait for the exit.
    pub fn interrupt_and_wait(mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chat did not exit within {within:?} after SIGINT; its log: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Wait for a child with piped stdout/stderr, killing it (and failing) past `within`.
pub fn wait_with_timeout(mut child: Child, within: Duration) -> Output {
    fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    }
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
            let stderr = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
            panic!(
                "timed out after {within:?}:\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default(),
        stderr: err
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default(),
    }
}
