//! Admission control over real sockets, on both adapters (issue 9): RFC 6455
//! validation with identical refusals, the connection limits (503 + Retry-After), the
//! handshake timeout, the hyper adapter's path, log hygiene (no ERROR for client-caused
//! events, secrets redacted) and the `LIMIT` refusals of the reference app.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use zocket_core::{Server, ServerConfig};
use zocket_examples::reference::{self, RefCtx};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    /// `zocket_warp::upgrade` served by `zocket_warp::serve`.
    Warp,
    /// `zocket_warp::upgrade` served by warp's own `warp::serve`.
    WarpServe,
    /// `zocket_hyper::serve`.
    Hyper,
}

const ALL: [Adapter; 3] = [Adapter::Warp, Adapter::WarpServe, Adapter::Hyper];

struct Running {
    server: Server<RefCtx>,
    addr: SocketAddr,
    http: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.http.abort();
    }
}

async fn start(adapter: Adapter, config: ServerConfig) -> Running {
    let server = Server::builder(reference::router()).config(config).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = match adapter {
        Adapter::Warp => tokio::spawn(zocket_warp::serve(
            listener,
            zocket_warp::upgrade(server.clone()),
            server.clone(),
        )),
        Adapter::WarpServe => tokio::spawn(
            warp::serve(zocket_warp::upgrade(server.clone()))
                .incoming(listener)
                .run(),
        ),
        Adapter::Hyper => tokio::spawn(zocket_hyper::serve(listener, server.clone())),
    };
    Running { server, addr, http }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Send `request` (raw bytes) and read the head and `content-length` bytes of body.
async fn raw(addr: SocketAddr, request: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status in {head:?}"));
                let mut answer = Answer {
                    status,
                    head,
                    body: String::new(),
                };
                let length: usize = answer
                    .header("content-length")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = buf[end + 4..].to_vec();
                while body.len() < length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed inside the body");
                    body.extend_from_slice(&chunk[..n]);
                }
                answer.body = String::from_utf8_lossy(&body).into_owned();
                return answer;
            }
            assert!(n > 0, "connection closed before the head ended: {buf:?}");
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("an HTTP answer in time")
}

/// An upgrade request with these lines replacing the defaults (a `None` value drops
/// the header).
fn request(line: &str, overrides: &[(&str, Option<&str>)]) -> String {
    let mut headers = vec![
        ("Host", Some("localhost")),
        ("Connection", Some("Upgrade")),
        ("Upgrade", Some("websocket")),
        ("Sec-WebSocket-Version", Some("13")),
        ("Sec-WebSocket-Key", Some("dGhlIHNhbXBsZSBub25jZQ==")),
    ];
    for (name, value) in overrides {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name, *value));
    }
    let mut out = format!("{line}\r\n");
    for (name, value) in headers {
        if let Some(value) = value {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("\r\n");
    out
}

/// Wait (bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr, query: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?{query}"))
        .await
        .unwrap();
    let welcome = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(welcome.to_text().unwrap().contains("__welcome"));
    ws
}

async fn call(ws: &mut Ws, kind: &str, payload: Value, rpc_id: &str) -> Value {
    let frame = json!({"type": kind, "payload": payload, "rpcId": rpc_id});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Ok(text) = msg.to_text() else { continue };
        let v: Value = serde_json::from_str(text).unwrap();
        if v["rpcId"] == rpc_id {
            return v;
        }
    }
}

#[tokio::test]
async fn invalid_upgrades_get_the_same_refusal_from_every_adapter() {
    let cases: Vec<(&str, String, u16)> = vec![
        ("POST", request("POST / HTTP/1.1", &[]), 400),
        ("HTTP/1.0", request("GET / HTTP/1.0", &[]), 400),
        ("no Host", request("GET / HTTP/1.1", &[("Host", None)]), 400),
        (
            "no Upgrade",
            request("GET / HTTP/1.1", &[("Upgrade", None)]),
            400,
        ),
        (
            "no Connection: upgrade",
            request("GET / HTTP/1.1", &[("Connection", Some("keep-alive"))]),
            400,
        ),
        (
            "short key",
            request("GET / HTTP/1.1", &[("Sec-WebSocket-Key", Some("c2hvcnQ="))]),
            400,
        ),
        (
            "no key",
            request("GET / HTTP/1.1", &[("Sec-WebSocket-Key", None)]),
            400,
        ),
        (
            "version 8",
            request("GET / HTTP/1.1", &[("Sec-WebSocket-Version", Some("8"))]),
            426,
        ),
    ];
    let mut seen: Vec<Vec<(u16, String, Option<String>)>> = Vec::new();
    for adapter in ALL {
        let app = start(adapter, ServerConfig::default()).await;
        let mut answers = Vec::new();
        for (what, req, status) in &cases {
            // (Under `warp::serve` the HTTP/1.0 refusal comes from the missing upgrade
            // handle, with the same status and code.)
            let answer = raw(app.addr, req).await;
            assert_eq!(answer.status, *status, "{adapter:?} {what}: {answer:?}");
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("application/json"),
                "{adapter:?} {what}"
            );
            let body = answer.json();
            assert_eq!(body["error"], "BAD_REQUEST", "{adapter:?} {what}");
            assert!(body["message"].is_string());
            let version = answer.header("sec-websocket-version");
            if *status == 426 {
                assert_eq!(version.as_deref(), Some("13"), "{adapter:?} {what}");
            }
            if !(adapter == Adapter::WarpServe && *what == "HTTP/1.0") {
                answers.push((answer.status, answer.body, version));
            }
        }
        assert_eq!(app.server.admitted(), (0, 0), "{adapter:?}");
        if adapter != Adapter::WarpServe {
            seen.push(answers);
        }
    }
    assert_eq!(
        seen[0], seen[1],
        "warp and hyper answer byte for byte alike"
    );
}

#[tokio::test]
async fn a_valid_upgrade_is_accepted_and_http_1_0_is_refused_cleanly() {
    for adapter in ALL {
        let app = start(adapter, ServerConfig::default()).await;
        let answer = raw(app.addr, &request("GET / HTTP/1.1", &[])).await;
        assert_eq!(answer.status, 101, "{adapter:?}");
        assert_eq!(
            answer.header("sec-websocket-accept").as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }
}

#[tokio::test]
async fn over_the_connection_limits_handshakes_get_503_with_retry_after() {
    for adapter in ALL {
        let config = ServerConfig::default()
            .max_connections_per_ip(2)
            .max_connections(3)
            .retry_after(Duration::from_secs(7));
        let app = start(adapter, config).await;
        let a = connect(app.addr, "userName=a").await;
        let b = connect(app.addr, "userName=b").await;
        assert_eq!(app.server.admitted(), (2, 1));
        let refused = raw(app.addr, &request("GET / HTTP/1.1", &[])).await;
        assert_eq!(refused.status, 503, "{adapter:?}");
        assert_eq!(refused.header("retry-after").as_deref(), Some("7"));
        assert_eq!(refused.json()["error"], "UNAVAILABLE");
        assert_eq!(
            refused.json()["message"],
            "too many connections from this address"
        );
        assert_eq!(app.server.stats().admission_full, 1);
        // A slot is freed when its connection ends.
        drop(a);
        let server = app.server.clone();
        eventually("a's slot freed", || server.admitted().0 == 1).await;
        let c = connect(app.addr, "userName=c").await;
        drop((b, c));
        let server = app.server.clone();
        eventually("every slot freed", || server.admitted() == (0, 0)).await;
    }
}

#[tokio::test]
async fn the_total_limit_and_shutdown_are_503_too() {
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let config = ServerConfig::default().max_connections(1);
        let app = start(adapter, config).await;
        let _a = connect(app.addr, "userName=a").await;
        let refused = raw(app.addr, &request("GET / HTTP/1.1", &[])).await;
        assert_eq!(refused.status, 503);
        assert_eq!(refused.json()["message"], "too many connections");
        assert!(refused.header("retry-after").is_some());
    }
}

/// Bytes of a request that never ends; the server must drop the connection.
async fn dropped_within(addr: SocketAddr, partial: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(partial).await.unwrap();
    let mut buf = [0u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // hyper may answer 408 before closing.
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, closed).await.is_ok()
}

#[tokio::test]
async fn a_handshake_not_completed_in_time_is_dropped() {
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let config = ServerConfig::default().handshake_timeout(Duration::from_millis(200));
        let app = start(adapter, config).await;
        assert!(
            dropped_within(app.addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await,
            "{adapter:?}: a half-sent handshake is dropped"
        );
        assert!(
            dropped_within(app.addr, b"").await,
            "{adapter:?}: a silent connection is dropped"
        );
        // A prompt client is served.
        let _ws = connect(app.addr, "userName=a").await;
    }
}

#[tokio::test]
async fn the_hyper_adapter_serves_only_its_path() {
    let app = start(Adapter::Hyper, ServerConfig::default()).await;
    let answer = raw(app.addr, &request("GET /elsewhere HTTP/1.1", &[])).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"], "NOT_FOUND");
    let app = start(Adapter::Warp, ServerConfig::default()).await;
    let answer = raw(app.addr, &request("GET /elsewhere HTTP/1.1", &[])).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"], "NOT_FOUND");
}

#[tokio::test]
async fn ten_thousand_connections_from_one_address_fit_the_defaults() {
    // The defaults, not actual sockets (a soak does those): 10 000 slots from one IP.
    let config = ServerConfig::default();
    assert!(config.max_connections_per_ip >= 10_000);
    assert!(config.max_connections >= 10_000);
    let app = zocket_core::testing::TestServer::from_server(
        Server::builder(reference::router()).config(config).build(),
    );
    let mut held = Vec::new();
    for _ in 0..10_000 {
        let req = zocket_core::HandshakeRequest::new("/")
            .remote_addr(Some("127.0.0.1:1".parse().unwrap()));
        held.push(app.server().handshake(req).await.expect("admitted"));
    }
    assert_eq!(app.server().admitted(), (10_000, 1));
    drop(held);
    assert_eq!(app.server().admitted(), (0, 0));
}

/// Collects every log line (all levels) written while it is the default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
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
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    // Everything, except warp's own server, which logs an ERROR per aborted handshake
    // under `warp::serve`: the filter the zocket-warp docs give for it
    // (`zocket_warp::serve` logs those at DEBUG).
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,warp::server=off"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

// current_thread: every task of the server runs on this thread, under the capture.
#[tokio::test(flavor = "current_thread")]
async fn client_caused_events_never_log_at_error_and_secrets_are_redacted() {
    let (logs, _guard) = capture();
    for adapter in ALL {
        let app = start(adapter, ServerConfig::default()).await;
        // Aborted handshakes.
        for _ in 0..5 {
            let mut s = TcpStream::connect(app.addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr")
                .await
                .unwrap();
            drop(s);
        }
        // Garbage instead of HTTP.
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"\x00\x01\x02 not http\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut sink)).await;
        // Refusals.
        raw(app.addr, &request("GET / HTTP/1.0", &[])).await;
        raw(
            app.addr,
            &request(
                "GET /?userRole=nobody&token=query-secret-1 HTTP/1.1",
                &[("Authorization", Some("Bearer header-secret-2"))],
            ),
        )
        .await;
        // A connection with secrets, a long room name and a huge log line.
        let mut ws = connect(
            app.addr,
            "userName=ada&token=query-secret-3&cookie=cookie-secret-4",
        )
        .await;
        let long = "r".repeat(100_000);
        let reply = call(&mut ws, "rooms.join", json!({"roomId": long}), "1").await;
        assert_eq!(reply["error"]["code"], "LIMIT", "{adapter:?}");
        for i in 0..3 {
            let reply = call(
                &mut ws,
                "rooms.join",
                json!({"roomId": format!("{i}")}),
                "j",
            )
            .await;
            assert_eq!(reply["type"], "__rpc_res");
        }
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        let server = app.server.clone();
        eventually("disconnected", || server.admitted().0 == 0).await;
    }
    let text = logs.text();
    assert!(!text.is_empty());
    for line in text.lines() {
        assert!(!line.contains("ERROR"), "client-caused ERROR log: {line}");
        assert!(
            line.len() < 4096,
            "unbounded log line: {} bytes",
            line.len()
        );
    }
    for secret in [
        "query-secret-1",
        "header-secret-2",
        "query-secret-3",
        "cookie-secret-4",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the logs");
    }
    assert!(text.contains("disconnected"), "the disconnect hook logged");
}

#[tokio::test]
async fn room_and_target_limits_answer_limit_on_both_adapters() {
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let config = ServerConfig::default()
            .max_rooms_per_connection(3)
            .max_room_name_bytes(8)
            .max_send_targets(2);
        let app = start(adapter, config).await;
        let mut ws = connect(app.addr, "userName=ada&userRole=admin").await;
        for room in ["a", "b", "c"] {
            let r = call(&mut ws, "rooms.join", json!({"roomId": room}), room).await;
            assert_eq!(r["type"], "__rpc_res", "{r}");
        }
        let r = call(&mut ws, "rooms.join", json!({"roomId": "d"}), "d").await;
        assert_eq!(r["error"]["code"], "LIMIT");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_rooms_per_connection")
        );
        // Joining a room one is in already is not over the limit.
        let r = call(&mut ws, "rooms.join", json!({"roomId": "a"}), "a2").await;
        assert_eq!(r["payload"], json!(["a", "b", "c"]));
        // Leave one: a new join fits again.
        call(&mut ws, "rooms.leave", json!({"roomId": "c"}), "l").await;
        let r = call(&mut ws, "rooms.join", json!({"roomId": "d"}), "d2").await;
        assert_eq!(r["payload"], json!(["a", "b", "d"]));
        let r = call(
            &mut ws,
            "rooms.join",
            json!({"roomId": "123456789"}),
            "long",
        )
        .await;
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_room_name_bytes")
        );
        let r = call(
            &mut ws,
            "notification.send",
            json!({"type": "info", "message": "m", "targets": ["x", "y", "z"]}),
            "n",
        )
        .await;
        assert_eq!(r["error"]["code"], "LIMIT");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_send_targets")
        );
        let r = call(
            &mut ws,
            "chat.room",
            json!({"roomId": "123456789", "message": "m"}),
            "c",
        )
        .await;
        assert_eq!(r["error"]["code"], "LIMIT");
        assert!(app.server.stats().limit_refusals >= 4);
    }
}
