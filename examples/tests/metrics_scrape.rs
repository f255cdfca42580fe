//! `reference --metrics ADDR`: the real binary, real traffic over WebSockets (RPCs, an
//! application error, an unknown message, refused handshakes, events to a room, a
//! client close), then the Prometheus endpoint scraped over HTTP and every count
//! checked. Both adapters.

mod e2e_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;

use e2e_support::{RawClient, WAIT, upgrade_request};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// `reference --addr 127.0.0.1:0 --metrics 127.0.0.1:0`; killed on drop.
struct Reference {
    _child: Child,
    ws: SocketAddr,
    metrics: SocketAddr,
}

async fn start(adapter: &str) -> Reference {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--adapter",
            adapter,
            "--metrics",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the reference binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a stdout line in time")
            .unwrap()
            .expect("a stdout line")
    };
    let first = next().await;
    let ws = first
        .strip_prefix("listening on ws://")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    let second = next().await;
    let metrics: SocketAddr = second
        .strip_prefix("metrics on http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .parse()
        .unwrap();
    assert_ne!(metrics.port(), 0, "the bound port is printed");
    Reference {
        _child: child,
        ws,
        metrics,
    }
}

/// `GET path` over HTTP/1.1: (status, content-type, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an HTTP answer in time")
        .unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, content_type, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
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
    let (status, content_type, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&body)
}

async fn metrics_follow_real_traffic(adapter: &str) {
    let server = start(adapter).await;
    let (status, _, _) = http_get(server.metrics, "/nope").await;
    assert_eq!(status, 404, "only /metrics is served");

    let mut ada = RawClient::connect(server.ws, "userName=ada").await;
    let mut bob = RawClient::connect(server.ws, "userName=bob").await;
    assert_eq!(
        upgrade_request(server.ws, "/?userRole=wizard").await.status,
        400
    );
    assert_eq!(upgrade_request(server.ws, "/?token=bad").await.status, 401);
    assert_eq!(upgrade_request(server.ws, "/?token=bad").await.status, 401);

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

    // The close is counted once the server has run ada's disconnect: scrape until then.
    let deadline = tokio::time::Instant::now() + WAIT;
    let m = loop {
        let m = scrape(server.metrics).await;
        if get(
            &m,
            "zocket_closes_total",
            &[("code", "1000"), ("reason", "client_closed")],
        ) >= 1.0
        {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no close counted: {m:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

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
