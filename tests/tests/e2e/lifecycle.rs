//! The connection lifecycle: a client that never reads is cut off (1013) while others are served, and the graceful shutdown (in-flight calls answered, then 1001).
//!
//! Each scenario is written once against [`Harness`] and runs in-process, on
//! `zocket-warp` and on `zocket-hyper` (test names `in_process::*`, `warp::*`,
//! `hyper::*`; the ones about sockets only on the two adapters).

use std::time::Duration;

use serde_json::json;
use zocket_core::{Server, ServerConfig};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Ended, Harness, RawClient, WAIT};

fn app() -> Server<RefCtx> {
    Server::new(reference::router())
}

fn app_with(config: ServerConfig) -> Server<RefCtx> {
    Server::builder(reference::router()).config(config).build()
}

async fn shutdown_closes_1001_after_in_flight_calls<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut idle = app.client("userName=idle").await;
    let slow = a.send_rpc("slow.sleep", Some(json!({"ms": 400}))).await;
    // Once the greet is answered, the sleep was read and started before it.
    assert_eq!(
        a.ok("greet", json!({"name": "x"})).await,
        Some(json!("Hello, x!"))
    );

    // The in-flight reply arrives, then the close; the shutdown completes.
    let server = app.server().clone();
    let shutdown = async {
        tokio::time::timeout(WAIT * 2, server.shutdown())
            .await
            .expect("the shutdown completes")
    };
    let ((), (ended, frames), idle_code) = tokio::join!(shutdown, a.ended(), idle.close_code());
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["rpcId"], slow);
    assert_eq!(frames[0]["payload"], 400);
    assert_eq!(ended, Ended::Close(1001, "server shutting down".into()));
    assert_eq!(idle_code, 1001);
    assert_eq!(app.stats().connections_open, 0);
    assert!(app.server().is_shutting_down());

    // No new connection is served.
    match app.addr() {
        Some(addr) => {
            let refused = tokio::time::timeout(
                WAIT,
                tokio_tungstenite::connect_async(format!("ws://{addr}/")),
            )
            .await
            .expect("an answer in time");
            assert!(
                refused.is_err(),
                "a connection after the shutdown was accepted"
            );
        }
        None => assert_eq!(app.refused("").await.status, 503),
    }
}

async fn client_that_never_reads_is_cut_off_1013<H: Harness<Ctx = RefCtx>>() {
    // The byte budget (default 1 MiB) cuts the slow client off; a tiny frame cap would
    // also cut off a reader that lags a few frames behind on a loaded machine.
    let config = ServerConfig::default()
        .heartbeat(zocket_core::Heartbeat::disabled())
        .close_timeout(Duration::from_secs(30));
    let app = H::start(app_with(config)).await;
    let addr = app.addr().expect("about sockets");
    let mut slow = RawClient::connect_small_buffer(addr, "userName=slow").await;
    let mut reader = app.client("userName=reader").await;
    let mut sender = app.client("userName=sender").await;
    for client in [&mut slow, &mut reader] {
        client.ok("rooms.join", json!({"roomId": "firehose"})).await;
    }
    slow.event("rooms.joined").await;
    slow.event("rooms.joined").await;
    reader.event("rooms.joined").await;

    // The reader reads every tick in a task of its own until the last one.
    let reading = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let tick = reader.event("bench.tick").await;
            seqs.push(tick["seq"].as_u64().unwrap());
            if tick["last"] == true {
                return (seqs, reader);
            }
        }
    });

    // `slow` reads nothing from now on. Send big ticks until its queue overflows.
    let pad = "p".repeat(32 * 1024);
    let mut seq = 0u64;
    while app.stats().slow_consumer_closes == 0 {
        assert!(
            seq < 20_000,
            "the slow client was never cut off: {:?}",
            app.stats()
        );
        sender
            .ok(
                "bench.fanout",
                json!({"roomId": "firehose", "seq": seq, "pad": pad}),
            )
            .await;
        seq += 1;
    }
    assert_eq!(app.stats().slow_consumer_closes, 1);
    // Others keep receiving: more ticks after the cut, then the last one.
    for _ in 0..20 {
        sender
            .ok("bench.fanout", json!({"roomId": "firehose", "seq": seq}))
            .await;
        seq += 1;
    }
    sender
        .ok(
            "bench.fanout",
            json!({"roomId": "firehose", "seq": seq, "last": true}),
        )
        .await;
    let (seqs, mut reader) = tokio::time::timeout(WAIT * 3, reading)
        .await
        .expect("the reader gets every tick")
        .unwrap();
    assert_eq!(seqs, (0..=seq).collect::<Vec<_>>(), "every tick, in order");
    assert_eq!(
        reader.ok("greet", json!({"name": "r"})).await,
        Some(json!("Hello, r!"))
    );

    // The slow client, reading at last, finds what got through and then a 1013.
    let (ended, frames) = slow.ended().await;
    assert_eq!(
        ended,
        Ended::Close(1013, "slow consumer: outbound queue full".into())
    );
    assert!(frames.len() < seq as usize, "it did not get everything");
    assert!(frames.iter().all(|f| f["type"] == "bench.tick"));
    // The server now waits for the client's close frame (or the close timeout) before it
    // drops the connection (RFC 6455 closing handshake); this client just goes away.
    drop(slow);
    app.wait_stats("the slow client's connection ends", |s| {
        s.connections_open == 2
    })
    .await;
}

zocket_tests::scenarios!(RefCtx;
    all: [shutdown_closes_1001_after_in_flight_calls],
    sockets: [client_that_never_reads_is_cut_off_1013],
);
