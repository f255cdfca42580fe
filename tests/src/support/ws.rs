//! A client speaking raw JSON frames, so that the tests pin the wire protocol itself,
//! not a client library's view of it: over a real socket (tokio-tungstenite), or over
//! a virtual connection of `zocket_core::testing` (the same frames, no socket), so
//! that one scenario runs on every transport ([`super::harness`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use zocket_core::protocol::WsFrame;
use zocket_core::testing::{TestClient, TestError};

use super::WAIT;

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

/// A socket, or a virtual connection.
enum Link {
    Socket(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// A `zocket_core::testing` client and the index of its next unread frame.
    InProcess(TestClient, usize),
}

/// What the link gave next.
enum Next {
    Text(String),
    Close(Option<(u16, String)>),
    Dropped(String),
    Nothing,
}

/// A client speaking raw JSON frames.
pub struct RawClient {
    link: Link,
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
        Self::from_stream(ws).await
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
        Self::from_stream(ws).await
    }

    /// A virtual connection of `zocket_core::testing` (its `__welcome` already read).
    pub async fn in_process(client: TestClient) -> RawClient {
        Self::from_link(Link::InProcess(client, 0)).await
    }

    /// Over an upgraded socket: reads the `__welcome` frame.
    pub async fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> RawClient {
        Self::from_link(Link::Socket(Box::new(ws))).await
    }

    async fn from_link(link: Link) -> RawClient {
        let mut client = RawClient {
            link,
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
        match &mut self.link {
            Link::Socket(ws) => ws
                .send(Message::text(text.into()))
                .await
                .expect("the frame is sent"),
            Link::InProcess(c, _) => c.send_raw(text).expect("the frame is sent"),
        }
    }

    /// Send one binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        match &mut self.link {
            Link::Socket(ws) => ws
                .send(Message::binary(bytes))
                .await
                .expect("the frame is sent"),
            Link::InProcess(c, _) => c
                .send_frame(WsFrame::Binary(bytes.into()))
                .expect("the frame is sent"),
        }
    }

    /// Queue several text frames and flush them at once (pipelined).
    pub async fn send_all(&mut self, frames: impl IntoIterator<Item = Value>) {
        match &mut self.link {
            Link::Socket(ws) => {
                for frame in frames {
                    ws.feed(Message::text(frame.to_string()))
                        .await
                        .expect("the frame is queued");
                }
                ws.flush().await.expect("the frames are sent");
            }
            Link::InProcess(c, _) => {
                for frame in frames {
                    c.send_raw(frame.to_string()).expect("the frame is sent");
                }
            }
        }
    }

    /// The next thing the link gives within `within` (pings and pongs skipped).
    async fn next(&mut self, within: Duration) -> Next {
        match &mut self.link {
            Link::Socket(ws) => {
                let deadline = tokio::time::Instant::now() + within;
                loop {
                    match tokio::time::timeout_at(deadline, ws.next()).await {
                        Err(_) => return Next::Nothing,
                        Ok(Some(Ok(Message::Text(text)))) => return Next::Text(text.to_string()),
                        Ok(Some(Ok(Message::Close(close)))) => {
                            return Next::Close(
                                close.map(|c| (u16::from(c.code), c.reason.to_string())),
                            );
                        }
                        Ok(Some(Ok(Message::Binary(b)))) => {
                            panic!("unexpected binary frame {b:?}")
                        }
                        Ok(Some(Ok(_))) => continue,
                        Ok(Some(Err(e))) => return Next::Dropped(e.to_string()),
                        Ok(None) => return Next::Dropped("end of stream".into()),
                    }
                }
            }
            Link::InProcess(c, next) => match c.frame_within(*next, within).await {
                Ok(text) => {
                    *next += 1;
                    Next::Text(text)
                }
                Err(TestError::Timeout(_)) => Next::Nothing,
                Err(TestError::Closed) => match c.closed().await {
                    Ok(close) => Next::Close(close.map(|c| (c.code, c.reason.into_owned()))),
                    Err(e) => Next::Dropped(e.to_string()),
                },
                Err(e) => Next::Dropped(e.to_string()),
            },
        }
    }

    /// The next text frame from the link (not from `pending`), as JSON.
    async fn read(&mut self) -> Value {
        match self.next(WAIT).await {
            Next::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}")),
            Next::Nothing => panic!("no frame within {WAIT:?}"),
            Next::Close(c) => panic!("expected a text frame, got a close {c:?}"),
            Next::Dropped(e) => panic!("expected a text frame, the connection ended: {e}"),
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
        match self.next(wait).await {
            Next::Nothing => {}
            Next::Text(text) => panic!("expected no frame, got {text}"),
            Next::Close(c) => panic!("expected no frame, got a close {c:?}"),
            Next::Dropped(e) => panic!("expected no frame, the connection ended: {e}"),
        }
    }

    /// Read until the connection ends; returns how, and the text frames read meanwhile
    /// (after the pending ones).
    pub async fn ended(&mut self) -> (Ended, Vec<Value>) {
        let mut frames: Vec<Value> = self.pending.drain(..).collect();
        loop {
            match self.next(WAIT).await {
                Next::Text(text) => frames.push(serde_json::from_str(&text).unwrap()),
                Next::Close(close) => {
                    self.finish_close().await;
                    let ended = match close {
                        Some((code, reason)) => Ended::Close(code, reason),
                        None => Ended::CloseWithoutCode,
                    };
                    return (ended, frames);
                }
                Next::Dropped(e) => return (Ended::Dropped(e), frames),
                Next::Nothing => panic!("the connection did not end within {WAIT:?}"),
            }
        }
    }

    /// After the server's close frame, as a real client does: keep polling, so that
    /// tungstenite sends its close reply, until the server ends the TCP connection
    /// (a virtual connection answers the close by itself).
    async fn finish_close(&mut self) {
        if let Link::Socket(ws) = &mut self.link {
            let _ = tokio::time::timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
        }
    }

    /// The close code the connection ends with (panics if it ends without one).
    pub async fn close_code(&mut self) -> u16 {
        match self.ended().await {
            (Ended::Close(code, _), _) => code,
            (other, frames) => panic!("expected a close frame, got {other:?} after {frames:?}"),
        }
    }

    /// Close the connection normally (1000), and wait for the server's close reply.
    pub async fn close(mut self) {
        match &mut self.link {
            Link::Socket(ws) => {
                let _ = WebSocketStream::close(
                    ws.as_mut(),
                    Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: CloseCode::Normal,
                        reason: "bye".into(),
                    }),
                )
                .await;
                let _ =
                    tokio::time::timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
            }
            Link::InProcess(c, _) => {
                c.close().await;
                let _ = c.closed().await;
            }
        }
    }
}
