//! End-to-end tests of the real `reference` binary (REFERENCE_APP.md's command line):
//! the first stdout line, both adapters serving the same app at `/`, SIGTERM as a
//! graceful shutdown (in-flight reply, then 1001, exit code 0), and the refusals of
//! the command line.

use std::net::SocketAddr;

use serde_json::json;
use zocket_tests::support::process::{Process, run_to_end};
use zocket_tests::support::{Ended, RawClient, http};

/// `reference ARGS`, started; its first stdout line and the address in it.
async fn start(args: &[&str]) -> (Process, String, SocketAddr) {
    let mut process = Process::spawn(
        env!("CARGO_BIN_EXE_reference"),
        args,
        &[("RUST_LOG", "info")],
    );
    let (first_line, addr) = process.addr_line("listening on ws://", "/").await;
    (process, first_line, addr)
}

async fn serves_the_reference_app_and_stops_on_sigterm(adapter: &str) {
    let (mut process, first_line, addr) =
        start(&["--addr", "127.0.0.1:0", "--adapter", adapter]).await;
    assert_eq!(first_line, format!("listening on ws://{addr}/"));
    assert_ne!(addr.port(), 0, "the real bound port is printed");

    let mut a = RawClient::connect(addr, "userName=ada").await;
    let mut b = RawClient::connect(addr, "userName=bob&userRole=admin").await;
    assert_eq!(
        a.ok("greet", json!({"name": "Ada"})).await,
        Some(json!("Hello, Ada!"))
    );
    b.ok("rooms.join", json!({"roomId": "r"})).await;
    b.event("rooms.joined").await;
    a.ok("chat.room", json!({"roomId": "r", "message": "hi"}))
        .await;
    assert_eq!(b.event("chat.room").await["from"], "ada");
    let answer = http::upgrade(addr, "/?userRole=nobody").await;
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
    let (mut process, _, addr) = start(&["--addr=127.0.0.1:0"]).await;
    let mut a = RawClient::connect(addr, "").await;
    assert_eq!(
        a.ok("connection.getClientId", json!({})).await,
        Some(json!({"clientId": a.client_id}))
    );
    process.signal("-INT");
    assert_eq!(a.close_code().await, 1001);
    assert_eq!(process.exit_code().await, Some(0));
}

/// Runs the binary to completion; returns (exit code, stdout, stderr).
async fn run(args: &[&str]) -> (Option<i32>, String, String) {
    run_to_end(env!("CARGO_BIN_EXE_reference"), args, &[]).await
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
        run(&["--addr", "127.0.0.1:0", "--redis", &url, "--node", "n1"]).await;
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(!stdout.contains("listening"), "it must not serve: {stdout}");
    assert!(stderr.contains("redis unreachable at startup"), "{stderr}");
}

#[tokio::test]
async fn bad_command_lines_exit_2_and_say_what_is_wrong() {
    for args in [
        &["--adapter", "actix"][..],
        &["--addr", "nowhere"][..],
        &["--verbose"][..],
    ] {
        let (code, stdout, stderr) = run(args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        // clap's message: what is wrong, and where the usage is.
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("'--help'"), "{args:?}: {stderr}");
    }
    let (code, stdout, _) = run(&["--help"]).await;
    assert_eq!(code, Some(0));
    for flag in [
        "--addr <HOST:PORT>",
        "--adapter <ADAPTER>",
        "- warp: ",
        "- hyper: ",
        "--redis <URL>",
        "--node <NAME>",
        "--metrics <HOST:PORT>",
        "--max-connections <N>",
        "--max-connections-per-ip <N>",
    ] {
        assert!(stdout.contains(flag), "{flag}: {stdout}");
    }
}

#[tokio::test]
async fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = run(&["--addr", &addr]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    // Keep the port taken until the end.
    drop(taken);
}
