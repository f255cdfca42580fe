//! The adapter conformance kit: the protocol checks (PROTOCOL.md) an adapter must pass
//! over real sockets. An adapter crate calls [`check`] in its tests with "how to serve
//! a [`Server`] on a listener"; the kit starts a fresh server of its own router
//! ([`router`]) for each check, connects real WebSocket clients (tokio-tungstenite) to
//! `ws://ADDR/` and checks, in order:
//!
//! 1. **handshake**: `101` and a `__welcome` frame with the protocol version and a
//!    client id; a header the context refuses is `400 INVALID_HEADERS`, a refused
//!    connect hook `401 UNAUTHORIZED` or `403 FORBIDDEN`, each a JSON body, no upgrade;
//! 2. **call/reply**: `__rpc_res` with the result and the call's `rpcId`; a unit
//!    result has no `payload`; calls pipelined on one socket are all answered;
//! 3. **event**: an event sent to the caller arrives (before the call's reply);
//! 4. **error codes**: `NOT_FOUND`, `INVALID_INPUT`, an application code with its data
//!    (`__rpc_err`), and `BAD_REQUEST` (`__error`) for a frame that is not JSON or is
//!    binary; the connection stays open;
//! 5. **close codes**: a client's close is answered (1000); a message over
//!    [`ServerConfig::max_message_bytes`] closes with 1009; the graceful shutdown closes
//!    with 1001;
//! 6. **ping**: a client ping gets its pong; the server pings on its heartbeat and a
//!    client that answers stays connected.
//!
//! A failed check panics with the check's name and what differed, like an assertion.
//! Needs the `conformance` feature (which implies `test-util`).
//!
//! ```no_run
//! # async fn serve(server: zocket_core::Server<zocket_core::testing::conformance::Peer>, listener: tokio::net::TcpListener) {}
//! # async fn doc() {
//! // In an adapter crate's tests: serve the server's upgrade at `/` on the listener.
//! zocket_core::testing::conformance::check(|server, listener| serve(server, listener)).await;
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{
    Connect, Context, Cx, Event, Heartbeat, Message, Reject, Router, Server, ServerConfig,
};

/// Upper bound of every wait of the kit (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(10);

/// The handshake headers of the kit's context.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerHeaders {
    /// Required: without it the handshake is `400 INVALID_HEADERS`.
    pub user_name: String,
    /// `"bad"`: the connect hook refuses with `401 UNAUTHORIZED`.
    #[serde(default)]
    pub token: Option<String>,
}

/// The kit's connection context: the `userName` header and the peer's address.
/// `userName=mallory` is refused with `403 FORBIDDEN`.
#[derive(Debug)]
pub struct Peer {
    /// The `userName` header.
    pub name: String,
    /// The remote address the adapter passed, if any.
    pub remote: Option<SocketAddr>,
}

impl Context for Peer {
    type Headers = PeerHeaders;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        if conn.headers.token.as_deref() == Some("bad") {
            return Err(Reject::unauthorized("bad token"));
        }
        if conn.headers.user_name == "mallory" {
            return Err(Reject::forbidden("not you"));
        }
        Ok(Peer {
            name: conn.headers.user_name,
            remote: conn.info.remote_addr,
        })
    }
}

/// Empty input.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

/// `whoami {}` → `"NAME from Some(IP)"` (or `from None` without a remote address).
pub enum WhoAmI {}
impl Message for WhoAmI {
    const NAME: &'static str = "whoami";
    type Input = Empty;
    type Output = String;
}

/// `echo ANY` → the input, unchanged.
pub enum Echo {}
impl Message for Echo {
    const NAME: &'static str = "echo";
    type Input = Value;
    type Output = Value;
}

/// `remote {}` → the remote address the adapter passed to the handshake, if any.
pub enum Remote {}
impl Message for Remote {
    const NAME: &'static str = "remote";
    type Input = Empty;
    type Output = Option<SocketAddr>;
}

/// Input of [`Notify`].
#[derive(Debug, Serialize, Deserialize)]
pub struct NotifyIn {
    /// Sent back in the [`Notified`] event.
    pub text: String,
}

/// `notify {text}` sends [`Notified`] `{text}` to the caller, then returns unit.
pub enum Notify {}
impl Message for Notify {
    const NAME: &'static str = "notify";
    type Input = NotifyIn;
    type Output = ();
}

/// The event of [`Notify`].
pub enum Notified {}
impl Event for Notified {
    const NAME: &'static str = "notified";
    type Payload = NotifyIn;
}

/// `teapot {}` fails with code `TEAPOT`, message `"I'm a teapot"`, data
/// `{"hint":"try coffee"}`.
pub enum Teapot {}
impl Message for Teapot {
    const NAME: &'static str = "teapot";
    type Input = Empty;
    type Output = ();
}

/// The kit's router: [`WhoAmI`], [`Remote`], [`Echo`], [`Notify`], [`Teapot`].
pub fn router() -> Router<Peer> {
    Router::new()
        .on::<WhoAmI>(|cx: Cx<Peer>, _: Empty| async move {
            Ok::<_, Reject>(format!("{} from {:?}", cx.name, cx.remote.map(|a| a.ip())))
        })
        .on::<Remote>(|cx: Cx<Peer>, _: Empty| async move { Ok::<_, Reject>(cx.remote) })
        .on::<Echo>(|_: Cx<Peer>, v: Value| async move { Ok::<_, Reject>(v) })
        .on::<Notify>(|cx: Cx<Peer>, input: NotifyIn| async move {
            let _ = cx.reply_event::<Notified>(input);
            Ok::<_, Reject>(())
        })
        .on::<Teapot>(|_: Cx<Peer>, _: Empty| async move {
            Err::<(), _>(
                Reject::new("TEAPOT", "I'm a teapot").with_data(json!({"hint": "try coffee"})),
            )
        })
}

/// A server of the kit's router with `config`.
pub fn server(config: ServerConfig) -> Server<Peer> {
    Server::builder(router()).config(config).build()
}

/// Connect to `url` (e.g. `ws://ADDR/ws?userName=ada`), read `__welcome`, call
/// [`WhoAmI`] and return its answer.
pub async fn who_am_i(url: &str) -> String {
    let mut ws = Ws::connect(url).await;
    ws.welcome().await;
    let reply = ws.call("whoami", json!({}), "1").await;
    assert_eq!(reply["type"], "__rpc_res", "whoami: {reply}");
    reply["payload"].as_str().unwrap_or_default().to_owned()
}

/// Connect to `ws://ADDR{path}?userName=ada` from a socket whose local address is
/// known; returns it and the address the server's handshake saw ([`Remote`]).
pub async fn peer_seen_by_the_server(
    addr: SocketAddr,
    path: &str,
) -> (SocketAddr, Option<SocketAddr>) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("conformance: connect");
    let me = stream.local_addr().expect("conformance: local address");
    let url = format!("ws://{addr}{path}?userName=ada");
    let stream = MaybeTlsStream::Plain(stream);
    let ws = match tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, stream)).await {
        Ok(Ok((ws, _))) => ws,
        other => panic!("conformance: no upgrade at {addr}{path}: {other:?}"),
    };
    let mut ws = Ws(ws);
    ws.welcome().await;
    let reply = ws.call("remote", json!({}), "1").await;
    assert_eq!(reply["type"], "__rpc_res", "remote: {reply}");
    let seen = serde_json::from_value(reply["payload"].clone())
        .unwrap_or_else(|e| panic!("remote: not an address ({e}): {reply}"));
    (me, seen)
}

/// Run every check against the adapter that `serve` starts: it is given a fresh
/// server of the kit's [`router`] and a listener on `127.0.0.1:0`, and must serve the
/// server's WebSocket upgrade at `/` on it until the server shuts down (its future is
/// spawned and aborted after the check).
pub async fn check<F, Fut>(mut serve: F)
where
    F: FnMut(Server<Peer>, TcpListener) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut start = async |config: ServerConfig| {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("conformance: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("conformance: local address");
        let server = server(config);
        let task = tokio::spawn(serve(server.clone(), listener));
        Running { server, addr, task }
    };
    handshake(&start(ServerConfig::default()).await).await;
    call_reply(&start(ServerConfig::default()).await).await;
    event(&start(ServerConfig::default()).await).await;
    error_codes(&start(ServerConfig::default()).await).await;
    close_codes(&start(ServerConfig::default().max_message_bytes(1024)).await).await;
    ping(
        &start(ServerConfig::default().heartbeat(Heartbeat::new(
            Duration::from_millis(100),
            Duration::from_millis(2000),
        )))
        .await,
    )
    .await;
}

/// A server the adapter serves; its task is aborted on drop.
struct Running {
    server: Server<Peer>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Running {
    async fn client(&self, query: &str) -> Ws {
        let mut ws = Ws::connect(&format!("ws://{}/?{query}", self.addr)).await;
        ws.welcome().await;
        ws
    }
}

/// A raw WebSocket client of the kit.
struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    async fn connect(url: &str) -> Ws {
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, response))) => {
                assert_eq!(response.status(), 101, "conformance: upgrade of {url}");
                Ws(ws)
            }
            Ok(Err(e)) => panic!("conformance: {url} was not upgraded: {e}"),
            Err(_) => panic!("conformance: no upgrade of {url} within {WAIT:?}"),
        }
    }

    /// The next message that is not a ping or pong (`None`: the stream ended).
    async fn next(&mut self) -> Option<WsMessage> {
        loop {
            match tokio::time::timeout(WAIT, self.0.next()).await {
                Err(_) => panic!("conformance: nothing received within {WAIT:?}"),
                Ok(None | Some(Err(_))) => return None,
                Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                Ok(Some(Ok(m))) => return Some(m),
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.next().await {
            Some(WsMessage::Text(t)) => serde_json::from_str(t.as_str())
                .unwrap_or_else(|e| panic!("conformance: a frame that is not JSON ({e}): {t}")),
            other => panic!("conformance: expected a text frame, got {other:?}"),
        }
    }

    async fn welcome(&mut self) -> Value {
        let w = self.json().await;
        assert_eq!(w["type"], "__welcome", "handshake: the first frame: {w}");
        assert_eq!(w["payload"]["version"], "1", "handshake: the version: {w}");
        assert!(
            w["payload"]["clientId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "handshake: a client id: {w}"
        );
        w
    }

    async fn send(&mut self, text: String) {
        self.0
            .send(WsMessage::text(text))
            .await
            .expect("conformance: send a frame");
    }

    async fn call(&mut self, kind: &str, payload: Value, id: &str) -> Value {
        self.send(json!({"type": kind, "payload": payload, "rpcId": id}).to_string())
            .await;
        self.json().await
    }

    /// Read until the server's close frame: its code (`None`: the stream ended first).
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Some(WsMessage::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }
}

/// An upgrade request over raw HTTP/1.1: status, head, body.
async fn raw_upgrade(addr: SocketAddr, query: &str) -> (u16, String, String) {
    let request = format!(
        "GET /?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let read = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("conformance: connect");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("conformance: send the request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "handshake: the connection closed before an answer");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("handshake: no status in {head:?}"));
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = buf[end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "handshake: the connection closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        (status, head, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("handshake: an HTTP answer in time")
}

async fn handshake(app: &Running) {
    drop(app.client("userName=ada").await);
    for (query, status, code) in [
        ("", 400, "INVALID_HEADERS"),
        ("userName=ada&token=bad", 401, "UNAUTHORIZED"),
        ("userName=mallory", 403, "FORBIDDEN"),
    ] {
        let (got, head, body) = raw_upgrade(app.addr, query).await;
        assert_eq!(got, status, "handshake: `{query}`: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/json"),
            "handshake: `{query}` is answered with JSON: {head}"
        );
        assert!(
            !lower.contains("sec-websocket-accept"),
            "handshake: `{query}` is not upgraded: {head}"
        );
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("handshake: `{query}`: a JSON body ({e}): {body}"));
        assert_eq!(body["error"], code, "handshake: `{query}`: {body}");
        assert!(body["message"].is_string(), "handshake: `{query}`: {body}");
    }
}

async fn call_reply(app: &Running) {
    let mut ws = app.client("userName=ada").await;
    let reply = ws.call("echo", json!({"a": [1, 2]}), "r1").await;
    assert_eq!(
        reply,
        json!({"type": "__rpc_res", "rpcId": "r1", "payload": {"a": [1, 2]}}),
        "call/reply"
    );
    let who = ws.call("whoami", json!({}), "r2").await;
    assert_eq!(who["rpcId"], "r2", "call/reply: {who}");
    assert!(
        who["payload"]
            .as_str()
            .is_some_and(|s| s.starts_with("ada from ")),
        "call/reply: the context built from the headers: {who}"
    );
    // Pipelined: every call is answered once.
    for i in 0..50 {
        let frame = json!({"type": "echo", "payload": i, "rpcId": format!("p{i}")});
        ws.0.feed(WsMessage::text(frame.to_string()))
            .await
            .expect("conformance: queue a frame");
    }
    ws.0.flush().await.expect("conformance: flush");
    let mut seen = [false; 50];
    for _ in 0..50 {
        let reply = ws.json().await;
        let i = reply["payload"].as_u64().expect("call/reply: a number") as usize;
        assert_eq!(reply["rpcId"], format!("p{i}"), "call/reply: {reply}");
        assert!(!seen[i], "call/reply: answered twice: {reply}");
        seen[i] = true;
    }
}

async fn event(app: &Running) {
    let mut ws = app.client("userName=ada").await;
    ws.send(json!({"type": "notify", "payload": {"text": "hi"}, "rpcId": "n1"}).to_string())
        .await;
    let first = ws.json().await;
    assert_eq!(
        first,
        json!({"type": "notified", "payload": {"text": "hi"}}),
        "event: the event, before the reply"
    );
    let reply = ws.json().await;
    assert_eq!(
        reply,
        json!({"type": "__rpc_res", "rpcId": "n1"}),
        "event: a unit reply has no payload"
    );
}

async fn error_codes(app: &Running) {
    let mut ws = app.client("userName=ada").await;
    let r = ws.call("no.such", json!({}), "e1").await;
    assert_eq!(
        (&r["type"], &r["rpcId"], &r["error"]["code"]),
        (&json!("__rpc_err"), &json!("e1"), &json!("NOT_FOUND")),
        "error codes: {r}"
    );
    let r = ws.call("notify", json!({"text": 5}), "e2").await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT", "error codes: {r}");
    let r = ws.call("teapot", json!({}), "e3").await;
    assert_eq!(
        r["error"],
        json!({"code": "TEAPOT", "message": "I'm a teapot", "data": {"hint": "try coffee"}}),
        "error codes: {r}"
    );
    ws.send("not json".to_owned()).await;
    let r = ws.json().await;
    assert_eq!(
        (&r["type"], &r["error"]["code"]),
        (&json!("__error"), &json!("BAD_REQUEST")),
        "error codes: {r}"
    );
    ws.0.send(WsMessage::binary(b"{}".to_vec()))
        .await
        .expect("conformance: send a binary frame");
    let r = ws.json().await;
    assert_eq!(
        r["error"]["code"], "BAD_REQUEST",
        "error codes: binary: {r}"
    );
    let r = ws.call("echo", json!("still open"), "e4").await;
    assert_eq!(r["payload"], "still open", "error codes: {r}");
}

async fn close_codes(app: &Running) {
    // The client closes: the server answers the close.
    let mut ws = app.client("userName=ada").await;
    ws.0.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("conformance: send a close");
    assert_eq!(
        ws.close_code().await,
        Some(1000),
        "close codes: a client close"
    );
    // Over max_message_bytes (1024 here): 1009.
    let mut ws = app.client("userName=ada").await;
    ws.send("x".repeat(1025)).await;
    assert_eq!(ws.close_code().await, Some(1009), "close codes: too big");
    // The graceful shutdown: 1001.
    let mut ws = app.client("userName=ada").await;
    let (_, code) = tokio::join!(app.server.shutdown(), ws.close_code());
    assert_eq!(code, Some(1001), "close codes: the shutdown");
}

async fn ping(app: &Running) {
    let mut ws = app.client("userName=ada").await;
    ws.0.send(WsMessage::Ping(b"conformance".to_vec().into()))
        .await
        .expect("conformance: send a ping");
    // The pong to this ping, and (heartbeat every 100 ms) pings of the server's own.
    let mut pong = false;
    let mut server_pings = 0;
    while !pong || server_pings < 3 {
        match tokio::time::timeout(WAIT, ws.0.next()).await {
            Ok(Some(Ok(WsMessage::Pong(p)))) => {
                assert_eq!(&p[..], b"conformance", "ping: the pong's payload");
                pong = true;
            }
            // tungstenite answers it when it next writes or reads.
            Ok(Some(Ok(WsMessage::Ping(_)))) => server_pings += 1,
            other => panic!("ping: expected a pong or a ping, got {other:?}"),
        }
    }
    // A client that answers the pings is still served.
    let r = ws.call("echo", json!(1), "after").await;
    assert_eq!(r["payload"], 1, "ping: {r}");
    assert_eq!(
        app.server.stats().heartbeat_timeouts,
        0,
        "ping: no heartbeat timeout"
    );
}
