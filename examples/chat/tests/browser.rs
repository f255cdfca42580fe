//! The chat example in a real browser (playwright-core driving Debian's headless
//! Chromium; the scripts are in `examples/chat/browser`).
//!
//! - `chat_e2e.mjs` against one `chat` binary on a free port: two pages with different
//!   user names join one room; one types (the other shows the typing indicator) and
//!   sends (the other shows the message); a private message goes the other way; rooms
//!   stay isolated; same-name users are told apart; a rejected message shows its error.
//!   The script asks this test to kill the server (SIGKILL), to stop it (SIGINT) and to
//!   start it again on the same port, and checks that both pages reconnect by
//!   themselves, with the right member lists and their history. Screenshots land in
//!   `target/chat-e2e.png`, `target/chat-e2e-bob.png` and
//!   `target/chat-e2e-reconnecting.png`.
//! - `chat_cluster_e2e.mjs` against two `chat --redis URL` processes (same Redis, same
//!   key prefix, different ports), Alice's page on one and Bob's on the other: member
//!   lists, presence, typing, a room message, a private message and leaving all cross
//!   processes. The screenshot lands in `target/chat-cluster-e2e.png`.
//!
//! Missing prerequisites (Chromium, node, `npm ci --prefix examples/chat/browser`, a
//! Redis) fail the test with the command that installs them; they are never skipped.
//! `.ci/browser-setup.sh` installs the browser parts.

#[path = "../../../zocket-redis/tests/support/redis.rs"]
mod redis_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use zocket_tests::support::process::{Chat, Process, run_command};

/// A bound on a whole browser script: a guard against hanging, not a timing assertion.
const SCRIPT_BOUND: Duration = Duration::from_secs(180);

const CHAT: &str = env!("CARGO_BIN_EXE_chat");

/// `examples/chat/browser`: the scripts and their npm packages.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `target/`, where the screenshots go (CARGO_TARGET_TMPDIR is `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

/// Everything the browser tests need, or a panic that says how to install it.
fn check_prerequisites() {
    let mut missing = Vec::new();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!(
            "{chromium} is missing: install Debian's Chromium with `apt-get install -y chromium`"
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => missing.push(
            "`node` is not on PATH: install Node.js (`apt-get install -y nodejs npm`)".into(),
        ),
    }
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    if !playwright.exists() {
        missing.push(format!(
            "{} is missing: run `npm ci --prefix examples/chat/browser`",
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
async fn control(command: &str, chat: &mut Option<Chat>, addr: &str) -> Result<(), String> {
    match command {
        "kill" => chat.take().ok_or("no server to kill")?.process.kill().await,
        "stop" => {
            let code = chat.take().ok_or("no server to stop")?.interrupt().await;
            if code != Some(0) {
                return Err(format!("chat exited with {code:?} after SIGINT"));
            }
        }
        "start" => {
            if chat.is_some() {
                return Err("the server is running already".into());
            }
            let started = Chat::start(CHAT, &["--addr", addr], &[]).await;
            if started.addr.to_string() != addr {
                return Err(format!("restarted on {} instead of {addr}", started.addr));
            }
            *chat = Some(started);
        }
        other => return Err(format!("unknown control command {other:?}")),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_works_in_headless_chromium_and_survives_server_restarts() {
    check_prerequisites();
    let mut chat = Some(Chat::start(CHAT, &[], &[]).await);
    let (addr, http_url) = chat
        .as_ref()
        .map(|c| (c.addr.to_string(), c.http_url()))
        .unwrap_or_default();
    let screenshot = target_dir().join("chat-e2e.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut node = Process::spawn_with_stdin(
        Command::new("node")
            .arg(browser_dir().join("chat_e2e.mjs"))
            .arg(&http_url)
            .arg(&screenshot),
    );
    // Follow the script's output, carrying out its control commands, until it exits.
    let deadline = tokio::time::Instant::now() + SCRIPT_BOUND;
    let mut stdout_text = String::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(line) = node.line_within(left).await else {
            break;
        };
        println!("{line}");
        stdout_text.push_str(&line);
        stdout_text.push('\n');
        if let Some(command) = line.strip_prefix("e2e: control: ") {
            let answer = match control(command.trim(), &mut chat, &addr).await {
                Ok(()) => "done".to_owned(),
                Err(e) => format!("failed: {e}"),
            };
            // The script may have died meanwhile: its exit status tells.
            let _ = node.write_line(&answer).await;
        }
    }
    assert!(
        tokio::time::Instant::now() < deadline,
        "the browser script did not finish within {SCRIPT_BOUND:?}:\n{stdout_text}"
    );
    node.close_stdin();
    let code = node.exit_code().await;
    let stderr_text = node.log.text();
    eprintln!("{stderr_text}");
    let server_log = chat
        .as_ref()
        .map(|c| c.process.log.text())
        .unwrap_or_default();
    assert_eq!(
        code,
        Some(0),
        "browser e2e failed:\n--- stdout\n{stdout_text}\n--- stderr\n{stderr_text}\n--- server log\n{server_log}"
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
    let chat = chat.take().expect("the server runs at the end");
    assert_eq!(chat.interrupt().await, Some(0), "exit code after SIGINT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_across_two_processes_in_headless_chromium() {
    check_prerequisites();
    let redis = redis_support::shared();
    let prefix = redis_support::unique_prefix("chat-browser");
    let env = [("ZOCKET_REDIS_PREFIX", prefix.as_str())];
    let a = Chat::start(CHAT, &["--redis", redis], &env).await;
    let b = Chat::start(CHAT, &["--redis", redis], &env).await;
    assert_ne!(a.addr, b.addr);
    let screenshot = target_dir().join("chat-cluster-e2e.png");
    let _ = std::fs::remove_file(&screenshot);

    let (code, stdout, stderr) = run_command(
        Command::new("node")
            .arg(browser_dir().join("chat_cluster_e2e.mjs"))
            .arg(a.http_url())
            .arg(b.http_url())
            .arg(&screenshot),
        SCRIPT_BOUND,
    )
    .await;
    println!("{stdout}");
    eprintln!("{stderr}");
    assert_eq!(
        code,
        Some(0),
        "browser e2e failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- log A\n{}\n--- log B\n{}",
        a.process.log.text(),
        b.process.log.text()
    );
    for step in [
        "both member lists show Alice and Bob across processes",
        "Alice saw Bob join on the other process",
        "Alice sees that Bob is typing on the other process",
        "Alice's page shows Bob's message once",
        "Bob received Alice's private message across processes",
        "Bob's leave crossed processes and rooms stay isolated",
        "e2e: OK",
    ] {
        assert!(stdout.contains(step), "missing step {step:?} in:\n{stdout}");
    }
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    for p in [a, b] {
        assert_eq!(p.interrupt().await, Some(0), "exit code after SIGINT");
    }
}
