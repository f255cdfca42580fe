//! The chat example across two processes in a real browser: starts two `chat --redis
//! URL` processes (same Redis, same key prefix, different ports) and runs
//! `examples/browser/chat_cluster_e2e.mjs` (playwright-core driving Debian's headless
//! Chromium) with Alice's page on one and Bob's on the other: member lists, presence,
//! typing, a room message, a private message and leaving all cross processes. The
//! screenshot lands in `target/chat-cluster-e2e.png`.
//!
//! Missing prerequisites (Chromium, node, `npm ci --prefix examples/browser`, a Redis)
//! fail the test with the command that installs them; they are never skipped.
//! `.ci/browser-setup.sh` installs the browser parts.

mod chat_support;
#[path = "../../zocket-redis/tests/support/redis.rs"]
mod redis_support;

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

fn prerequisites(root: &Path) {
    let mut missing = Vec::new();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!(
            "{chromium} is missing: install Debian's Chromium with `apt-get install -y chromium`"
        ));
    }
    if !matches!(Command::new("node").arg("--version").output(), Ok(o) if o.status.success()) {
        missing.push(
            "`node` is not on PATH: install Node.js (`apt-get install -y nodejs npm`)".into(),
        );
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
        "the browser test cannot run:\n  - {}\n(or run `bash .ci/browser-setup.sh`)",
        missing.join("\n  - ")
    );
}

#[test]
fn chat_across_two_processes_in_headless_chromium() {
    let root = workspace_root();
    prerequisites(&root);
    let redis = redis_support::shared();
    let prefix = redis_support::unique_prefix("chat-browser");
    let env = [("ZOCKET_REDIS_PREFIX", prefix.as_str())];
    let a = ChatProcess::start_with(&["--redis", redis], &env);
    let b = ChatProcess::start_with(&["--redis", redis], &env);
    assert_ne!(a.http_url, b.http_url);
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target"))
        .join("chat-cluster-e2e.png");
    let _ = std::fs::remove_file(&screenshot);

    let child = Command::new("node")
        .arg(root.join("examples/browser/chat_cluster_e2e.mjs"))
        .arg(&a.http_url)
        .arg(&b.http_url)
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
        "browser e2e failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- log A\n{}\n--- log B\n{}",
        out.status,
        a.log_text(),
        b.log_text()
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
        let status = p.interrupt_and_wait(Duration::from_secs(20));
        assert!(status.success(), "chat exited with {status} after SIGINT");
    }
}
