//! The chat example in a real browser: starts the `chat` binary on a free port and runs
//! `examples/browser/chat_e2e.mjs` (playwright-core driving Debian's headless Chromium)
//! against it. Two pages with different user names join one room; one types (the other
//! shows the typing indicator) and sends (the other shows the message); a private
//! message goes the other way; rooms stay isolated; same-name users are told apart; a
//! rejected message shows its error. The script asks this test to kill the server
//! (SIGKILL), to stop it (SIGINT) and to start it again on the same port, and checks that
//! both pages reconnect by themselves, with the right member lists and their history.
//! Screenshots land in `target/chat-e2e.png`, `target/chat-e2e-bob.png` and
//! `target/chat-e2e-reconnecting.png`.
//!
//! Missing prerequisites fail the test with the command that installs them; they are
//! never skipped. `.ci/browser-setup.sh` installs both.

mod chat_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chat_support::ChatProcess;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Everything the browser test needs, or a panic that says how to install it.
fn check_prerequisites(root: &Path) {
    let mut missing = Vec::new();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!(
            "{chromium} is missing: install Debian's Chromium with `apt-get install -y chromium`"
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => missing.push(
            "`node` is not on PATH: install Node.js (`apt-get install -y nodejs npm`)".into(),
        ),
    }
    let playwright = root.join("examples/browser/node_modules/playwright-core/package.json");
    if !playwright.exists() {
        missing.push(format!(
            "{} is missing: run `npm ci --prefix examples/browser`",
            playwright.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the browser test cannot run:\n  - {}\n(or run `bash .ci/browser-setup.sh`, which installs both)",
        missing.join("\n  - ")
    );
}

/// What the script prints and the test does for it: `e2e: control: kill|stop|start`.
fn control(command: &str, chat: &mut Option<ChatProcess>, addr: &str) -> Result<(), String> {
    match command {
        "kill" => chat.take().ok_or("no server to kill")?.kill(),
        "stop" => {
            let status = chat
                .take()
                .ok_or("no server to stop")?
                .interrupt_and_wait(Duration::from_secs(20));
            if !status.success() {
                return Err(format!("chat exited with {status} after SIGINT"));
            }
        }
        "start" => {
            if chat.is_some() {
                return Err("the server is running already".into());
            }
            let started = ChatProcess::start_at(addr);
            if started.addr != addr {
                return Err(format!("restarted on {} instead of {addr}", started.addr));
            }
            *chat = Some(started);
        }
        other => return Err(format!("unknown control command {other:?}")),
    }
    Ok(())
}

#[test]
fn chat_works_in_headless_chromium_and_survives_server_restarts() {
    let root = workspace_root();
    check_prerequisites(&root);

    let mut chat = Some(ChatProcess::start());
    let addr = chat.as_ref().map(|c| c.addr.clone()).unwrap_or_default();
    let http_url = chat
        .as_ref()
        .map(|c| c.http_url.clone())
        .unwrap_or_default();
    let screenshot = target_dir().join("chat-e2e.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut child = Command::new("node")
        .arg(root.join("examples/browser/chat_e2e.mjs"))
        .arg(&http_url)
        .arg(&screenshot)
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });

    // Follow the script's output, carrying out its control commands, until it exits.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut stdout_text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                println!("{line}");
                stdout_text.push_str(&line);
                stdout_text.push('\n');
                if let Some(command) = line.strip_prefix("e2e: control: ") {
                    let answer = match control(command.trim(), &mut chat, &addr) {
                        Ok(()) => "done".to_owned(),
                        Err(e) => format!("failed: {e}"),
                    };
                    // The script may have died meanwhile: its exit status tells.
                    let _ = writeln!(stdin, "{answer}");
                    let _ = stdin.flush();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the browser script did not finish within 180 s:\n{stdout_text}");
            }
        }
    }
    drop(stdin);
    let status = child.wait().expect("wait for node");
    let stderr_text = err_thread.join().unwrap_or_default();
    eprintln!("{stderr_text}");
    let server_log = chat.as_ref().map(ChatProcess::log_text).unwrap_or_default();
    assert!(
        status.success(),
        "browser e2e failed ({status}):\n--- stdout\n{stdout_text}\n--- stderr\n{stderr_text}\n--- server log\n{server_log}"
    );
    for step in [
        "Alice sees that Bob is typing",
        "Alice's page shows:",
        "Hello from Bob!",
        "Bob received Alice's private message",
        "rooms are isolated",
        "joining the room one is in keeps the history",
        "same-name users are distinguished",
        "a rejected message shows: Not sent:",
        "restart 1 (kill): both pages reconnected by themselves",
        "restart 2 (stop): both pages reconnected by themselves",
        "a reload keeps the name, the room and the history",
        "e2e: OK",
    ] {
        assert!(
            stdout_text.contains(step),
            "missing step {step:?} in:\n{stdout_text}"
        );
    }
    for shot in [
        screenshot.clone(),
        target_dir().join("chat-e2e-bob.png"),
        target_dir().join("chat-e2e-reconnecting.png"),
    ] {
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            shot.display()
        );
    }

    // Ctrl-C: graceful shutdown, exit code 0.
    let status = chat
        .take()
        .expect("the server runs at the end")
        .interrupt_and_wait(Duration::from_secs(20));
    assert!(status.success(), "chat exited with {status} after SIGINT");
}
