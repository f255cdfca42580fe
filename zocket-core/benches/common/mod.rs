//! Shared harness of the zocket-core benches: a server with the routes the benches call,
//! driven through the public adapter seam (`Server::handshake` then `Accepted::serve`)
//! over an in-memory transport that allocates nothing per frame, so that what is
//! measured (and counted by the allocation bench) is the engine's own work.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskCx, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{Sink, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use zocket_core::protocol::{Text, TransportError, WsFrame};
use zocket_core::{
    Connect, Context, Cx, Event, HandshakeRequest, Message, Reject, Router, Server, ServerConfig,
};

/// The benches' connection context (no headers).
pub struct Ctx;

impl Context for Ctx {
    type Headers = serde_json::Value;
    type State = ();
    async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> {
        Ok(Ctx)
    }
}

/// `bench.echo`: any JSON, returned unchanged (as in the reference app).
pub enum Echo {}
impl Message for Echo {
    const NAME: &'static str = "bench.echo";
    type Input = serde_json::Value;
    type Output = serde_json::Value;
}

/// `bench.num`: a number in, a number out: input and output values allocate nothing,
/// so every allocation counted for it is the dispatcher's (and the reply frame's).
pub enum Num {}
impl Message for Num {
    const NAME: &'static str = "bench.num";
    type Input = u64;
    type Output = u64;
}

/// `bench.num.sync`: `bench.num` handled by a plain function (`Router::on_sync`).
pub enum NumSync {}
impl Message for NumSync {
    const NAME: &'static str = "bench.num.sync";
    type Input = u64;
    type Output = u64;
}

/// `bench.join`: join room `r`.
pub enum Join {}
impl Message for Join {
    const NAME: &'static str = "bench.join";
    type Input = ();
    type Output = ();
}

/// The fan-out event.
pub enum Tick {}
impl Event for Tick {
    const NAME: &'static str = "bench.tick";
    type Payload = TickPayload;
}

/// Payload of [`Tick`].
#[derive(Serialize, Deserialize)]
pub struct TickPayload {
    pub seq: u64,
    pub pad: String,
}

/// A server for the benches: the default configuration without the per-connection
/// message-rate limit (the benches send far more than a client may).
pub fn server() -> Server<Ctx> {
    Server::builder(router())
        .config(ServerConfig::default().message_rate(None))
        .build()
}

pub fn router() -> Router<Ctx> {
    Router::new()
        .on::<Echo>(async |_cx: Cx<Ctx>, v: serde_json::Value| Ok::<_, Reject>(v))
        .on::<Num>(async |_cx: Cx<Ctx>, n: u64| Ok::<_, Reject>(n + 1))
        .on_sync::<NumSync>(|_cx: Cx<Ctx>, n: u64| Ok(n + 1))
        .on::<Join>(async |cx: Cx<Ctx>, ()| {
            let _ = cx.rooms().join("r");
            Ok::<_, Reject>(())
        })
}

/// Frames the client pushes to the server's reader.
#[derive(Clone, Default)]
pub struct Inbox {
    q: Arc<Mutex<VecDeque<Result<WsFrame, TransportError>>>>,
    waker: Arc<AtomicWaker>,
}

impl Inbox {
    pub fn push(&self, frame: WsFrame) {
        self.q.lock().unwrap().push_back(Ok(frame));
        self.waker.wake();
    }
}

impl Stream for Inbox {
    type Item = Result<WsFrame, TransportError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Option<Self::Item>> {
        self.waker.register(cx.waker());
        match self.q.lock().unwrap().pop_front() {
            Some(f) => Poll::Ready(Some(f)),
            None => Poll::Pending,
        }
    }
}

/// Frames the server writes: kept (for replies) or only counted (for fan-out).
#[derive(Clone)]
pub struct Outbox {
    q: Arc<Mutex<VecDeque<WsFrame>>>,
    keep: bool,
    count: Arc<AtomicUsize>,
    target: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl Outbox {
    /// An outbox that keeps frames for [`Outbox::next`].
    pub fn keeping() -> Self {
        Self::new(
            true,
            Arc::default(),
            Arc::new(AtomicUsize::new(usize::MAX)),
            Arc::default(),
        )
    }
    /// An outbox that drops frames and counts them into `count`, notifying `notify`
    /// when the count reaches `target`.
    pub fn counting(
        count: Arc<AtomicUsize>,
        target: Arc<AtomicUsize>,
        notify: Arc<Notify>,
    ) -> Self {
        Self::new(false, count, target, notify)
    }
    fn new(
        keep: bool,
        count: Arc<AtomicUsize>,
        target: Arc<AtomicUsize>,
        notify: Arc<Notify>,
    ) -> Self {
        Self {
            q: Arc::new(Mutex::new(VecDeque::with_capacity(64))),
            keep,
            count,
            target,
            notify,
        }
    }
    /// The next text frame the server wrote.
    pub async fn next(&self) -> Text {
        loop {
            let notified = self.notify.notified();
            if let Some(f) = self.q.lock().unwrap().pop_front() {
                match f {
                    WsFrame::Text(t) => return t,
                    WsFrame::Close(c) => panic!("the server closed the bench connection: {c:?}"),
                    _ => continue,
                }
            }
            notified.await;
        }
    }
}

impl Sink<WsFrame> for Outbox {
    type Error = Infallible;
    fn poll_ready(self: Pin<&mut Self>, _cx: &mut TaskCx<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: WsFrame) -> Result<(), Infallible> {
        if self.keep {
            self.q.lock().unwrap().push_back(item);
            self.notify.notify_one();
        } else {
            let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.target.load(Ordering::Relaxed) {
                self.notify.notify_one();
            }
        }
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskCx<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut TaskCx<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

/// Open one in-memory connection: handshake, spawn the driver, return its two ends.
pub async fn open(server: &Server<Ctx>, outbox: Outbox) -> Inbox {
    let accepted = server
        .handshake(HandshakeRequest::new("/"))
        .await
        .expect("handshake");
    let inbox = Inbox::default();
    tokio::spawn(accepted.serve(inbox.clone(), outbox));
    inbox
}

/// A client frame from static text (no allocation when pushed).
pub fn frame(text: &'static str) -> WsFrame {
    WsFrame::Text(Text::try_from(Bytes::from_static(text.as_bytes())).expect("UTF-8"))
}

/// One connection that keeps what the server writes, past its `__welcome`.
pub async fn rpc_client(server: &Server<Ctx>) -> (Inbox, Outbox) {
    let out = Outbox::keeping();
    let inbox = open(server, out.clone()).await;
    let welcome = out.next().await;
    assert!(welcome.as_str().contains("__welcome"), "{welcome}");
    (inbox, out)
}

/// The frames of the dispatch benches: (name, request, expected reply).
pub const ECHO: (&str, &str, &str) = (
    "bench.echo",
    r#"{"type":"bench.echo","payload":{"message":"hello","n":1},"rpcId":"1"}"#,
    r#"{"type":"__rpc_res","payload":{"message":"hello","n":1},"rpcId":"1"}"#,
);
pub const NUM_SYNC: (&str, &str, &str) = (
    "bench.num.sync",
    r#"{"type":"bench.num.sync","payload":41,"rpcId":"1"}"#,
    r#"{"type":"__rpc_res","payload":42,"rpcId":"1"}"#,
);
pub const NUM: (&str, &str, &str) = (
    "bench.num",
    r#"{"type":"bench.num","payload":41,"rpcId":"1"}"#,
    r#"{"type":"__rpc_res","payload":42,"rpcId":"1"}"#,
);
