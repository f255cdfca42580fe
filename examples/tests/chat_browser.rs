//! The chat example in a real browser: starts the `chat` binary on a free port and runs
//! `examples/browser/chat_e2e.mjs` (playwright-core driving Debian's headless Chromium)
//! against it. Two pages with different user names join one room; one types (the other
//! shows the typing indicator) and sends (the other shows the message); a private
//! message goes the other way; rooms stay isolated. Screenshots land in
//! `target/chat-e2e.png` and `target/chat-e2e-bob.png`.
//!
//! Missing prerequisites fail the test with the command that installs them; they are
//! never skipped. `.ci/browser-setup.sh` installs both.

mod chat_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chat_support::{ChatProcess, wait_with_timeout};

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

#[test]
fn chat_works_in_headless_chromium() {
    let root = workspace_root();
    check_prerequisites(&root);

    let chat = ChatProcess::start();
    let screenshot = target_dir().join("chat-e2e.png");
    let _ = std::fs::remove_file(&screenshot);

    let child = Command::new("node")
        .arg(root.join("examples/browser/chat_e2e.mjs"))
        .arg(&chat.http_url)
        .arg(&screenshot)
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let out = wait_with_timeout(child, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser e2e failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    for step in [
        "Alice sees that Bob is typing",
        "Alice's page shows:",
        "Hello from Bob!",
        "Bob received Alice's private message",
        "rooms are isolated",
        "e2e: OK",
    ] {
        assert!(stdout.contains(step), "missing step {step:?} in:\n{stdout}");
    }
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        screenshot.display()
    );

    // Ctrl-C: graceful shutdown, exit code 0.
    let status = chat.interrupt_and_wait(Duration::from_secs(20));
    assert!(status.success(), "chat exited with {status} after SIGINT");
}
