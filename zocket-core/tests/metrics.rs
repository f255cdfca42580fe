//! The metrics recorded through the `metrics` facade, read back with metrics-util's
//! debugging recorder, after traffic through the public test harness (the real
//! handshake and connection driver, virtual sockets). Each count is checked against
//! `Server::stats()`, which is recorded at the same places.
//!
//! One test function: the recorder is process-global.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use zocket_core::metric_names as names;
use zocket_core::protocol::{CloseFrame, WsFrame};
use zocket_core::testing::{ConnectOptions, TestServer};
use zocket_core::{Connect, Context, Cx, Event, Message, Reject, Router, Server, ServerConfig};

#[derive(Debug, Deserialize)]
struct Headers {
    #[serde(default)]
    role: Option<String>,
}

struct User;
impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        match conn.headers.role.as_deref() {
            Some("intruder") => Err(Reject::unauthorized("no")),
            _ => Ok(User),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Named {
    name: String,
}
enum Greet {}
impl Message for Greet {
    const NAME: &'static str = "greet";
    type Input = Named;
    type Output = String;
}
enum Fail {}
impl Message for Fail {
    const NAME: &'static str = "fail";
    type Input = Value;
    type Output = ();
}
enum Shout {}
impl Message for Shout {
    const NAME: &'static str = "shout";
    type Input = String;
    type Output = ();
}
/// Answers after a stretch of work without awaiting (a plain function), timed by its
/// own clock into [`BUSY_NANOS`].
enum Busy {}
impl Message for Busy {
    const NAME: &'static str = "busy";
    type Input = ();
    type Output = ();
}
/// Answers once the test releases it ([`WAITS_RELEASE`]), after awaiting; the time it
/// waited, by its own clock, goes into [`WAITS_NANOS`].
enum Waits {}
impl Message for Waits {
    const NAME: &'static str = "waits";
    type Input = ();
    type Output = ();
}
static BUSY_NANOS: AtomicU64 = AtomicU64::new(0);
static WAITS_NANOS: AtomicU64 = AtomicU64::new(0);
static WAITS_STARTED: Notify = Notify::const_new();
static WAITS_RELEASE: Notify = Notify::const_new();

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

enum Heard {}
impl Event for Heard {
    const NAME: &'static str = "heard";
    type Payload = String;
}

fn router() -> Router<User> {
    Router::new()
        .on::<Greet>(|_cx: Cx<User>, i: Named| async move {
            Ok::<_, Reject>(format!("Hello, {}!", i.name))
        })
        .on::<Fail>(
            |_cx: Cx<User>, _i: Value| async move { Err::<(), _>(Reject::new("TEAPOT", "no")) },
        )
        .on::<Shout>(|cx: Cx<User>, s: String| async move {
            let _ = cx.send::<Heard>(s).broadcast();
            Ok::<_, Reject>(())
        })
        .on_sync::<Busy>(|_cx: Cx<User>, ()| {
            let t0 = Instant::now();
            let mut x = 0u64;
            for i in 0..1_000_000u64 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(black_box(i));
            }
            black_box(x);
            BUSY_NANOS.store(nanos(t0.elapsed()), Ordering::SeqCst);
            Ok(())
        })
        .on::<Waits>(|_cx: Cx<User>, ()| async move {
            let t0 = Instant::now();
            WAITS_STARTED.notify_one();
            WAITS_RELEASE.notified().await;
            WAITS_NANOS.store(nanos(t0.elapsed()), Ordering::SeqCst);
            Ok::<_, Reject>(())
        })
}

type Metrics = HashMap<(MetricKind, String, Vec<(String, String)>), DebugValue>;

/// Snapshots of the debugging recorder reset what they read: add every snapshot into
/// running totals (counters and gauges summed, histogram samples appended).
fn read(snapshotter: &Snapshotter, totals: &mut Metrics) {
    for (ck, _unit, _desc, value) in snapshotter.snapshot().into_vec() {
        let ck: CompositeKey = ck;
        let kind = ck.kind();
        let key = ck.key();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let slot = (kind, key.name().to_owned(), labels);
        match (totals.get_mut(&slot), value) {
            (Some(DebugValue::Counter(total)), DebugValue::Counter(n)) => *total += n,
            (Some(DebugValue::Gauge(total)), DebugValue::Gauge(v)) => {
                *total = (total.into_inner() + v.into_inner()).into()
            }
            (Some(DebugValue::Histogram(all)), DebugValue::Histogram(more)) => all.extend(more),
            (_, value) => {
                totals.insert(slot, value);
            }
        }
    }
}

fn counter(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    match m.get(&(MetricKind::Counter, name.to_owned(), labels)) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(m: &Metrics, name: &str) -> f64 {
    match m.get(&(MetricKind::Gauge, name.to_owned(), Vec::new())) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{name}: {other:?}"),
    }
}

fn histogram_count(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> usize {
    histogram(m, name, labels).len()
}

fn histogram(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    match m.get(&(MetricKind::Histogram, name.to_owned(), labels)) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        None => Vec::new(),
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

#[tokio::test]
async fn every_metric_follows_real_traffic_and_matches_the_stats() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let mut totals = Metrics::new();

    let app = TestServer::new(router());
    let ada = app.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    let bob = app.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    let refused = app.connect([("role", "intruder")]).await.unwrap_err();
    assert_eq!(refused.status(), 401);

    read(&snapshotter, &mut totals);
    let m = &totals;
    assert_eq!(gauge(m, names::CONNECTIONS_OPEN), 2.0);
    assert_eq!(counter(m, names::CONNECTIONS_TOTAL, &[]), 2);
    assert_eq!(
        counter(m, names::HANDSHAKES_REFUSED, &[("status", "401")]),
        1
    );

    assert_eq!(
        ada.call::<Greet>(Named { name: "Ada".into() })
            .await
            .unwrap(),
        "Hello, Ada!"
    );
    assert_eq!(
        ada.call::<Greet>(Named { name: "Al".into() })
            .await
            .unwrap(),
        "Hello, Al!"
    );
    assert!(ada.call::<Fail>(Value::Null).await.is_err());
    // Client-chosen names never become label values.
    ada.send_raw(r#"{"type":"made.up.by.the.client","payload":{}}"#)
        .unwrap();
    assert_eq!(ada.next_error().await.unwrap().code, "NOT_FOUND");
    ada.send_raw("not json").unwrap();
    assert_eq!(ada.next_error().await.unwrap().code, "BAD_REQUEST");
    bob.call::<Shout>("hey".into()).await.unwrap();
    assert_eq!(ada.next::<Heard>().await.unwrap(), "hey");
    assert_eq!(bob.next::<Heard>().await.unwrap(), "hey");

    read(&snapshotter, &mut totals);
    let m = &totals;
    assert_eq!(counter(m, names::MESSAGES_IN, &[("type", "greet")]), 2);
    assert_eq!(counter(m, names::MESSAGES_IN, &[("type", "fail")]), 1);
    assert_eq!(counter(m, names::MESSAGES_IN, &[("type", "shout")]), 1);
    assert_eq!(counter(m, names::MESSAGES_IN, &[("type", "unknown")]), 2);
    assert!(
        !m.keys()
            .any(|(_, _, labels)| labels.iter().any(|(_, v)| v.contains("made.up"))),
        "a client-chosen name became a label: {m:?}"
    );
    assert_eq!(
        histogram_count(
            m,
            names::RPC_DURATION,
            &[("type", "greet"), ("outcome", "ok")]
        ),
        2
    );
    assert_eq!(
        histogram_count(
            m,
            names::RPC_DURATION,
            &[("type", "fail"), ("outcome", "error")]
        ),
        1
    );
    assert_eq!(
        histogram_count(
            m,
            names::RPC_DURATION,
            &[("type", "shout"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(counter(m, names::EVENTS_DELIVERED, &[]), 2);
    let stats = app.server().stats();
    assert_eq!(stats.messages_in, 6);
    assert_eq!(stats.handshakes_rejected, 1);

    // An RPC's duration runs from its frame's arrival to its answer being queued: it
    // holds all the time its handler took, whether it worked without awaiting (the
    // answer is queued on the spot, in the poll that read the frame) or awaited
    // (queued in a later poll, once the test releases it).
    ada.call::<Busy>(()).await.unwrap();
    let release = async {
        WAITS_STARTED.notified().await;
        WAITS_RELEASE.notify_one();
    };
    let (waited, ()) = tokio::join!(ada.call::<Waits>(()), release);
    waited.unwrap();
    let secs = |n: &AtomicU64| Duration::from_nanos(n.load(Ordering::SeqCst)).as_secs_f64();
    read(&snapshotter, &mut totals);
    let busy = histogram(
        &totals,
        names::RPC_DURATION,
        &[("type", "busy"), ("outcome", "ok")],
    );
    assert!(
        busy.len() == 1 && busy[0] >= secs(&BUSY_NANOS) && secs(&BUSY_NANOS) > 0.0,
        "busy: {busy:?}, the handler took {} s",
        secs(&BUSY_NANOS)
    );
    let waits = histogram(
        &totals,
        names::RPC_DURATION,
        &[("type", "waits"), ("outcome", "ok")],
    );
    assert!(
        waits.len() == 1 && waits[0] >= secs(&WAITS_NANOS) && secs(&WAITS_NANOS) > 0.0,
        "waits: {waits:?}, the handler waited {} s",
        secs(&WAITS_NANOS)
    );

    ada.close().await;
    ada.closed().await.unwrap();
    // The client's own close code never becomes a label: 4321 is counted as the 1000
    // the server echoes.
    bob.send_frame(WsFrame::Close(Some(CloseFrame {
        code: 4321,
        reason: "bye".into(),
    })))
    .unwrap();
    bob.closed().await.unwrap();
    app.server().shutdown().await;

    // A client that reads nothing: its queue fills, the frame that does not fit is
    // dropped, and it is closed with 1013.
    let app2 = TestServer::from_server(
        Server::builder(router())
            .config(
                ServerConfig::default()
                    .outbound_queue(2)
                    .close_timeout(std::time::Duration::from_millis(100)),
            )
            .build(),
    );
    let stuck = app2
        .connect_with::<[(&str, &str); 0], _, _>(
            [],
            ConnectOptions {
                read: false,
                socket_buffer: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let loud = app2.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    for i in 0..8 {
        loud.call::<Shout>(format!("{i}")).await.unwrap();
    }
    app2.server().shutdown().await;
    drop(stuck);

    read(&snapshotter, &mut totals);
    let m = &totals;
    assert_eq!(gauge(m, names::CONNECTIONS_OPEN), 0.0);
    assert_eq!(
        counter(
            m,
            names::CLOSES,
            &[("code", "1000"), ("reason", "client_closed")]
        ),
        2
    );
    assert_eq!(
        counter(
            m,
            names::CLOSES,
            &[("code", "1013"), ("reason", "slow_consumer")]
        ),
        1
    );
    assert_eq!(
        counter(
            m,
            names::CLOSES,
            &[("code", "1001"), ("reason", "server_shutdown")]
        ),
        1
    );
    assert!(
        !m.keys()
            .any(|(_, _, labels)| labels.iter().any(|(_, v)| v == "4321"))
    );
    let stats = app2.server().stats();
    let dropped = counter(m, names::FRAMES_DROPPED, &[("reason", "queue_full")])
        + counter(m, names::FRAMES_DROPPED, &[("reason", "closed")]);
    assert!(stats.frames_dropped >= 1, "{stats:?}");
    assert_eq!(dropped, stats.frames_dropped, "{m:?}");
    assert!(counter(m, names::FRAMES_DROPPED, &[("reason", "queue_full")]) >= 1);
    assert_eq!(stats.slow_consumer_closes, 1);
    assert_eq!(app.server().stats().connections_open, 0);
}
