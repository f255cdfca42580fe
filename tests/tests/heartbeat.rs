//! End-to-end: a client that stops answering pings is dropped, and its disconnect hook
//! runs (with its rooms and the reason), while a client that keeps reading is served;
//! against both adapters.
//!
//! The reference app's disconnect hook logs the client's id, rooms and the reason, so
//! this test binary installs one process-wide subscriber that captures every log line
//! ([`logs::global`]: the server's tasks run on any worker thread).

use std::time::Duration;

use serde_json::json;
use zocket_core::{Server, ServerConfig};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Ended, Harness, RawClient, WAIT, logs};

fn app_with(config: ServerConfig) -> Server<RefCtx> {
    Server::builder(reference::router()).config(config).build()
}

/// Keeps `client` reading (a socket client answers pings while it reads) until `done`;
/// panics if a frame arrives meanwhile or `done` takes longer than [`WAIT`].
async fn reading_until(client: &mut RawClient, done: impl std::future::Future<Output = ()>) {
    tokio::select! {
        () = done => {}
        () = client.no_frame(WAIT) => panic!("not done within {WAIT:?}"),
    }
}

async fn silent_client_is_dropped_and_its_disconnect_hook_runs<H: Harness<Ctx = RefCtx>>() {
    let logs = logs::global();
    let config = ServerConfig::default().heartbeat(zocket_core::Heartbeat::new(
        Duration::from_millis(100),
        Duration::from_millis(300),
    ));
    let app = H::start(app_with(config)).await;
    let mut silent = app.client("userName=silent").await;
    silent
        .ok("rooms.join", json!({"roomId": "quiet-room"}))
        .await;
    silent.event("rooms.joined").await;
    let silent_id = silent.client_id.clone();
    let mut live = app.client("userName=live").await;

    // `silent` stops reading (so it answers no ping); `live` keeps reading, which
    // answers every ping, for the whole time.
    reading_until(
        &mut live,
        app.wait_stats("the silent client dropped", |s| {
            s.heartbeat_timeouts >= 1 && s.connections_open == 1
        }),
    )
    .await;
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
    // several heartbeat periods later (it reads, idle, for five of them).
    live.no_frame(Duration::from_millis(500)).await;
    assert_eq!(
        live.ok("greet", json!({"name": "l"})).await,
        Some(json!("Hello, l!"))
    );
    assert_eq!(app.stats().connections_open, 1);
    assert_eq!(app.stats().heartbeat_timeouts, 1);
}

/// A dead peer usually has data in flight: the server's writes to it are stuck on full
/// TCP buffers. The heartbeat must drop it all the same (and not wait for the kernel to
/// give up on the connection, which takes many minutes).
async fn silent_client_with_stuck_writes_is_dropped<H: Harness<Ctx = RefCtx>>() {
    let config = ServerConfig::default()
        .heartbeat(zocket_core::Heartbeat::new(
            Duration::from_millis(600),
            Duration::from_millis(400),
        ))
        // Room for the 10 MiB below: a dead peer, not a slow consumer (the byte budget).
        .outbound_budget(64 << 20);
    let app = H::start(app_with(config)).await;
    let mut silent =
        RawClient::connect_small_buffer(app.addr().expect("about sockets"), "userName=silent")
            .await;
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
    // The sender keeps reading, so it answers its pings.
    reading_until(
        &mut sender,
        app.wait_stats("the silent client with stuck writes dropped", |s| {
            s.connections_open == 1
        }),
    )
    .await;
    assert_eq!(app.stats().heartbeat_timeouts, 1);
    assert_eq!(app.stats().slow_consumer_closes, 0);
    let (ended, _) = silent.ended().await;
    assert!(matches!(ended, Ended::Dropped(_)), "{ended:?}");
}

zocket_tests::scenarios!(RefCtx;
    all: [],
    sockets: [
        silent_client_is_dropped_and_its_disconnect_hook_runs,
        silent_client_with_stuck_writes_is_dropped,
    ],
);
