//! Testing without sockets: a [`TestServer`] built from a router, and virtual
//! [`TestClient`]s that connect with headers, make typed calls and wait for typed
//! events. Clients go through the same handshake and connection driver as real
//! sockets, only the transport is an in-memory channel.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use zocket_core::testing::TestServer;
//! use zocket_core::{Connect, Context, Cx, Event, Message, Reject, Router};
//!
//! // contract
//! #[derive(Serialize, Deserialize)]
//! pub struct GreetIn { name: String }
//! pub enum Greet {}
//! impl Message for Greet { const NAME: &'static str = "greet"; type Input = GreetIn; type Output = String; }
//! pub enum Greeted {}
//! impl Event for Greeted { const NAME: &'static str = "greeted"; type Payload = String; }
//!
//! // server
//! struct User;
//! impl Context for User {
//!     type Headers = serde_json::Value;
//!     type State = ();
//!     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
//! }
//! async fn greet(cx: Cx<User>, input: GreetIn) -> Result<String, Reject> {
//!     let _ = cx.send::<Greeted>(input.name.clone()).broadcast();
//!     Ok(format!("Hello, {}!", input.name))
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = TestServer::new(Router::<User>::new().on::<Greet>(greet));
//! let alice = app.connect([("userName", "alice")]).await.unwrap();
//! let bob = app.connect([("userName", "bob")]).await.unwrap();
//! let reply = alice.call::<Greet>(GreetIn { name: "Ada".into() }).await.unwrap();
//! assert_eq!(reply, "Hello, Ada!");
//! assert_eq!(bob.next::<Greeted>().await.unwrap(), "Ada");
//! # });
//! ```

#[cfg(feature = "conformance")]
pub mod conformance;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc as fmpsc;
use futures::{SinkExt, StreamExt};
use tokio::sync::{Notify, oneshot};

use crate::context::Context;
use crate::contract::{Event, Message};
use crate::error::Reject;
use crate::ids::ClientId;
use crate::protocol::TransportError;
use crate::protocol::{self, CloseFrame, Text, WireError, WsFrame};
use crate::router::Router;
use crate::server::{BuilderState, HandshakeError, HandshakeRequest, NoState, Server};

/// What went wrong in a test client operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// The server answered with `__rpc_err` (or `__error`).
    #[error("rejected: {0}")]
    Rejected(Reject),
    /// Nothing arrived within the wait.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// A frame or payload did not decode into the expected type.
    #[error("decode error: {0}")]
    Decode(String),
}

impl TestError {
    /// The rejection's code, when this is a rejection.
    pub fn code(&self) -> Option<&str> {
        match self {
            TestError::Rejected(r) => Some(r.code()),
            _ => None,
        }
    }
}

impl From<WireError> for TestError {
    fn from(e: WireError) -> Self {
        TestError::Rejected(Reject::from(e))
    }
}

/// Options of a virtual connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Answer server pings (default `true`; `false` simulates a dead peer).
    pub answer_pings: bool,
    /// Read what the server sends (default `true`; `false` simulates a client that never
    /// reads, so its outbound queue fills up).
    pub read: bool,
    /// Frames the virtual socket buffers toward the client before the server's writer
    /// waits (default 64).
    pub socket_buffer: usize,
    /// How long calls and waits wait (default 5 s).
    pub timeout: Duration,
    /// Extra HTTP headers (the headers given to `connect` travel as query parameters).
    pub http_headers: Vec<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            answer_pings: true,
            read: true,
            socket_buffer: 64,
            timeout: Duration::from_secs(5),
            http_headers: Vec::new(),
        }
    }
}

/// A server under test: a [`Server`] whose clients are virtual.
pub struct TestServer<C: Context> {
    server: Server<C>,
}

impl<C: Context> TestServer<C> {
    /// A test server with the default configuration, for a context whose application
    /// state is `Default` (e.g. `type State = ()`), starting from that default.
    pub fn new(router: Router<C>) -> Self
    where
        NoState: BuilderState<C::State>,
    {
        Self {
            server: Server::new(router),
        }
    }

    /// A test server with the default configuration and this application state.
    pub fn with_state(router: Router<C>, state: impl Into<Arc<C::State>>) -> Self {
        Self {
            server: Server::builder(router).state(state).build(),
        }
    }

    /// A test server around a configured server.
    pub fn from_server(server: Server<C>) -> Self {
        Self { server }
    }

    /// The server (for its handle, stats or shutdown).
    pub fn server(&self) -> &Server<C> {
        &self.server
    }

    /// Connect a virtual client; `headers` travel as query parameters, as the v1
    /// client sends them. A refused handshake is returned as the error.
    pub async fn connect<I, K, V>(&self, headers: I) -> Result<TestClient, HandshakeError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.connect_with(headers, ConnectOptions::default()).await
    }

    /// Connect with options.
    pub async fn connect_with<I, K, V>(
        &self,
        headers: I,
        opts: ConnectOptions,
    ) -> Result<TestClient, HandshakeError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in headers {
            query.append_pair(&k.into(), &v.into());
        }
        query.append_pair("x-zocket-version", protocol::VERSION);
        let req = HandshakeRequest {
            path: "/".into(),
            query: Some(query.finish()),
            headers: opts.http_headers.clone(),
            remote_addr: None,
        };
        let accepted = self.server.handshake(req).await?;
        let (to_server, server_in) = fmpsc::unbounded::<Result<WsFrame, TransportError>>();
        let (server_out, mut from_server) = fmpsc::channel::<WsFrame>(opts.socket_buffer.max(1));
        let shared = Arc::new(Shared::default());
        tokio::spawn(accepted.serve(server_in, server_out));
        let client = TestClient {
            shared: shared.clone(),
            tx: to_server.clone(),
            next_id: AtomicU64::new(1),
            timeout: opts.timeout,
        };
        if opts.read {
            let answer_pings = opts.answer_pings;
            tokio::spawn(async move {
                while let Some(frame) = from_server.next().await {
                    match frame {
                        WsFrame::Text(text) => shared.on_text(&text),
                        WsFrame::Ping(p) if answer_pings => {
                            let _ = to_server.unbounded_send(Ok(WsFrame::Pong(p)));
                        }
                        WsFrame::Close(close) => {
                            // Like every WebSocket client, answer the server's close
                            // frame (unless this side closed first), which ends the
                            // server's closing sequence (RFC 6455 §7.1.1).
                            if !shared.closing.load(Ordering::Relaxed) {
                                let _ = to_server.unbounded_send(Ok(WsFrame::Close(close.clone())));
                            }
                            shared.on_close(close);
                            return;
                        }
                        _ => {}
                    }
                }
                shared.on_close(None);
            });
            client
                .wait_for(|st| st.client_id.clone())
                .await
                .map_err(|_| HandshakeError::ShuttingDown)?;
        } else {
            // Never read: keep the receiver alive so the server's writer blocks.
            tokio::spawn(async move {
                let _keep = from_server;
                std::future::pending::<()>().await;
            });
        }
        Ok(client)
    }
}

#[derive(Default)]
struct State {
    client_id: Option<ClientId>,
    pending: HashMap<String, oneshot::Sender<Result<String, WireError>>>,
    events: VecDeque<(String, String)>,
    errors: VecDeque<WireError>,
    closed: Option<Option<CloseFrame>>,
    frames: Vec<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
    /// This side sent a close frame.
    closing: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_text(&self, text: &Text) {
        let Ok(frame) = protocol::decode_server_frame(text.as_str()) else {
            tracing::error!(frame = %text, "test client: undecodable server frame");
            return;
        };
        let payload = frame
            .payload
            .map(|p| p.get().to_owned())
            .unwrap_or_else(|| "null".into());
        let mut st = self.lock();
        st.frames.push(text.as_str().to_owned());
        match &*frame.kind {
            protocol::WELCOME => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct W {
                    client_id: ClientId,
                }
                st.client_id = serde_json::from_str::<W>(&payload)
                    .ok()
                    .map(|w| w.client_id);
            }
            protocol::RPC_RES | protocol::RPC_ERR => {
                let id = frame.rpc_id.as_deref().unwrap_or_default();
                if let Some(tx) = st.pending.remove(id) {
                    let result = match frame.error {
                        Some(e) if frame.kind == protocol::RPC_ERR => Err(e),
                        _ => Ok(payload),
                    };
                    let _ = tx.send(result);
                }
            }
            protocol::ERROR => {
                if let Some(e) = frame.error {
                    st.errors.push_back(e);
                }
            }
            name => st.events.push_back((name.to_owned(), payload)),
        }
        drop(st);
        self.notify.notify_waiters();
    }

    fn on_close(&self, close: Option<CloseFrame>) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(close);
        }
        st.pending.clear();
        drop(st);
        self.notify.notify_waiters();
    }
}

/// A virtual client of a [`TestServer`].
pub struct TestClient {
    shared: Arc<Shared>,
    tx: fmpsc::UnboundedSender<Result<WsFrame, TransportError>>,
    next_id: AtomicU64,
    timeout: Duration,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("client_id", &self.shared.lock().client_id)
            .finish()
    }
}

impl TestClient {
    async fn wait_for<T>(
        &self,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, TestError> {
        self.wait_for_within(self.timeout, &mut check).await
    }

    async fn wait_for_within<T>(
        &self,
        within: Duration,
        check: &mut impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, TestError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(v) = check(&mut st) {
                    return Ok(v);
                }
                if st.closed.is_some() {
                    return Err(TestError::Closed);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(TestError::Timeout(within));
            }
        }
    }

    /// The id the server assigned (from `__welcome`).
    pub fn client_id(&self) -> ClientId {
        self.shared
            .lock()
            .client_id
            .clone()
            .unwrap_or_else(|| ClientId::from(""))
    }

    /// Send a raw text frame.
    pub fn send_raw(&self, text: impl Into<String>) -> Result<(), TestError> {
        self.send_frame(WsFrame::Text(Text::from(text.into())))
    }

    /// Send any frame (binary, close, ...).
    pub fn send_frame(&self, frame: WsFrame) -> Result<(), TestError> {
        self.tx
            .unbounded_send(Ok(frame))
            .map_err(|_| TestError::Closed)
    }

    /// Make an RPC call and wait for its typed result or typed error.
    pub async fn call<M: Message>(&self, input: M::Input) -> Result<M::Output, TestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let text = protocol::encode_client_frame(M::NAME, &input, Some(&id))
            .map_err(|e| TestError::Decode(format!("input does not serialise: {e}")))?;
        let (tx, rx) = oneshot::channel();
        self.shared.lock().pending.insert(id, tx);
        self.send_raw(text)?;
        let payload = match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => return Err(TestError::Timeout(self.timeout)),
            Ok(Err(_)) => return Err(TestError::Closed),
            Ok(Ok(r)) => r?,
        };
        serde_json::from_str(&payload)
            .map_err(|e| TestError::Decode(format!("{}: {e}: {payload}", M::NAME)))
    }

    /// Send a message without `rpcId` (fire-and-forget).
    pub fn emit<M: Message>(&self, input: M::Input) -> Result<(), TestError> {
        let text = protocol::encode_client_frame(M::NAME, &input, None)
            .map_err(|e| TestError::Decode(format!("input does not serialise: {e}")))?;
        self.send_raw(text)
    }

    /// Wait for the next event `E` (events of other types stay queued for their own
    /// waits).
    pub async fn next<E: Event>(&self) -> Result<E::Payload, TestError> {
        self.next_within::<E>(self.timeout).await
    }

    /// [`next`](Self::next) with an explicit wait.
    pub async fn next_within<E: Event>(&self, within: Duration) -> Result<E::Payload, TestError> {
        let payload = self
            .wait_for_within(within, &mut |st: &mut State| {
                let pos = st.events.iter().position(|(n, _)| n == E::NAME)?;
                st.events.remove(pos).map(|(_, p)| p)
            })
            .await?;
        serde_json::from_str(&payload)
            .map_err(|e| TestError::Decode(format!("{}: {e}: {payload}", E::NAME)))
    }

    /// Succeeds if no event `E` arrives within `within`.
    pub async fn assert_no_event<E: Event>(&self, within: Duration) -> Result<(), TestError> {
        match self.next_within::<E>(within).await {
            Err(TestError::Timeout(_)) => Ok(()),
            Ok(_) => Err(TestError::Decode(format!("unexpected event `{}`", E::NAME))),
            Err(e) => Err(e),
        }
    }

    /// The next raw event `(type, payload JSON)` of any name.
    pub async fn next_raw(&self) -> Result<(String, String), TestError> {
        self.wait_for(|st| st.events.pop_front()).await
    }

    /// Every event received and not yet taken, as `(type, payload JSON)`.
    pub fn drain_events(&self) -> Vec<(String, String)> {
        self.shared.lock().events.drain(..).collect()
    }

    /// Every text frame received so far, exactly as it was on the wire, in order
    /// (replies, errors and events alike; taking events with `next` does not remove them).
    pub fn frames(&self) -> Vec<String> {
        self.shared.lock().frames.clone()
    }

    /// Wait until a received text frame satisfies `pred`; returns that frame.
    pub async fn wait_frame(
        &self,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, TestError> {
        let mut seen = 0;
        self.wait_for(|st| {
            let found = st.frames[seen..].iter().find(|f| pred(f)).cloned();
            seen = st.frames.len();
            found
        })
        .await
    }

    /// Wait for text frame number `index` of this connection, in arrival order (`0` is
    /// `__welcome`), exactly as it was on the wire; [`TestError::Closed`] if the
    /// connection ends before it arrives. Reads frames one by one, like a socket.
    pub async fn frame(&self, index: usize) -> Result<String, TestError> {
        self.frame_within(index, self.timeout).await
    }

    /// [`frame`](Self::frame) with an explicit wait.
    pub async fn frame_within(&self, index: usize, within: Duration) -> Result<String, TestError> {
        self.wait_for_within(within, &mut |st: &mut State| st.frames.get(index).cloned())
            .await
    }

    /// Wait for the next `__error` frame.
    pub async fn next_error(&self) -> Result<WireError, TestError> {
        self.wait_for(|st| st.errors.pop_front()).await
    }

    /// Wait until the server closes the connection; its close frame, if it sent one.
    pub async fn closed(&self) -> Result<Option<CloseFrame>, TestError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(c) = self.shared.lock().closed.clone() {
                return Ok(c);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(TestError::Timeout(self.timeout));
            }
        }
    }

    /// Close the connection from the client side (close frame 1000).
    pub async fn close(&self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        let mut tx = self.tx.clone();
        let _ = tx
            .send(Ok(WsFrame::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            }))))
            .await;
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.tx.close_channel();
    }
}
