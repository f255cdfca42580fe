//! End-to-end tests of the real `reference` binary (REFERENCE_APP.md's command line):
//! the first stdout line, both adapters serving the same app at `/`, SIGTERM as a
//! graceful shutdown (in-flight reply, then 1001, exit code 0), and the refusals of
//! the command line.

mod e2e_support;

use std::process::Stdio;

use e2e_support::{Ended, RawClient, WAIT, upgrade_request};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `reference` process; killed on drop if still running.
struct Process {
    child: Child,
    first_line: String,
    addr: std::net::SocketAddr,
}

impl Process {
    async fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reference"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the reference binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first_line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a first line in time")
            .unwrap()
            .expect("a first stdout line");
        let addr = first_line
            .strip_prefix("listening on ws://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("no HOST:PORT in {first_line:?}: {e}"));
        Process {
            child,
            first_line,
            addr,
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(WAIT * 2, self.child.wait())
            .await
            .expect("the process exits in time")
            .unwrap()
            .code()
    }
}

async fn serves_the_reference_app_and_stops_on_sigterm(adapter: &str) {
    let mut process = Process::start(&["--addr", "127.0.0.1:0", "--adapter", adapter]).await;
    assert_eq!(
        process.first_line,
        format!("listening on ws://{}/", process.addr)
    );
    assert_ne!(process.addr.port(), 0, "the real bound port is printed");

    let mut a = RawClient::connect(process.addr, "userName=ada").await;
    let mut b = RawClient::connect(process.addr, "userName=bob&userRole=admin").await;
    assert_eq!(
        a.ok("greet", json!({"name": "Ada"})).await,
        Some(json!("Hello, Ada!"))
    );
    b.ok("rooms.join", json!({"roomId": "r"})).await;
    b.event("rooms.joined").await;
    a.ok("chat.room", json!({"roomId": "r", "message": "hi"}))
        .await;
    assert_eq!(b.event("chat.room").await["from"], "ada");
    let answer = upgrade_request(process.addr, "/?userRole=nobody").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["issues"][0]["path"], "userRole");

    // SIGTERM with a call in flight: its reply, then 1001, then exit code 0.
    let slow = a.send_rpc("slow.sleep", Some(json!({"ms": 300}))).await;
    assert_eq!(
        a.ok("greet", json!({"name": "x"})).await,
        Some(json!("Hello, x!"))
    );
    process.signal("-TERM");
    let (ended, frames) = a.ended().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["rpcId"], slow);
    assert_eq!(frames[0]["payload"], 300);
    assert_eq!(ended, Ended::Close(1001, "server shutting down".into()));
    assert_eq!(b.close_code().await, 1001);
    assert_eq!(process.exit_code().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_binary_serves_and_stops_on_sigterm() {
    serves_the_reference_app_and_stops_on_sigterm("warp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_binary_serves_and_stops_on_sigterm() {
    serves_the_reference_app_and_stops_on_sigterm("hyper").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_adapter_and_sigint() {
    let mut process = Process::start(&["--addr=127.0.0.1:0"]).await;
    let mut a = RawClient::connect(process.addr, "").await;
    assert_eq!(
        a.ok("connection.getClientId", json!({})).await,
        Some(json!({"clientId": a.client_id}))
    );
    process.signal("-INT");
    assert_eq!(a.close_code().await, 1001);
    assert_eq!(process.exit_code().await, Some(0));
}

/// Runs the binary to completion; returns (exit code, stdout, stderr).
async fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let status = tokio::time::timeout(WAIT, async {
        let (_, _, status) = tokio::join!(
            out.read_to_string(&mut stdout),
            err.read_to_string(&mut stderr),
            child.wait()
        );
        status
    })
    .await
    .expect("the process exits by itself")
    .unwrap();
    (status.code(), stdout, stderr)
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_at_startup() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (code, stdout, stderr) =
        run_to_end(&["--addr", "127.0.0.1:0", "--redis", &url, "--node", "n1"]).await;
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(!stdout.contains("listening"), "it must not serve: {stdout}");
    assert!(stderr.contains("redis unreachable at startup"), "{stderr}");
}

#[tokio::test]
async fn bad_command_lines_exit_2_with_the_usage() {
    for args in [
        &["--adapter", "actix"][..],
        &["--addr", "nowhere"][..],
        &["--verbose"][..],
    ] {
        let (code, stdout, stderr) = run_to_end(args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains("usage: reference"), "{args:?}: {stderr}");
    }
    let (code, stdout, _) = run_to_end(&["--help"]).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--adapter warp|hyper"), "{stdout}");
}

#[tokio::test]
async fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = run_to_end(&["--addr", &addr]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    // Keep the port taken until the end.
    drop(taken);
}
