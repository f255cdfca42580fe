//! Child processes: the example binaries (`reference`, `chat`, `client-demo`) and the
//! browser scripts. Stdout lines arrive on a channel (the first line says where a
//! server listens); stderr (the logs) is collected into [`Lines`] to wait on or show
//! when a test fails. Killed on drop.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::WAIT;
use super::logs::Lines;

/// A running child process; killed on drop if still running.
pub struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    /// Its stderr, line by line.
    pub log: Lines,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Process {
    /// Start `program` with `args` and `envs` (stdin closed, stdout and stderr piped).
    pub fn spawn(program: impl AsRef<OsStr>, args: &[&str], envs: &[(&str, &str)]) -> Process {
        Self::start(
            Command::new(program.as_ref())
                .args(args)
                .envs(envs.iter().copied()),
            false,
        )
    }

    /// Start `command` (its program, arguments, environment and directory as set)
    /// with stdin piped, for [`write_line`](Self::write_line).
    pub fn spawn_with_stdin(command: &mut Command) -> Process {
        Self::start(command, true)
    }

    fn start(command: &mut Command, with_stdin: bool) -> Process {
        let program = command.as_std().get_program().to_owned();
        let mut child = command
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program:?}: {e}"));
        let (tx, stdout) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        tokio::spawn(async move {
            // Keeps draining, so the child never blocks on a full pipe.
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send(line);
            }
        });
        let log = Lines::default();
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                sink.push(line);
            }
        });
        let stdin = child.stdin.take();
        Process {
            child,
            stdin,
            stdout,
            log,
        }
    }

    /// Write one line to the process's stdin (started with
    /// [`spawn_with_stdin`](Self::spawn_with_stdin)); an error if it has exited.
    pub async fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("started with stdin piped");
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await
    }

    /// Close stdin (the process reads its end).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line (bounded by `within`); `None` at the end of stdout or when
    /// nothing came in time.
    pub async fn line_within(&mut self, within: Duration) -> Option<String> {
        tokio::time::timeout(within, self.stdout.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next stdout line; panics (with the log) if none comes within [`WAIT`].
    pub async fn line(&mut self) -> String {
        match self.line_within(WAIT).await {
            Some(line) => line,
            None => panic!(
                "no stdout line within {WAIT:?}; stderr:\n{}",
                self.log.text()
            ),
        }
    }

    /// The next stdout line must be `PREFIX ADDR SUFFIX`: returns the address.
    pub async fn addr_line(&mut self, prefix: &str, suffix: &str) -> (String, SocketAddr) {
        let line = self.line().await;
        let addr = line
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .unwrap_or_else(|| panic!("expected `{prefix}HOST:PORT{suffix}`, got {line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("no HOST:PORT in {line:?}: {e}"));
        (line, addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Send a signal (`-TERM`, `-INT`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Wait for the exit (bounded by twice [`WAIT`]); its code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        match tokio::time::timeout(WAIT * 2, self.child.wait()).await {
            Ok(status) => status.unwrap().code(),
            Err(_) => panic!(
                "the process did not exit within {:?}; stderr:\n{}",
                WAIT * 2,
                self.log.text()
            ),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: the process dies at once, its sockets are reset without close frames.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The `chat` example binary, started on a free port (or the one given).
#[derive(Debug)]
pub struct Chat {
    /// The process (its stderr: the chat's log).
    pub process: Process,
    /// The first stdout line, as printed.
    pub first_line: String,
    /// `127.0.0.1:PORT`, the page's and the WebSocket's.
    pub addr: SocketAddr,
    /// `127.0.0.1:PORT` of the metrics endpoint, when started with `--metrics`.
    pub metrics_addr: Option<SocketAddr>,
}

impl Chat {
    /// Start the `chat` binary at `bin` with `--addr 127.0.0.1:0` and then `args`
    /// (a later `--addr` wins), and read where it listens from its first line
    /// `chat on http://ADDR/ (WebSocket ws://ADDR/ws)`; with `--metrics`, from the
    /// second line too.
    pub async fn start(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Chat {
        let mut all = vec!["--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut envs = envs.to_vec();
        envs.push(("RUST_LOG", "info"));
        let mut process = Process::spawn(bin, &all, &envs);
        let first_line = process.line().await;
        let parsed = first_line
            .strip_prefix("chat on http://")
            .and_then(|rest| rest.split_once("/ (WebSocket ws://"))
            .and_then(|(page, ws)| Some((page, ws.strip_suffix("/ws)")?)));
        let Some((page, ws)) = parsed else {
            panic!("unexpected first line {first_line:?}")
        };
        assert_eq!(
            page, ws,
            "page and WebSocket on the same port: {first_line}"
        );
        let addr: SocketAddr = page
            .parse()
            .unwrap_or_else(|e| panic!("no HOST:PORT in {first_line:?}: {e}"));
        assert_ne!(addr.port(), 0, "a real port: {first_line}");
        let metrics_addr = if args.iter().any(|a| a.starts_with("--metrics")) {
            Some(process.addr_line("metrics on http://", "/metrics").await.1)
        } else {
            None
        };
        Chat {
            process,
            first_line,
            addr,
            metrics_addr,
        }
    }

    /// `http://ADDR/`
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `ws://ADDR/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGINT (what Ctrl-C sends), then the exit code.
    pub async fn interrupt(mut self) -> Option<i32> {
        self.process.signal("-INT");
        self.process.exit_code().await
    }
}

/// Run `program` to its end (bounded by [`WAIT`]): exit code, stdout, stderr.
pub async fn run_to_end(
    program: impl AsRef<OsStr>,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    run_command(
        Command::new(program).args(args).envs(envs.iter().copied()),
        WAIT,
    )
    .await
}

/// Run `command` to its end (stdin closed), bounded by `within`: exit code, stdout,
/// stderr.
pub async fn run_command(command: &mut Command, within: Duration) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.as_std().get_program()));
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let status = tokio::time::timeout(within, async {
        let (_, _, status) = tokio::join!(
            out.read_to_string(&mut stdout),
            err.read_to_string(&mut stderr),
            child.wait()
        );
        status
    })
    .await
    .unwrap_or_else(|_| panic!("the process did not exit within {within:?}"))
    .unwrap();
    (status.code(), stdout, stderr)
}
