//! Shared by the end-to-end tests of the reference app over real sockets: the server
//! on either adapter in this process, a raw JSON WebSocket client, and a raw HTTP
//! upgrade request for handshake refusals.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use warp::Filter;
use zocket_core::{Server, ServerConfig, StatsSnapshot};
use zocket_examples::reference::{self, RefCtx};

/// Upper bound of every wait in these tests (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(10);

/// The adapter that serves the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `zocket_warp::upgrade`, mounted at `/` as in the `reference` binary.
    Warp,
    /// `zocket_hyper::serve`.
    Hyper,
}

/// The reference router served on `127.0.0.1:0` in this process.
pub struct RefServer {
    /// The Zocket server (stats, shutdown).
    pub server: Server<RefCtx>,
    /// Where it listens.
    pub addr: SocketAddr,
    stop_http: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<JoinHandle<()>>,
}

impl RefServer {
    /// Start with the default configuration.
    pub async fn start(adapter: Adapter) -> RefServer {
        Self::start_with(adapter, ServerConfig::default()).await
    }

    /// Start with `config`.
    pub async fn start_with(adapter: Adapter, config: ServerConfig) -> RefServer {
        let server = Server::builder(reference::router()).config(config).build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let http = match adapter {
            Adapter::Warp => tokio::spawn(
                warp::serve(zocket_warp::upgrade(server.clone()).with(warp::trace::request()))
                    .incoming(listener)
                    .graceful(async {
                        let _ = stopped.await;
                    })
                    .run(),
            ),
            Adapter::Hyper => tokio::spawn(zocket_hyper::serve(listener, server.clone())),
        };
        RefServer {
            server,
            addr,
            stop_http: Some(stop_http),
            http: Some(http),
        }
    }

    /// The server's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.server.stats()
    }

    /// Connect a client with these handshake query parameters (e.g. `userName=ada`).
    pub async fn client(&self, query: &str) -> RawClient {
        RawClient::connect(self.addr, query).await
    }

    /// Graceful shutdown of the Zocket server, then of the HTTP server.
    pub async fn shutdown(&mut self) {
        self.server.shutdown().await;
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        if let Some(http) = self.http.take() {
            tokio::time::timeout(WAIT, http)
                .await
                .expect("the HTTP server stops after the shutdown")
                .expect("the HTTP server task does not fail");
        }
    }

    /// Wait until `cond` holds for the stats (bounded by [`WAIT`]).
    pub async fn wait_stats(&self, what: &str, cond: impl Fn(&StatsSnapshot) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if cond(&stats) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stats never showed {what}: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        if let Some(http) = &self.http {
            http.abort();
        }
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code (and reason).
    Close(u16, String),
    /// A close frame without a code.
    CloseWithoutCode,
    /// The TCP connection ended without a close frame.
    Dropped(String),
}

/// A WebSocket client speaking raw JSON frames.
pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `clientId` of the `__welcome` frame.
    pub client_id: String,
    /// Frames read but not yet consumed, in arrival order.
    pending: VecDeque<Value>,
    next_rpc: u64,
}

impl RawClient {
    /// Connect to `ws://addr/?query` and read the `__welcome` frame.
    pub async fn connect(addr: SocketAddr, query: &str) -> RawClient {
        let url = format!("ws://{addr}/?{query}");
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("the handshake is accepted");
        assert_eq!(response.status(), 101);
        Self::from_socket(ws).await
    }

    /// Connect over a TCP socket with a small receive buffer (a client that stops
    /// reading then fills up quickly).
    pub async fn connect_small_buffer(addr: SocketAddr, query: &str) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let url = format!("ws://{addr}/?{query}");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("the handshake is accepted");
        Self::from_socket(ws).await
    }

    async fn from_socket(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> RawClient {
        let mut client = RawClient {
            ws,
            client_id: String::new(),
            pending: VecDeque::new(),
            next_rpc: 0,
        };
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "__welcome", "{welcome}");
        assert_eq!(welcome["payload"]["version"], "1", "{welcome}");
        client.client_id = welcome["payload"]["clientId"]
            .as_str()
            .expect("a string clientId")
            .to_owned();
        client
    }

    /// Send one JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Send one text frame as is.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("the frame is sent");
    }

    /// Send one binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("the frame is sent");
    }

    /// Queue several text frames and flush them at once (pipelined).
    pub async fn send_all(&mut self, frames: impl IntoIterator<Item = Value>) {
        for frame in frames {
            self.ws
                .feed(Message::text(frame.to_string()))
                .await
                .expect("the frame is queued");
        }
        self.ws.flush().await.expect("the frames are sent");
    }

    /// The next text frame from the socket (not from `pending`), as JSON.
    async fn read(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"));
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame in arrival order (first the ones already read), as JSON.
    pub async fn recv(&mut self) -> Value {
        match self.pending.pop_front() {
            Some(frame) => frame,
            None => self.read().await,
        }
    }

    /// The next frame must be the event `kind`: returns its payload.
    pub async fn event(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(
            frame["type"], kind,
            "expected the event `{kind}`, got {frame}"
        );
        assert!(frame.get("rpcId").is_none(), "{frame}");
        frame["payload"].clone()
    }

    /// Send `{type, payload, rpcId}` and read until the frame answering that `rpcId`
    /// (`__rpc_res` or `__rpc_err`), which is returned whole; frames that arrive before
    /// it stay in order for [`recv`](Self::recv) / [`event`](Self::event).
    pub async fn call(&mut self, kind: &str, payload: Value) -> Value {
        let id = self.send_rpc(kind, Some(payload)).await;
        self.reply(&id).await
    }

    /// Send an RPC frame (payload omitted when `None`) without waiting; returns its id.
    pub async fn send_rpc(&mut self, kind: &str, payload: Option<Value>) -> String {
        self.next_rpc += 1;
        let id = format!("r{}", self.next_rpc);
        let mut frame = json!({"type": kind, "rpcId": id});
        if let Some(payload) = payload {
            frame["payload"] = payload;
        }
        self.send(frame).await;
        id
    }

    /// Read until the reply of `rpc_id` (other frames are kept, in order).
    pub async fn reply(&mut self, rpc_id: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|f| f["rpcId"] == rpc_id) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let frame = self.read().await;
            if frame["rpcId"] == rpc_id {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// A call that must succeed: returns the result's payload (`None` when the frame
    /// has no `payload`, i.e. a unit result).
    pub async fn ok(&mut self, kind: &str, payload: Value) -> Option<Value> {
        let frame = self.call(kind, payload).await;
        assert_eq!(frame["type"], "__rpc_res", "{kind} failed: {frame}");
        frame.get("payload").cloned()
    }

    /// A call that must fail: returns the `error` object of the `__rpc_err`.
    pub async fn err(&mut self, kind: &str, payload: Value) -> Value {
        let frame = self.call(kind, payload).await;
        assert_eq!(
            frame["type"], "__rpc_err",
            "{kind} should have failed: {frame}"
        );
        frame["error"].clone()
    }

    /// Nothing arrives within `wait` (and nothing unconsumed is pending).
    pub async fn no_frame(&mut self, wait: Duration) {
        assert!(
            self.pending.is_empty(),
            "unexpected frames: {:?}",
            self.pending
        );
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected no frame, got {other:?}"),
            }
        }
    }

    /// Read until the connection ends; returns how, and the text frames read meanwhile
    /// (after the pending ones).
    pub async fn ended(&mut self) -> (Ended, Vec<Value>) {
        let mut frames: Vec<Value> = self.pending.drain(..).collect();
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("the connection did not end within {WAIT:?}"));
            match msg {
                Some(Ok(Message::Text(text))) => {
                    frames.push(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(Ok(Message::Close(Some(close)))) => {
                    self.finish_close().await;
                    return (
                        Ended::Close(u16::from(close.code), close.reason.to_string()),
                        frames,
                    );
                }
                Some(Ok(Message::Close(None))) => {
                    self.finish_close().await;
                    return (Ended::CloseWithoutCode, frames);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return (Ended::Dropped(e.to_string()), frames),
                None => return (Ended::Dropped("end of stream".into()), frames),
            }
        }
    }

    /// After the server's close frame, as a real client does: keep polling, so that
    /// tungstenite sends its close reply, until the server ends the TCP connection.
    async fn finish_close(&mut self) {
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }

    /// The close code the connection ends with (panics if it ends without one).
    pub async fn close_code(&mut self) -> u16 {
        match self.ended().await {
            (Ended::Close(code, _), _) => code,
            (other, frames) => panic!("expected a close frame, got {other:?} after {frames:?}"),
        }
    }

    /// Close the connection normally.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
        // Drain until the server's close reply.
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }
}

/// A refused or accepted upgrade, read over raw HTTP/1.1.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The head, lower-cased header names included as sent.
    pub head: String,
    /// The body (JSON for refusals).
    pub body: String,
}

impl HttpAnswer {
    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Send a WebSocket upgrade request for `path_and_query` over raw HTTP/1.1 and read the
/// answer: the head, then `content-length` bytes of body (a `101` has none).
pub async fn upgrade_request(addr: SocketAddr, path_and_query: &str) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let mut answer = HttpAnswer {
                    status: head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("no status in {head:?}")),
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

/// Whether `s` is an RFC 3339 timestamp.
pub fn is_rfc3339(s: &Value) -> bool {
    s.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}
