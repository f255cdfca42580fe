//! The client against a fake Zocket server over real sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{FakeServer, Log, Mode, eventually};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zocket_client::{
    Client, ClientError, ConnectError, ConnectionState, Event, Heartbeat, Message, Reconnect,
};

const WAIT: Duration = Duration::from_secs(10);

// ---- contract ----

#[derive(Debug, Serialize, Deserialize)]
struct GreetIn {
    name: String,
}
enum Greet {}
impl Message for Greet {
    const NAME: &'static str = "greet";
    type Input = GreetIn;
    type Output = String;
}

enum Log_ {}
impl Message for Log_ {
    const NAME: &'static str = "log";
    type Input = String;
    type Output = ();
}

enum NullOutput {}
impl Message for NullOutput {
    const NAME: &'static str = "null.output";
    type Input = ();
    type Output = Option<u32>;
}

enum FailError {}
impl Message for FailError {
    const NAME: &'static str = "fail.error";
    type Input = Value;
    type Output = ();
}

enum Missing {}
impl Message for Missing {
    const NAME: &'static str = "no.such.message";
    type Input = ();
    type Output = ();
}

#[derive(Debug, Serialize, Deserialize)]
struct SleepIn {
    ms: u64,
}
enum Sleep {}
impl Message for Sleep {
    const NAME: &'static str = "slow.sleep";
    type Input = SleepIn;
    type Output = u64;
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Shuffle {
    n: u64,
    tag: String,
}
enum EchoShuffle {}
impl Message for EchoShuffle {
    const NAME: &'static str = "echo.shuffle";
    type Input = Shuffle;
    type Output = Shuffle;
}

#[derive(Debug, Serialize, Deserialize)]
struct Ev {
    #[serde(rename = "type")]
    kind: String,
    payload: Value,
}
enum EmitEvents {}
impl Message for EmitEvents {
    const NAME: &'static str = "emit.events";
    type Input = Vec<Ev>;
    type Output = ();
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TickPayload {
    seq: u32,
}
enum Tick {}
impl Event for Tick {
    const NAME: &'static str = "tick";
    type Payload = TickPayload;
}

#[derive(Debug, Serialize, Deserialize)]
struct JoinIn {
    #[serde(rename = "roomId")]
    room_id: String,
}
enum Join {}
impl Message for Join {
    const NAME: &'static str = "rooms.join";
    type Input = JoinIn;
    type Output = ();
}

fn ticks(seqs: &[u32]) -> Vec<Ev> {
    seqs.iter()
        .map(|s| Ev {
            kind: "tick".into(),
            payload: json!({ "seq": s }),
        })
        .collect()
}

async fn wait_state(client: &Client, what: &str, pred: impl Fn(&ConnectionState) -> bool) {
    let mut w = client.state_watch();
    tokio::time::timeout(WAIT, w.wait_for(|s| pred(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for state: {what}"))
        .expect("state watch closed");
}

// ---- calls ----

#[tokio::test]
async fn typed_call_roundtrip_and_handshake_headers() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .header("userName", "Ada Lovelace")
        .header("userRole", "admin")
        .connect()
        .await
        .unwrap();
    assert_eq!(client.state(), ConnectionState::Open);
    assert_eq!(client.client_id(), Some("c1".into()));

    let hello = client
        .call::<Greet>(GreetIn { name: "Ada".into() })
        .await
        .unwrap();
    assert_eq!(hello, "Hello, Ada!");

    let hs = server.log.handshakes.lock().unwrap()[0].clone();
    assert!(hs.uri.contains("userName=Ada+Lovelace"), "{}", hs.uri);
    assert!(hs.uri.contains("userRole=admin"), "{}", hs.uri);
    assert!(hs.uri.contains("x-zocket-version=1"), "{}", hs.uri);
    assert_eq!(hs.header("username"), Some("Ada Lovelace"));
    assert_eq!(hs.header("userrole"), Some("admin"));
    assert_eq!(
        hs.header("x-zocket-version"),
        Some(zocket_core::protocol::VERSION)
    );

    // The frame on the wire: type, payload, string rpcId.
    let frames = server.log.frames_of(1);
    assert_eq!(frames[0]["type"], "greet");
    assert_eq!(frames[0]["payload"], json!({"name":"Ada"}));
    assert!(frames[0]["rpcId"].is_string());
}

#[tokio::test]
async fn unit_and_null_outputs() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    // `__rpc_res` without a payload key decodes as `()`.
    client.call::<Log_>("hello".into()).await.unwrap();
    // `"payload": null` for a non-unit output.
    assert_eq!(client.call::<NullOutput>(()).await.unwrap(), None);
    // Raw calls see `null` for unit results.
    assert_eq!(
        client.call_raw("log", json!("x")).await.unwrap(),
        Value::Null
    );
}

#[tokio::test]
async fn rpc_errors_are_typed() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    // The client gets the very `Reject` the handler returned.
    assert_eq!(
        client
            .call::<FailError>(json!({}))
            .await
            .unwrap_err()
            .rejection(),
        Some(
            &zocket_client::Reject::new("TEAPOT", "I'm a teapot")
                .with_data(json!({"hint": "try coffee"}))
        )
    );
    let err = client.call::<Missing>(()).await.unwrap_err();
    assert_eq!(err.code(), Some("NOT_FOUND"));
    let err = client
        .call_raw("greet", json!({"nom": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_INPUT"));
    // A result that does not match the output type is a decode error.
    let err = client.call_raw("greet", json!({"name": "x"})).await;
    assert!(err.is_ok());
    enum GreetAsNumber {}
    impl Message for GreetAsNumber {
        const NAME: &'static str = "greet";
        type Input = GreetIn;
        type Output = u32;
    }
    let err = client
        .call::<GreetAsNumber>(GreetIn { name: "x".into() })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn rpc_timeout_default_and_per_call() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .rpc_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let err = client
        .call::<Sleep>(SleepIn { ms: 5_000 })
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let err = client
        .call_with_timeout::<Sleep>(SleepIn { ms: 5_000 }, Duration::from_millis(50))
        .await
        .unwrap_err();
    match err {
        ClientError::Timeout { name, after } => {
            assert_eq!(name, "slow.sleep");
            assert_eq!(after, Duration::from_millis(50));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    // A per-call timeout longer than the default lets a slow call finish.
    let ms = client
        .call_with_timeout::<Sleep>(SleepIn { ms: 300 }, WAIT)
        .await
        .unwrap();
    assert_eq!(ms, 300);
    // The connection is fine afterwards; late replies are ignored.
    assert_eq!(
        client
            .call::<Greet>(GreetIn { name: "B".into() })
            .await
            .unwrap(),
        "Hello, B!"
    );
}

#[tokio::test]
async fn thousand_concurrent_calls_answered_out_of_order() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let calls = (0..1000u64).map(|n| {
        let client = client.clone();
        async move {
            let out = client
                .call_with_timeout::<EchoShuffle>(
                    Shuffle {
                        n,
                        tag: format!("t{n}"),
                    },
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            (n, out)
        }
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.len(), 1000);
    for (n, out) in results {
        assert_eq!(
            out,
            Shuffle {
                n,
                tag: format!("t{n}")
            }
        );
    }
    // Every call reached the server once (its replies were delayed 0-22 ms by input,
    // so they came back out of order).
    let frames = server.log.frames_of(1);
    assert_eq!(frames.len(), 1000);
}

#[tokio::test]
async fn emit_sends_no_rpc_id_and_errors_arrive_as_server_errors() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let mut errors = client.server_errors();
    client.emit::<Log_>("fire".into()).await.unwrap();
    client.emit::<Missing>(()).await.unwrap();
    let e = tokio::time::timeout(WAIT, errors.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.code, "NOT_FOUND");
    assert_eq!(e.kind.as_deref(), Some("no.such.message"));
    let frames = server.log.frames_of(1);
    assert_eq!(frames[0], json!({"type":"log","payload":"fire"}));
    assert!(frames[1].get("rpcId").is_none());
}

// ---- subscriptions ----

#[tokio::test]
async fn two_subscribers_each_get_every_event() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let mut a = client.subscribe::<Tick>();
    let mut b = client.subscribe::<Tick>();
    let mut raw = client.subscribe_raw("tick");
    assert_eq!(client.subscribers("tick"), 3);
    client.call::<EmitEvents>(ticks(&[1, 2, 3])).await.unwrap();
    for sub in [&mut a, &mut b] {
        for seq in 1..=3 {
            let got = tokio::time::timeout(WAIT, sub.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.unwrap(), TickPayload { seq });
        }
    }
    for seq in 1..=3 {
        let got = tokio::time::timeout(WAIT, raw.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.unwrap(), json!({ "seq": seq }));
    }
}

#[tokio::test]
async fn decode_errors_are_reported_not_dropped() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let mut sub = client.subscribe::<Tick>();
    client
        .call::<EmitEvents>(vec![
            Ev {
                kind: "tick".into(),
                payload: json!({"seq": "not a number"}),
            },
            Ev {
                kind: "tick".into(),
                payload: json!({"seq": 7}),
            },
        ])
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Err(ClientError::Decode { name, .. }) => assert_eq!(name, "tick"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    let second = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.unwrap(), TickPayload { seq: 7 });
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let a = client.subscribe::<Tick>();
    let mut b = client.subscribe::<Tick>();
    assert_eq!(client.subscribers("tick"), 2);
    drop(a);
    assert_eq!(client.subscribers("tick"), 1);
    client.call::<EmitEvents>(ticks(&[1])).await.unwrap();
    let got = tokio::time::timeout(WAIT, b.next()).await.unwrap().unwrap();
    assert_eq!(got.unwrap(), TickPayload { seq: 1 });
    drop(b);
    assert_eq!(client.subscribers("tick"), 0);
}

#[tokio::test]
async fn a_slow_subscriber_lags_instead_of_blocking() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .subscription_buffer(2)
        .connect()
        .await
        .unwrap();
    let mut slow = client.subscribe::<Tick>();
    // Five events into a buffer of two: the reader never waits, calls still answer.
    client
        .call::<EmitEvents>(ticks(&[1, 2, 3, 4, 5]))
        .await
        .unwrap();
    client.call::<Log_>("still alive".into()).await.unwrap();
    let mut items = Vec::new();
    for _ in 0..3 {
        items.push(
            tokio::time::timeout(WAIT, slow.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(items[0].as_ref().unwrap(), &TickPayload { seq: 1 });
    assert_eq!(items[1].as_ref().unwrap(), &TickPayload { seq: 2 });
    assert!(
        matches!(items[2], Err(ClientError::Lagged { missed: 3 })),
        "{:?}",
        items[2]
    );
}

// ---- handshake rejections ----

async fn rejected(status: u16, body: Value) -> (ConnectError, Arc<Log>) {
    let server = FakeServer::start(Mode::Reject(status, body)).await;
    let err = tokio::time::timeout(
        WAIT,
        Client::builder(server.url())
            .retry_initial_connect(true)
            .reconnect(Reconnect::default().initial_delay(Duration::from_millis(10)))
            .connect(),
    )
    .await
    .expect("a rejection must not be retried forever")
    .unwrap_err();
    (err, server.log.clone())
}

#[tokio::test]
async fn handshake_401_is_a_typed_error_not_retried() {
    let (err, log) = rejected(401, json!({"error":"UNAUTHORIZED","message":"bad token"})).await;
    let r = err.rejection().expect("a rejection");
    assert_eq!(r.status, 401);
    assert_eq!(r.code, "UNAUTHORIZED");
    assert_eq!(r.message, "bad token");
    assert!(err.is_fatal());
    assert_eq!(log.handshake_count(), 1);
}

#[tokio::test]
async fn handshake_403_is_a_typed_error_not_retried() {
    let (err, log) = rejected(403, json!({"error":"FORBIDDEN","message":"go away"})).await;
    match err {
        ConnectError::Rejected(r) => {
            assert_eq!((r.status, r.code.as_str()), (403, "FORBIDDEN"));
            assert_eq!(r.message, "go away");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(log.handshake_count(), 1);
}

#[tokio::test]
async fn handshake_400_carries_issues() {
    let (err, log) = rejected(
        400,
        json!({"error":"INVALID_HEADERS","message":"invalid headers","issues":[{"path":"userRole","message":"unknown variant `king`"}]}),
    )
    .await;
    let r = err.rejection().expect("a rejection");
    assert_eq!((r.status, r.code.as_str()), (400, "INVALID_HEADERS"));
    // The very type the server sends (one `HeaderIssue` for both ends).
    let expected = zocket_core::HeaderIssue {
        path: "userRole".into(),
        message: "unknown variant `king`".into(),
    };
    assert_eq!(r.issues, [expected]);
    assert_eq!(log.handshake_count(), 1);
}

#[tokio::test]
async fn initial_connect_failure_is_returned_or_retried_boundedly() {
    // Nothing listens on this port (bind then drop).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("ws://{addr}/");
    let err = Client::builder(&url).connect().await.unwrap_err();
    assert!(matches!(err, ConnectError::Transport(_)), "{err:?}");

    let err = Client::builder(&url)
        .retry_initial_connect(true)
        .reconnect(
            Reconnect::default()
                .initial_delay(Duration::from_millis(5))
                .max_attempts(3),
        )
        .connect()
        .await
        .unwrap_err();
    match err {
        ConnectError::GaveUp { attempts, .. } => assert_eq!(attempts, 3),
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

// ---- reconnect ----

fn fast_reconnect() -> Reconnect {
    Reconnect::default()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
}

#[tokio::test]
async fn reconnects_reruns_hooks_and_fails_pending_calls() {
    let server = FakeServer::start(Mode::Normal).await;
    let addr = server.addr;
    let log = server.log.clone();
    let hook_runs = Arc::new(AtomicUsize::new(0));
    let runs = hook_runs.clone();
    let client = Client::builder(server.url())
        .reconnect(fast_reconnect())
        .heartbeat(Heartbeat::disabled())
        .on_connect(move |client| {
            let runs = runs.clone();
            async move {
                client
                    .call::<Join>(JoinIn {
                        room_id: "lobby".into(),
                    })
                    .await?;
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .connect()
        .await
        .unwrap();
    assert_eq!(
        hook_runs.load(Ordering::SeqCst),
        1,
        "hook ran before connect returned"
    );
    assert_eq!(client.client_id(), Some("c1".into()));
    let mut states = client.state_watch();

    // A call in flight when the server dies fails with Disconnected, it does not hang.
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call_with_timeout::<Sleep>(SleepIn { ms: 30_000 }, Duration::from_secs(60))
                .await
        })
    };
    eventually(WAIT, "slow call reached the server", || {
        log.frames_of(1).iter().any(|f| f["type"] == "slow.sleep")
    })
    .await;
    server.stop().await;
    drop(server);
    let err = tokio::time::timeout(WAIT, pending)
        .await
        .expect("pending call must not hang")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
    tokio::time::timeout(
        WAIT,
        states.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(client.client_id(), None);

    // A call made while down is buffered and sent after the reconnect (after the hook).
    let buffered = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call::<Greet>(GreetIn {
                    name: "later".into(),
                })
                .await
        })
    };
    // Let a few attempts fail with backoff before the server comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = FakeServer::start_on(addr, Mode::Normal, log.clone()).await;
    wait_state(&client, "open again", |s| *s == ConnectionState::Open).await;
    let hello = tokio::time::timeout(WAIT, buffered)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(hello, "Hello, later!");
    eventually(WAIT, "hook ran again", || {
        hook_runs.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(client.client_id(), Some("c2".into()));
    let second: Vec<Value> = log.frames_of(2);
    assert_eq!(
        second[0]["type"], "rooms.join",
        "the hook's join goes first: {second:?}"
    );
    assert_eq!(second[1]["type"], "greet");
    assert!(log.handshake_count() >= 2);

    // Events flow again on the new connection.
    let mut sub = client.subscribe::<Tick>();
    client.call::<EmitEvents>(ticks(&[9])).await.unwrap();
    let got = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.unwrap(), TickPayload { seq: 9 });
    drop(server);
}

#[tokio::test]
async fn buffering_while_disconnected_is_bounded_and_never_silent() {
    let server = FakeServer::start(Mode::Normal).await;
    let addr = server.addr;
    let log = server.log.clone();
    let every = Duration::from_millis(200);
    let client = Client::builder(server.url())
        .reconnect(
            Reconnect::default()
                .initial_delay(every)
                .max_delay(every)
                .jitter(0.0),
        )
        .heartbeat(Heartbeat::disabled())
        .outbound_buffer(3)
        .connect()
        .await
        .unwrap();
    server.stop().await;
    drop(server);
    wait_state(&client, "reconnecting", |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    // Buffered but not written within its timeout: fails, and is not sent later.
    let err = client
        .emit_with_timeout::<Log_>("dropped".into(), Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // Two more fit in the buffer (each waits until written) ...
    let e1 = client.emit::<Log_>("1".into());
    let e2 = client.emit::<Log_>("2".into());
    tokio::pin!(e1, e2);
    assert!(futures::poll!(&mut e1).is_pending());
    assert!(futures::poll!(&mut e2).is_pending());
    // ... the next one does not, and says so.
    let err = client.emit::<Log_>("3".into()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::BufferFull { capacity: 3, .. }),
        "{err:?}"
    );
    // Back up: the buffered ones are written, in order, on the new connection.
    let _server = FakeServer::start_on(addr, Mode::Normal, log.clone()).await;
    tokio::time::timeout(WAIT, e1).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, e2).await.unwrap().unwrap();
    client.call::<Log_>("sync".into()).await.unwrap();
    let payloads: Vec<Value> = log
        .frames_of(2)
        .iter()
        .map(|f| f["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![json!("1"), json!("2"), json!("sync")]);
}

#[tokio::test]
async fn no_buffering_fails_fast_while_disconnected() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .reconnect(Reconnect::default().initial_delay(Duration::from_secs(3600)))
        .heartbeat(Heartbeat::disabled())
        .outbound_buffer(0)
        .connect()
        .await
        .unwrap();
    server.stop().await;
    wait_state(&client, "reconnecting", |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    let err = client
        .call::<Greet>(GreetIn { name: "x".into() })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotConnected { .. }), "{err:?}");
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_closes() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .reconnect(fast_reconnect().max_attempts(2))
        .heartbeat(Heartbeat::disabled())
        .connect()
        .await
        .unwrap();
    let mut sub = client.subscribe::<Tick>();
    server.stop().await;
    drop(server);
    wait_state(&client, "not open", |s| *s != ConnectionState::Open).await;
    // Buffered while reconnecting, then the client gives up: the emit fails.
    let err = tokio::time::timeout(WAIT, client.emit_with_timeout::<Log_>("x".into(), WAIT))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err:?}");
    wait_state(&client, "closed", |s| *s == ConnectionState::Closed).await;
    let err = client.call::<Log_>("x".into()).await.unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err:?}");
    let reason = client.close_reason().expect("a close reason");
    assert!(
        matches!(*reason, ConnectError::GaveUp { attempts: 2, .. }),
        "{reason:?}"
    );
    // Subscriptions end with `None`.
    assert!(
        tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn reconnect_disabled_closes_on_drop() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .reconnect(Reconnect::disabled())
        .connect()
        .await
        .unwrap();
    server.stop().await;
    wait_state(&client, "closed", |s| *s == ConnectionState::Closed).await;
    assert!(matches!(
        client.close_reason().as_deref(),
        Some(ConnectError::Transport(_))
    ));
}

// ---- heartbeat ----

#[tokio::test]
async fn heartbeat_detects_a_silent_peer_and_reconnects() {
    let server = FakeServer::start(Mode::Silent).await;
    let interval = Duration::from_millis(200);
    let timeout = Duration::from_millis(200);
    let client = Client::builder(server.url())
        .heartbeat(Heartbeat::new(interval, timeout))
        .reconnect(fast_reconnect())
        .connect()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    wait_state(&client, "dead connection detected", |s| {
        *s != ConnectionState::Open
    })
    .await;
    let detected = started.elapsed();
    // Detected within interval + timeout (plus generous scheduling slack).
    assert!(
        detected < interval + timeout + Duration::from_secs(2),
        "detected after {detected:?}"
    );
    // And it reconnects.
    let log = server.log.clone();
    eventually(WAIT, "a second connection", || {
        log.connections.load(Ordering::SeqCst) >= 2
    })
    .await;
}

#[tokio::test]
async fn heartbeat_detects_a_dead_peer_even_when_writing_is_stuck() {
    let server = FakeServer::start(Mode::Silent).await;
    let client = Client::builder(server.url())
        .heartbeat(Heartbeat::new(
            Duration::from_millis(200),
            Duration::from_millis(200),
        ))
        .reconnect(fast_reconnect())
        .connect()
        .await
        .unwrap();
    // Fill the socket: the peer never reads, so the writer ends up waiting on it.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let big = "x".repeat(256 * 1024);
            loop {
                if client
                    .emit_with_timeout::<Log_>(big.clone(), Duration::from_secs(60))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    wait_state(&client, "dead connection detected", |s| {
        *s != ConnectionState::Open
    })
    .await;
    writer.abort();
}

#[tokio::test]
async fn heartbeat_keeps_a_healthy_connection() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url())
        .heartbeat(Heartbeat::new(
            Duration::from_millis(30),
            Duration::from_millis(500),
        ))
        .connect()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.state(), ConnectionState::Open);
    assert_eq!(server.log.connections.load(Ordering::SeqCst), 1);
    client.call::<Log_>("ok".into()).await.unwrap();
}

// ---- lifecycle ----

#[tokio::test]
async fn close_ends_everything() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let mut sub = client.subscribe::<Tick>();
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<Sleep>(SleepIn { ms: 30_000 }).await })
    };
    let log = server.log.clone();
    eventually(WAIT, "slow call reached the server", || {
        log.frames_of(1).iter().any(|f| f["type"] == "slow.sleep")
    })
    .await;
    tokio::time::timeout(WAIT, client.close()).await.unwrap();
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(client.close_reason().is_none());
    let err = tokio::time::timeout(WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    assert!(
        tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        client.call::<Log_>("x".into()).await,
        Err(ClientError::Closed)
    ));
    eventually(WAIT, "server saw the close", || {
        log.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // Subscribing to a closed client gives a stream that ends at once.
    assert!(client.subscribe::<Tick>().next().await.is_none());
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).connect().await.unwrap();
    let clone = client.clone();
    drop(client);
    clone.call::<Log_>("still here".into()).await.unwrap();
    drop(clone);
    let log = server.log.clone();
    eventually(WAIT, "server saw the close", || {
        log.closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn build_then_subscribe_then_connect() {
    let server = FakeServer::start(Mode::Normal).await;
    let client = Client::builder(server.url()).build().unwrap();
    assert_eq!(client.state(), ConnectionState::Connecting);
    let mut sub = client.subscribe::<Tick>();
    // Sent before connecting: buffered, written once open.
    let early = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<EmitEvents>(ticks(&[1])).await })
    };
    client.connect().await.unwrap();
    assert!(matches!(
        client.connect().await,
        Err(ConnectError::AlreadyStarted)
    ));
    tokio::time::timeout(WAIT, early)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.unwrap(), TickPayload { seq: 1 });
}

#[tokio::test]
async fn a_failing_hook_fails_the_first_connect() {
    let server = FakeServer::start(Mode::Normal).await;
    let err = Client::builder(server.url())
        .on_connect(|client| async move {
            client.call::<Missing>(()).await?;
            Ok(())
        })
        .connect()
        .await
        .unwrap_err();
    match err {
        ConnectError::Hook(e) => assert_eq!(e.code(), Some("NOT_FOUND")),
        other => panic!("expected Hook, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_urls_are_refused() {
    assert!(matches!(
        Client::builder("not a url").connect().await,
        Err(ConnectError::InvalidUrl(_))
    ));
    assert!(matches!(
        Client::builder("ftp://example.com/").build(),
        Err(ConnectError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn a_rejection_on_reconnect_closes_instead_of_retrying() {
    let server = FakeServer::start(Mode::Normal).await;
    let addr = server.addr;
    let log = server.log.clone();
    let client = Client::builder(server.url())
        .reconnect(fast_reconnect())
        .heartbeat(Heartbeat::disabled())
        .connect()
        .await
        .unwrap();
    server.stop().await;
    drop(server);
    // The server comes back refusing this client (say, its token was revoked).
    let _server = FakeServer::start_on(
        addr,
        Mode::Reject(
            401,
            json!({"error":"UNAUTHORIZED","message":"token revoked"}),
        ),
        log.clone(),
    )
    .await;
    wait_state(&client, "closed", |s| *s == ConnectionState::Closed).await;
    let reason = client.close_reason().expect("a close reason");
    let r = reason.rejection().expect("a rejection");
    assert_eq!((r.status, r.message.as_str()), (401, "token revoked"));
    let attempts = log.handshake_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log.handshake_count(),
        attempts,
        "no retries after a rejection"
    );
}

#[test]
fn handles_and_futures_are_send() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Client>();
    send_sync::<zocket_client::Subscription<TickPayload>>();
    send_sync::<ClientError>();
    send_sync::<ConnectError>();
    send_sync::<zocket_client::ClientBuilder>();
    let client = Client::builder("ws://127.0.0.1:1/").build().unwrap();
    send(&client.call::<Greet>(GreetIn { name: "x".into() }));
    send(&client.emit::<Log_>("x".into()));
    send(&client.call_raw("x", Value::Null));
    send(&client.close());
    send(&Client::builder("ws://127.0.0.1:1/").connect());
    let mut sub = client.subscribe::<Tick>();
    send(&sub.recv());
}
