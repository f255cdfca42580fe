//! End-to-end: a client that stops answering pings is dropped, and its disconnect hook
//! runs (with its rooms and the reason), while a client that keeps reading is served;
//! against both adapters.
//!
//! The reference app's disconnect hook logs the client's id, rooms and the reason, so
//! this test binary installs one process-wide subscriber that captures every log line
//! (a process-wide one, because the server's tasks run on any worker thread).

mod e2e_support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use e2e_support::{Adapter, Ended, RawClient, RefServer, WAIT};
use serde_json::json;
use zocket_core::ServerConfig;

/// Every log line of this process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line that contains every needle (waits for it, bounded by [`WAIT`]).
    async fn wait_for_line(&self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {needles:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The process-wide capture, installed once.
fn logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
        logs
    })
    .clone()
}

async fn silent_client_is_dropped_and_its_disconnect_hook_runs(adapter: Adapter) {
    let logs = logs();
    let config = ServerConfig::default().heartbeat(zocket_core::Heartbeat::new(
        Duration::from_millis(100),
        Duration::from_millis(300),
    ));
    let app = RefServer::start_with(adapter, config).await;
    let mut silent = app.client("userName=silent").await;
    silent
        .ok("rooms.join", json!({"roomId": "quiet-room"}))
        .await;
    silent.event("rooms.joined").await;
    let silent_id = silent.client_id.clone();
    let mut live = app.client("userName=live").await;

    // `silent` stops reading (so it answers no ping); `live` keeps reading, which
    // answers every ping, for the whole time.
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.stats().heartbeat_timeouts == 0 || app.stats().connections_open != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent client was never dropped: {:?}",
            app.stats()
        );
        assert_eq!(
            live.ok("greet", json!({"name": "l"})).await,
            Some(json!("Hello, l!"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.stats().heartbeat_timeouts, 1, "only the silent client");
    // The hook ran, for that client, with its rooms and the reason.
    let line = logs
        .wait_for_line(&["client disconnected", &silent_id])
        .await;
    assert!(line.contains("quiet-room"), "{line}");
    assert!(line.contains("HeartbeatTimeout"), "{line}");

    // The server drops it without a close frame.
    let (ended, _) = silent.ended().await;
    assert!(matches!(ended, Ended::Dropped(_)), "{ended:?}");
    // The live client, which keeps reading (and so answering pings), is still served
    // several heartbeat periods later.
    for _ in 0..25 {
        assert_eq!(
            live.ok("greet", json!({"name": "l"})).await,
            Some(json!("Hello, l!"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.stats().connections_open, 1);
    assert_eq!(app.stats().heartbeat_timeouts, 1);
}

/// A dead peer usually has data in flight: the server's writes to it are stuck on full
/// TCP buffers. The heartbeat must drop it all the same (and not wait for the kernel to
/// give up on the connection, which takes many minutes).
async fn silent_client_with_stuck_writes_is_dropped(adapter: Adapter) {
    let config = ServerConfig::default()
        .heartbeat(zocket_core::Heartbeat::new(
            Duration::from_millis(600),
            Duration::from_millis(400),
        ))
        // Room for the 10 MiB below: a dead peer, not a slow consumer (the byte budget).
        .outbound_budget(64 << 20);
    let app = RefServer::start_with(adapter, config).await;
    let mut silent = RawClient::connect_small_buffer(app.addr, "userName=silent").await;
    silent.ok("rooms.join", json!({"roomId": "feed"})).await;
    silent.event("rooms.joined").await;
    let mut sender = app.client("userName=sender").await;

    // At once, far more than the socket buffers hold (so the server's writes to the
    // silent client are stuck before its first ping is due), far less than the
    // outbound budget (so this is not a slow-consumer close).
    let pad = "p".repeat(256 * 1024);
    sender
        .send_all((0..40).map(|seq| {
            json!({"type": "bench.fanout", "payload": {"roomId": "feed", "seq": seq, "pad": pad}, "rpcId": format!("f{seq}")})
        }))
        .await;
    for seq in 0..40 {
        let reply = sender.reply(&format!("f{seq}")).await;
        assert_eq!(reply["type"], "__rpc_res", "{reply}");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.stats().connections_open != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent client with stuck writes was never dropped: {:?}",
            app.stats()
        );
        // The sender keeps reading, so it answers its pings.
        sender.ok("greet", json!({"name": "s"})).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.stats().heartbeat_timeouts, 1);
    assert_eq!(app.stats().slow_consumer_closes, 0);
    let (ended, _) = silent.ended().await;
    assert!(matches!(ended, Ended::Dropped(_)), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_silent_client_with_stuck_writes_is_dropped() {
    silent_client_with_stuck_writes_is_dropped(Adapter::Warp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_silent_client_with_stuck_writes_is_dropped() {
    silent_client_with_stuck_writes_is_dropped(Adapter::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_silent_client_is_dropped_and_its_disconnect_hook_runs() {
    silent_client_is_dropped_and_its_disconnect_hook_runs(Adapter::Warp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_silent_client_is_dropped_and_its_disconnect_hook_runs() {
    silent_client_is_dropped_and_its_disconnect_hook_runs(Adapter::Hyper).await;
}
