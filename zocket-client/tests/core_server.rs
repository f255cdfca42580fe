//! The client against the real `zocket-core` server (handshake and connection driver),
//! served over tokio-tungstenite by a minimal adapter written here, on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use zocket_client::{Client, ConnectError, ConnectionState, Heartbeat, Reconnect};
use zocket_core::HandshakeRequest;
use zocket_core::protocol::TransportError;
use zocket_core::protocol::{CloseFrame, Text, WsFrame};
use zocket_core::{Connect, Context, Cx, Event, Message, Reject, Router, Server, ServerConfig};

const WAIT: Duration = Duration::from_secs(10);

// ---- contract ----

#[derive(Debug, Serialize, Deserialize)]
pub struct GreetIn {
    pub name: String,
}
pub enum Greet {}
impl Message for Greet {
    const NAME: &'static str = "greet";
    type Input = GreetIn;
    type Output = String;
}
pub enum Log {}
impl Message for Log {
    const NAME: &'static str = "log";
    type Input = String;
    type Output = ();
}
pub enum FailError {}
impl Message for FailError {
    const NAME: &'static str = "fail.error";
    type Input = serde_json::Value;
    type Output = ();
}
#[derive(Debug, Serialize, Deserialize)]
pub struct SleepIn {
    pub ms: u64,
}
pub enum Sleep {}
impl Message for Sleep {
    const NAME: &'static str = "slow.sleep";
    type Input = SleepIn;
    type Output = u64;
    fn validate(input: &SleepIn) -> Result<(), Reject> {
        if input.ms > 30_000 {
            return Err(Reject::invalid_input("ms: at most 30000"));
        }
        Ok(())
    }
}
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomIn {
    pub room_id: String,
}
pub enum Join {}
impl Message for Join {
    const NAME: &'static str = "rooms.join";
    type Input = RoomIn;
    type Output = Vec<String>;
}
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SayIn {
    pub room_id: String,
    pub content: String,
}
pub enum Say {}
impl Message for Say {
    const NAME: &'static str = "rooms.message";
    type Input = SayIn;
    type Output = ();
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMsg {
    pub room_id: String,
    pub user_name: String,
    pub content: String,
}
pub enum RoomMessage {}
impl Event for RoomMessage {
    const NAME: &'static str = "rooms.message";
    type Payload = RoomMsg;
}

// ---- server ----

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    user_name: Option<String>,
    #[allow(dead_code)]
    user_role: Option<Role>,
    token: Option<String>,
}
pub struct User {
    name: String,
}
impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        let h = conn.headers;
        match h.token.as_deref() {
            Some("bad") => return Err(Reject::unauthorized("bad token")),
            Some("banned") => return Err(Reject::forbidden("banned")),
            _ => {}
        }
        Ok(User {
            name: h.user_name.unwrap_or_else(|| "User".into()),
        })
    }
}

async fn greet(_: Cx<User>, input: GreetIn) -> Result<String, Reject> {
    Ok(format!("Hello, {}!", input.name))
}
async fn log(_: Cx<User>, _: String) -> Result<(), Reject> {
    Ok(())
}
async fn fail_error(_: Cx<User>, _: serde_json::Value) -> Result<(), Reject> {
    Err(Reject::new("TEAPOT", "I'm a teapot").with_data(json!({"hint":"try coffee"})))
}
async fn sleep(_: Cx<User>, input: SleepIn) -> Result<u64, Reject> {
    tokio::time::sleep(Duration::from_millis(input.ms)).await;
    Ok(input.ms)
}
async fn join(cx: Cx<User>, input: RoomIn) -> Result<Vec<String>, Reject> {
    cx.rooms().join(&input.room_id)?;
    Ok(cx.rooms().current())
}
async fn say(cx: Cx<User>, input: SayIn) -> Result<(), Reject> {
    if !cx.rooms().has(&input.room_id) {
        return Err(Reject::forbidden("not in the room"));
    }
    let msg = RoomMsg {
        room_id: input.room_id.clone(),
        user_name: cx.name.clone(),
        content: input.content,
    };
    let _ = cx.send::<RoomMessage>(msg).to_room(input.room_id);
    Ok(())
}

fn router() -> Router<User> {
    Router::new()
        .on::<Greet>(greet)
        .on::<Log>(log)
        .on::<FailError>(fail_error)
        .on::<Sleep>(sleep)
        .on::<Join>(join)
        .on::<Say>(say)
}

// ---- a minimal tokio-tungstenite adapter ----

struct Served {
    addr: SocketAddr,
    server: Server<User>,
    accept: JoinHandle<()>,
    upgrades: Arc<AtomicUsize>,
}

impl Served {
    async fn start(addr: SocketAddr, config: ServerConfig) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener: TcpListener = socket.listen(128).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::builder(router()).config(config).build();
        let upgrades = Arc::new(AtomicUsize::new(0));
        let (s, u) = (server.clone(), upgrades.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                tokio::spawn(serve_one(s.clone(), stream, peer, u.clone()));
            }
        });
        Self {
            addr,
            server,
            accept,
            upgrades,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Graceful shutdown (close 1001), then free the port.
    async fn shutdown(self) {
        self.accept.abort();
        let _ = self.accept.await;
        self.server.shutdown().await;
    }
}

/// The request head, peeked (not consumed) so tungstenite can still read it.
async fn peek_head(stream: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(pos) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8(buf[..pos].to_vec()).ok();
        }
        if n == buf.len() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn serve_one(
    server: Server<User>,
    mut stream: TcpStream,
    peer: SocketAddr,
    upgrades: Arc<AtomicUsize>,
) {
    let Some(head) = peek_head(&stream).await else {
        return;
    };
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let req = HandshakeRequest::new(path)
        .query(query)
        .headers(headers)
        .remote_addr(peer);
    let accepted = match server.handshake(req).await {
        Ok(a) => a,
        Err(e) => {
            let body = e.body();
            let resp = format!(
                "HTTP/1.1 {} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                e.status(),
                body.len(),
                body
            );
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    upgrades.fetch_add(1, Ordering::SeqCst);
    let (sink, stream) = ws.split();
    let stream = stream.filter_map(|m| async move {
        match m {
            Ok(WsMessage::Text(t)) => Some(Ok(WsFrame::Text(Text::from(t.as_str())))),
            Ok(WsMessage::Binary(b)) => Some(Ok(WsFrame::Binary(b))),
            Ok(WsMessage::Ping(b)) => Some(Ok(WsFrame::Ping(b))),
            Ok(WsMessage::Pong(b)) => Some(Ok(WsFrame::Pong(b))),
            Ok(WsMessage::Close(c)) => Some(Ok(WsFrame::Close(c.map(|c| CloseFrame {
                code: c.code.into(),
                reason: c.reason.to_string().into(),
            })))),
            Ok(WsMessage::Frame(_)) => None,
            Err(e) => Some(Err(TransportError::Other(e.to_string()))),
        }
    });
    let sink = sink.with(|f: WsFrame| async move {
        Ok::<_, tokio_tungstenite::tungstenite::Error>(match f {
            WsFrame::Text(t) => WsMessage::text(t.as_str().to_owned()),
            WsFrame::Binary(b) => WsMessage::Binary(b),
            WsFrame::Ping(b) => WsMessage::Ping(b),
            WsFrame::Pong(b) => WsMessage::Pong(b),
            WsFrame::Close(c) => WsMessage::Close(c.map(|c| TCloseFrame {
                code: c.code.into(),
                reason: c.reason.to_string().into(),
            })),
        })
    });
    accepted.serve(Box::pin(stream), Box::pin(sink)).await;
}

async fn start() -> Served {
    Served::start("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).await
}

// ---- tests ----

#[tokio::test]
async fn calls_and_typed_errors_against_the_real_driver() {
    let served = start().await;
    let client = Client::builder(served.url())
        .header("userName", "Ada")
        .connect()
        .await
        .unwrap();
    assert!(client.client_id().is_some(), "__welcome carries the id");
    assert_eq!(
        client
            .call::<Greet>(GreetIn { name: "Ada".into() })
            .await
            .unwrap(),
        "Hello, Ada!"
    );
    client.call::<Log>("unit output".into()).await.unwrap();
    // The client gets the very `Reject` the handler returned.
    assert_eq!(
        client
            .call::<FailError>(json!({}))
            .await
            .unwrap_err()
            .rejection(),
        Some(&Reject::new("TEAPOT", "I'm a teapot").with_data(json!({"hint": "try coffee"})))
    );
    let err = client
        .call::<Sleep>(SleepIn { ms: 40_000 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_INPUT"));
    let err = client
        .call_raw("greet", json!({"nom": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_INPUT"));
    let err = client.call_raw("nope", json!(null)).await.unwrap_err();
    assert_eq!(err.code(), Some("NOT_FOUND"));
    let err = client
        .call_with_timeout::<Sleep>(SleepIn { ms: 800 }, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let err = client
        .call::<Say>(SayIn {
            room_id: "x".into(),
            content: "hi".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("FORBIDDEN"));
    served.shutdown().await;
}

#[tokio::test]
async fn thousand_concurrent_calls_against_the_real_driver() {
    let served = start().await;
    let client = Client::builder(served.url()).connect().await.unwrap();
    let calls = (0..1000u64).map(|i| {
        let client = client.clone();
        async move {
            let ms = (i * 7919) % 17;
            let got = client
                .call_with_timeout::<Sleep>(SleepIn { ms }, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(got, ms);
            let hello = client
                .call_with_timeout::<Greet>(
                    GreetIn {
                        name: format!("n{i}"),
                    },
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            assert_eq!(hello, format!("Hello, n{i}!"));
        }
    });
    futures::future::join_all(calls).await;
    served.shutdown().await;
}

#[tokio::test]
async fn handshake_rejections_from_the_real_server() {
    let served = start().await;
    let err = Client::builder(served.url())
        .header("token", "bad")
        .connect()
        .await
        .unwrap_err();
    let r = err.rejection().expect("rejected");
    assert_eq!(
        (r.status, r.code.as_str(), r.message.as_str()),
        (401, "UNAUTHORIZED", "bad token")
    );

    let err = Client::builder(served.url())
        .header("token", "banned")
        .connect()
        .await
        .unwrap_err();
    let r = err.rejection().expect("rejected");
    assert_eq!((r.status, r.code.as_str()), (403, "FORBIDDEN"));

    let err = Client::builder(served.url())
        .header("userRole", "king")
        .retry_initial_connect(true)
        .connect()
        .await
        .unwrap_err();
    match err {
        ConnectError::Rejected(r) => {
            assert_eq!((r.status, r.code.as_str()), (400, "INVALID_HEADERS"));
            assert!(
                r.issues.iter().any(|i| i.path == "userRole"),
                "{:?}",
                r.issues
            );
        }
        other => panic!("expected a 400 rejection, got {other:?}"),
    }
    assert_eq!(served.upgrades.load(Ordering::SeqCst), 0);
    served.shutdown().await;
}

#[tokio::test]
async fn room_events_and_rejoin_after_a_server_restart() {
    let served = start().await;
    let addr = served.addr;
    let joins = Arc::new(AtomicUsize::new(0));
    let j = joins.clone();
    let listener = Client::builder(served.url())
        .header("userName", "Bob")
        .reconnect(
            Reconnect::default()
                .initial_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200)),
        )
        .on_connect(move |client| {
            let j = j.clone();
            async move {
                client
                    .call::<Join>(RoomIn {
                        room_id: "lobby".into(),
                    })
                    .await?;
                j.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .connect()
        .await
        .unwrap();
    let mut messages = listener.subscribe::<RoomMessage>();

    let speak = |url: String| async move {
        let ada = Client::builder(url)
            .header("userName", "Ada")
            .connect()
            .await
            .unwrap();
        ada.call::<Join>(RoomIn {
            room_id: "lobby".into(),
        })
        .await
        .unwrap();
        ada.call::<Say>(SayIn {
            room_id: "lobby".into(),
            content: "hi".into(),
        })
        .await
        .unwrap();
        ada.close().await;
    };
    speak(served.url()).await;
    let got = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        RoomMsg {
            room_id: "lobby".into(),
            user_name: "Ada".into(),
            content: "hi".into()
        }
    );

    // Graceful shutdown (close 1001), then a new server process on the same port.
    served.shutdown().await;
    let mut state = listener.state_watch();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s != ConnectionState::Open))
        .await
        .unwrap()
        .unwrap();
    let served = Served::start(addr, ServerConfig::default()).await;
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == ConnectionState::Open))
        .await
        .unwrap()
        .unwrap();
    common::eventually(WAIT, "re-joined", || joins.load(Ordering::SeqCst) == 2).await;
    speak(served.url()).await;
    let got = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.content, "hi");
    served.shutdown().await;
}

#[tokio::test]
async fn server_pings_are_answered() {
    let config = ServerConfig::default().heartbeat(zocket_core::Heartbeat::new(
        Duration::from_millis(30),
        Duration::from_millis(200),
    ));
    let served = Served::start("127.0.0.1:0".parse().unwrap(), config).await;
    let client = Client::builder(served.url())
        .heartbeat(Heartbeat::disabled())
        .reconnect(Reconnect::disabled())
        .connect()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(client.state(), ConnectionState::Open);
    client.call::<Log>("alive".into()).await.unwrap();
    assert_eq!(served.upgrades.load(Ordering::SeqCst), 1);
    served.shutdown().await;
}
