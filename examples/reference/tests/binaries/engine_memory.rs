//! A client that pings and never reads is closed, and the memory of the server (the
//! `reference` binary as a child process, its `VmRSS`) stays bounded; both adapters.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zocket_tests::support::process::Process;
use zocket_tests::support::{RawClient, WAIT, http};

/// The resident set size of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// A raw TCP WebSocket client: the upgrade, then the `__welcome` frame.
async fn raw_connect(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = http::upgrade_request("GET /?userName=pinger HTTP/1.1", &[]);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !seen.windows(9).any(|w| w == b"__welcome") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("the welcome in time")
            .unwrap();
        assert!(n > 0, "closed before __welcome: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101"), "{seen:?}");
    stream
}

/// A masked client ping with the largest payload a control frame may carry (125 bytes),
/// so that every pong owed costs the server as much as possible.
fn ping_frame() -> Vec<u8> {
    let mut frame = vec![0x89, 0x80 | 125, 0x12, 0x34, 0x56, 0x78];
    frame.resize(6 + 125, b'p');
    frame
}
/// The server's RSS may grow by at most this much under the flood (before the fix it
/// grew by about 120 MB per million such pings, without bound).
const RSS_BOUND: u64 = 64 << 20;
/// A bound on the whole flood, far above the heartbeat's 25 s + 20 s: not a timing
/// assertion, a guard against hanging.
const FLOOD_BOUND: Duration = Duration::from_secs(180);

async fn never_reading_pinger_is_closed_and_memory_stays_bounded(adapter: &str) {
    let mut server = Process::spawn(
        env!("CARGO_BIN_EXE_reference"),
        &["--addr", "127.0.0.1:0", "--adapter", adapter],
        &[("RUST_LOG", "warn")],
    );
    let (_, addr) = server.addr_line("listening on ws://", "/").await;
    let pid = server.pid();
    let mut stream = raw_connect(addr).await;
    let before = rss(pid);
    // The server's RSS, sampled each time it has taken another chunk of pings.
    let mut peak = before;

    let ping = ping_frame();
    let chunk: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    let mut sent = 0u64;
    let flood = async {
        // Never reads. The writes fail once the server has dropped the connection.
        while stream.write_all(&chunk).await.is_ok() {
            sent += 1000;
            peak = peak.max(rss(pid));
        }
    };
    tokio::time::timeout(FLOOD_BOUND, flood)
        .await
        .unwrap_or_else(|_| panic!("the pinger was not closed within {FLOOD_BOUND:?}"));
    let peak = peak.max(rss(pid));
    let growth = peak.saturating_sub(before);
    assert!(
        growth < RSS_BOUND,
        "server RSS grew by {} KiB under {sent} pings",
        growth / 1024
    );
    assert!(sent > 0, "no ping was sent");
    println!(
        "{adapter}: {sent} pings sent before the close; server RSS {} KiB before, peak growth {} KiB",
        before / 1024,
        growth / 1024
    );

    // The server lives on.
    let mut client = RawClient::connect(addr, "userName=after").await;
    assert_eq!(
        client.ok("greet", json!({"name": "a"})).await,
        Some(json!("Hello, a!"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_never_reading_pinger_is_closed_and_memory_stays_bounded() {
    never_reading_pinger_is_closed_and_memory_stays_bounded("warp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_never_reading_pinger_is_closed_and_memory_stays_bounded() {
    never_reading_pinger_is_closed_and_memory_stays_bounded("hyper").await;
}
