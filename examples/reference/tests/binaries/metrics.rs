//! `reference --metrics ADDR`: the real binary, real traffic over WebSockets (RPCs, an
//! application error, an unknown message, refused handshakes, events to a room, a
//! client close), then the Prometheus endpoint scraped over HTTP and every count
//! checked. Both adapters.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::json;
use zocket_tests::support::process::Process;
use zocket_tests::support::{RawClient, http};

/// `reference --addr 127.0.0.1:0 --metrics 127.0.0.1:0`; killed on drop.
struct Reference {
    process: Process,
    ws: SocketAddr,
    metrics: SocketAddr,
}

async fn start(adapter: &str) -> Reference {
    let mut process = Process::spawn(
        env!("CARGO_BIN_EXE_reference"),
        &[
            "--addr",
            "127.0.0.1:0",
            "--adapter",
            adapter,
            "--metrics",
            "127.0.0.1:0",
        ],
        // The trace line of each recorded close is what the test waits for.
        &[("RUST_LOG", "warn,zocket_core::stats=trace")],
    );
    let (_, ws) = process.addr_line("listening on ws://", "/").await;
    let (_, metrics) = process.addr_line("metrics on http://", "/metrics").await;
    assert_ne!(metrics.port(), 0, "the bound port is printed");
    Reference {
        process,
        ws,
        metrics,
    }
}

/// One sample per `name{sorted labels}`, from the Prometheus text format.
type Samples = BTreeMap<String, f64>;

fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let key = match series.split_once('{') {
            None => series.to_owned(),
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                let mut pairs: Vec<&str> = labels.split(',').filter(|p| !p.is_empty()).collect();
                pairs.sort();
                format!("{name}{{{}}}", pairs.join(","))
            }
        };
        samples.insert(key, value);
    }
    samples
}

/// The value of `name` with exactly these labels (0 when absent).
fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        pairs.sort();
        format!("{name}{{{}}}", pairs.join(","))
    };
    samples.get(&key).copied().unwrap_or(0.0)
}

async fn scrape(addr: SocketAddr) -> Samples {
    let answer = http::get(addr, "/metrics").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&answer.body)
}

async fn metrics_follow_real_traffic(adapter: &str) {
    let server = start(adapter).await;
    let answer = http::get(server.metrics, "/nope").await;
    assert_eq!(answer.status, 404, "only /metrics is served");

    let mut ada = RawClient::connect(server.ws, "userName=ada").await;
    let mut bob = RawClient::connect(server.ws, "userName=bob").await;
    assert_eq!(
        http::upgrade(server.ws, "/?userRole=wizard").await.status,
        400
    );
    assert_eq!(http::upgrade(server.ws, "/?token=bad").await.status, 401);
    assert_eq!(http::upgrade(server.ws, "/?token=bad").await.status, 401);

    assert_eq!(
        ada.ok("greet", json!({"name": "Ada"})).await,
        Some(json!("Hello, Ada!"))
    );
    assert_eq!(
        ada.ok("greet", json!({"name": "Al"})).await,
        Some(json!("Hello, Al!"))
    );
    assert_eq!(ada.err("fail.error", json!({})).await["code"], "TEAPOT");
    ada.send(json!({"type": "made.up.name", "payload": {}}))
        .await;
    assert_eq!(ada.recv().await["error"]["code"], "NOT_FOUND");
    ada.ok("rooms.join", json!({"roomId": "r"})).await; // rooms.joined to 1
    bob.ok("rooms.join", json!({"roomId": "r"})).await; // rooms.joined to 2
    bob.ok("chat.room", json!({"roomId": "r", "message": "hi"}))
        .await; // chat.room to 2
    assert_eq!(ada.event("rooms.joined").await["userName"], "ada");
    assert_eq!(ada.event("rooms.joined").await["userName"], "bob");
    assert_eq!(ada.event("chat.room").await["message"], "hi");
    ada.close().await;

    // The close is counted once the server has run ada's disconnect hook: its trace
    // line says so.
    server
        .process
        .log
        .wait_for_line(&["close recorded", "code=1000", "reason=\"client_closed\""])
        .await;
    let m = scrape(server.metrics).await;
    assert_eq!(
        get(
            &m,
            "zocket_closes_total",
            &[("code", "1000"), ("reason", "client_closed")],
        ),
        1.0,
        "{m:?}"
    );

    assert_eq!(get(&m, "zocket_connections_open", &[]), 1.0, "{m:?}");
    assert_eq!(get(&m, "zocket_connections_total", &[]), 2.0);
    assert_eq!(
        get(&m, "zocket_handshakes_refused_total", &[("status", "400")]),
        1.0
    );
    assert_eq!(
        get(&m, "zocket_handshakes_refused_total", &[("status", "401")]),
        2.0
    );
    assert_eq!(
        get(&m, "zocket_messages_in_total", &[("type", "greet")]),
        2.0
    );
    assert_eq!(
        get(&m, "zocket_messages_in_total", &[("type", "fail.error")]),
        1.0
    );
    assert_eq!(
        get(&m, "zocket_messages_in_total", &[("type", "rooms.join")]),
        2.0
    );
    assert_eq!(
        get(&m, "zocket_messages_in_total", &[("type", "unknown")]),
        1.0
    );
    assert!(
        !m.keys().any(|k| k.contains("made.up.name")),
        "a client-chosen name became a label"
    );
    let rpc = "zocket_rpc_duration_seconds_count";
    assert_eq!(get(&m, rpc, &[("type", "greet"), ("outcome", "ok")]), 2.0);
    assert_eq!(
        get(&m, rpc, &[("type", "fail.error"), ("outcome", "error")]),
        1.0
    );
    assert_eq!(
        get(&m, rpc, &[("type", "chat.room"), ("outcome", "ok")]),
        1.0
    );
    // Bucketed: the +Inf bucket holds every sample.
    assert_eq!(
        get(
            &m,
            "zocket_rpc_duration_seconds_bucket",
            &[("type", "greet"), ("outcome", "ok"), ("le", "+Inf")]
        ),
        2.0
    );
    assert_eq!(get(&m, "zocket_events_delivered_total", &[]), 5.0);
    assert_eq!(
        get(
            &m,
            "zocket_closes_total",
            &[("code", "1000"), ("reason", "client_closed")]
        ),
        1.0
    );

    drop(bob);
    drop(server);
}

#[tokio::test]
async fn metrics_follow_real_traffic_warp() {
    metrics_follow_real_traffic("warp").await;
}

#[tokio::test]
async fn metrics_follow_real_traffic_hyper() {
    metrics_follow_real_traffic("hyper").await;
}
