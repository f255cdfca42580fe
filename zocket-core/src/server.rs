//! The [`Server`]: router + hub + configuration, the handshake, and the connection
//! driver that every adapter shares.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::context::{ConnInfo, Connect, Context, Disconnect, DisconnectInfo};
use crate::cx::{Conn, Cx, ServerHandle};
use crate::hub::{CloseReason, Closer, Hub, LocalHub, Outbound, SlowConsumerPolicy};
use crate::ids::ClientId;
use crate::protocol::{self, CloseFrame, Text, WsFrame};
use crate::router::{Router, dispatch};
use crate::stats::{Stats, StatsSnapshot, inc};

/// Limits and timings of a server. Every field has a sensible default
/// (`ServerConfig::default()`); override with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// use zocket_core::ServerConfig;
/// let config = ServerConfig { max_in_flight: 1, heartbeat_interval: Some(Duration::from_secs(5)), ..Default::default() };
/// assert_eq!(config.max_message_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted message (reassembled, uncompressed); larger closes with 1009.
    /// Default 1 MiB. Adapters pass it to their WebSocket implementation as well.
    pub max_message_bytes: usize,
    /// Handlers of one connection that may wait concurrently; at the limit reading from
    /// that connection pauses. `1` is strictly sequential. Default 64.
    pub max_in_flight: usize,
    /// Capacity of each connection's outbound queue, in frames. Default 1024.
    pub outbound_queue: usize,
    /// What to do when that queue is full. Default: close with 1013.
    pub slow_consumer: SlowConsumerPolicy,
    /// Interval between server pings; `None` disables heartbeats. Default 25 s.
    pub heartbeat_interval: Option<Duration>,
    /// How long to wait for a pong after a ping before dropping the connection. Default 20 s.
    pub heartbeat_timeout: Duration,
    /// Protocol errors (`BAD_REQUEST`, `NOT_FOUND`, `INVALID_INPUT`) allowed per window
    /// before closing with 1008. Default 100.
    pub max_protocol_errors: u32,
    /// The window of `max_protocol_errors`. Default 10 s.
    pub protocol_error_window: Duration,
    /// When set, a request whose `Origin` header is not in the list is refused (403).
    /// Requests without `Origin` (non-browser clients) are allowed. Default: no check.
    pub allowed_origins: Option<Vec<String>>,
    /// On shutdown, how long in-flight handlers may run before connections are closed
    /// anyway. Default 10 s.
    pub shutdown_grace: Duration,
    /// A deadline for each handler (answered with `TIMEOUT`). Default: none.
    pub handler_timeout: Option<Duration>,
    /// How long writing the final frames and the close frame may take. Default 5 s.
    pub close_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_in_flight: 64,
            outbound_queue: 1024,
            slow_consumer: SlowConsumerPolicy::Close,
            heartbeat_interval: Some(Duration::from_secs(25)),
            heartbeat_timeout: Duration::from_secs(20),
            max_protocol_errors: 100,
            protocol_error_window: Duration::from_secs(10),
            allowed_origins: None,
            shutdown_grace: Duration::from_secs(10),
            handler_timeout: None,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// The pieces of an HTTP upgrade request the handshake needs; adapters fill it in.
#[derive(Debug, Clone, Default)]
pub struct HandshakeRequest {
    /// The request path.
    pub path: String,
    /// The raw query string (without `?`).
    pub query: Option<String>,
    /// HTTP headers (names are lower-cased by the handshake).
    pub headers: Vec<(String, String)>,
    /// The peer address.
    pub remote_addr: Option<SocketAddr>,
}

/// One entry of an `INVALID_HEADERS` answer: the server sends it, `zocket-client`
/// decodes it (`HandshakeRejection::issues`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HeaderIssue {
    /// The header name, e.g. `userRole`.
    #[serde(default)]
    pub path: String,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}

/// Why a handshake was refused. Adapters answer with [`status`](Self::status) and
/// [`body`](Self::body), without upgrading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The `Origin` is not in the allow-list (403).
    #[error("origin `{0}` is not allowed")]
    OriginNotAllowed(String),
    /// The headers did not match the context's headers type (400).
    #[error("{message}")]
    InvalidHeaders {
        /// A summary.
        message: String,
        /// One entry per offending header.
        issues: Vec<HeaderIssue>,
    },
    /// The connect hook rejected with `UNAUTHORIZED` (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The connect hook rejected with another code (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The server is shutting down (503).
    #[error("server is shutting down")]
    ShuttingDown,
    /// The connect hook failed with `INTERNAL` (e.g. `?` on a database error) (500). The
    /// error itself is logged on the server, never sent.
    #[error("internal error in the connect hook")]
    Internal,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::InvalidHeaders { .. } => 400,
            HandshakeError::Unauthorized(_) => 401,
            HandshakeError::OriginNotAllowed(_) | HandshakeError::Forbidden(_) => 403,
            HandshakeError::ShuttingDown => 503,
            HandshakeError::Internal => 500,
        }
    }

    /// The JSON body to answer with (PROTOCOL.md).
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            issues: Option<&'a [HeaderIssue]>,
        }
        let (error, message, issues) = match self {
            HandshakeError::OriginNotAllowed(_) => ("FORBIDDEN", "origin not allowed", None),
            HandshakeError::InvalidHeaders { message, issues } => (
                crate::codes::INVALID_HEADERS,
                message.as_str(),
                Some(issues.as_slice()),
            ),
            HandshakeError::Unauthorized(m) => ("UNAUTHORIZED", m.as_str(), None),
            HandshakeError::Forbidden(m) => ("FORBIDDEN", m.as_str(), None),
            HandshakeError::ShuttingDown => ("UNAVAILABLE", "server is shutting down", None),
            HandshakeError::Internal => (crate::codes::INTERNAL, "Internal server error", None),
        };
        serde_json::to_string(&Body {
            error,
            message,
            issues,
        })
        .unwrap_or_default()
    }
}

/// Why an adapter's socket stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A message exceeded the configured maximum (closes with 1009).
    #[error("message too big")]
    MessageTooBig,
    /// Any other transport failure.
    #[error("transport error: {0}")]
    Other(String),
}

struct Inner<C: Context> {
    router: Router<C>,
    state: Arc<C::State>,
    config: ServerConfig,
    hub: Arc<dyn Hub>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    accepting: AtomicBool,
}

/// A Zocket server: a router, a hub and a configuration. Transport-agnostic: adapters
/// call [`handshake`](Server::handshake) before upgrading and then
/// [`Accepted::serve`] with the socket as a stream and sink of [`WsFrame`]s.
/// Cheap to clone.
pub struct Server<C: Context> {
    inner: Arc<Inner<C>>,
}

impl<C: Context> Clone for Server<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Context> std::fmt::Debug for Server<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("router", &self.inner.router)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Builds a [`Server`]; see [`Server::builder`].
///
/// `St` records whether the application state was given: [`NoState`] until
/// [`state`](Self::state) is called. Without it the state is `Default::default()`
/// (which is how `type State = ()` needs nothing); a state that is not `Default` (a token
/// table loaded at start-up, a database pool) must be given: forgetting it is a compile
/// error, not a panic.
pub struct ServerBuilder<C: Context, St = NoState> {
    router: Router<C>,
    config: ServerConfig,
    hub: Option<Arc<dyn Hub>>,
    state: St,
}

impl<C: Context, St> std::fmt::Debug for ServerBuilder<C, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("router", &self.router)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The application state of a [`ServerBuilder`] before [`ServerBuilder::state`] is called.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoState;

/// What a [`ServerBuilder`] holds as its application state: [`NoState`] (then the
/// state's `Default`) or the state given to [`ServerBuilder::state`].
#[diagnostic::on_unimplemented(
    message = "the server needs its application state `{S}`",
    label = "call `.state(..)` on the builder: `Server::builder(router).state(app).build()`",
    note = "the context's `type State` is `{S}`, which is not `Default`; only a `Default` state (e.g. `()`) is made without `.state(..)`"
)]
pub trait BuilderState<S>: sealed::Sealed {
    #[doc(hidden)]
    fn into_state(self) -> Arc<S>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoState {}
    impl<S> Sealed for std::sync::Arc<S> {}
}

impl<S: Default> BuilderState<S> for NoState {
    fn into_state(self) -> Arc<S> {
        Arc::new(S::default())
    }
}

impl<S> BuilderState<S> for Arc<S> {
    fn into_state(self) -> Arc<S> {
        self
    }
}

impl<C: Context, St> ServerBuilder<C, St> {
    /// Use this configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }
    /// Use this hub instead of a fresh [`LocalHub`].
    pub fn hub(mut self, hub: Arc<dyn Hub>) -> Self {
        self.hub = Some(hub);
        self
    }
    /// The application state ([`Context::State`]), shared by every connection: reachable
    /// in `connect`, `disconnect`, every middleware and handler (`cx.state()`). Takes
    /// the value or an `Arc` of it.
    pub fn state(self, state: impl Into<Arc<C::State>>) -> ServerBuilder<C, Arc<C::State>> {
        ServerBuilder {
            router: self.router,
            config: self.config,
            hub: self.hub,
            state: state.into(),
        }
    }
    /// The server.
    pub fn build(self) -> Server<C>
    where
        St: BuilderState<C::State>,
    {
        Server {
            inner: Arc::new(Inner {
                router: self.router,
                state: self.state.into_state(),
                config: self.config,
                hub: self.hub.unwrap_or_else(|| Arc::new(LocalHub::new())),
                stats: Arc::new(Stats::default()),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                accepting: AtomicBool::new(true),
            }),
        }
    }
}

impl<C: Context> Server<C> {
    /// A server with the default configuration and an in-memory hub, for a context
    /// whose application state is `Default` (e.g. `type State = ()`), starting from
    /// that default; otherwise use `Server::builder(router).state(app).build()`.
    pub fn new(router: Router<C>) -> Self
    where
        NoState: BuilderState<C::State>,
    {
        Self::builder(router).build()
    }

    /// A builder, to set the application state, the configuration or the hub.
    pub fn builder(router: Router<C>) -> ServerBuilder<C> {
        ServerBuilder {
            router,
            config: ServerConfig::default(),
            hub: None,
            state: NoState,
        }
    }

    /// The application state.
    pub fn state(&self) -> &Arc<C::State> {
        &self.inner.state
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// A handle for typed sends from outside handlers.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            hub: self.inner.hub.clone(),
            stats: self.inner.stats.clone(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Resolves when [`shutdown`](Self::shutdown) begins (for adapters' accept loops).
    pub async fn shutdown_started(&self) {
        self.inner.shutdown.cancelled().await
    }

    /// Graceful shutdown: refuse new connections, stop reading, let in-flight handlers
    /// finish (up to [`ServerConfig::shutdown_grace`]), close every connection with
    /// 1001 and run every disconnect hook. Resolves when all connections have ended.
    pub async fn shutdown(&self) {
        self.inner.accepting.store(false, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let limit = self.inner.config.shutdown_grace
            + self.inner.config.close_timeout
            + Duration::from_secs(1);
        if tokio::time::timeout(limit, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.inner.tracker.len(),
                "shutdown: connections still open after the deadline"
            );
        }
    }

    /// Check a handshake, before the upgrade: origin, headers, connect hook.
    pub async fn handshake(&self, req: HandshakeRequest) -> Result<Accepted<C>, HandshakeError> {
        let result = self.check(req).await;
        if let Err(e) = &result {
            inc(&self.inner.stats.handshakes_rejected);
            tracing::info!(status = e.status(), error = %e, "handshake refused");
        }
        result
    }

    async fn check(&self, req: HandshakeRequest) -> Result<Accepted<C>, HandshakeError> {
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Err(HandshakeError::ShuttingDown);
        }
        let mut map: HashMap<String, String> = HashMap::with_capacity(req.headers.len() + 4);
        for (k, v) in req.headers {
            map.insert(k.to_ascii_lowercase(), v);
        }
        if let (Some(allowed), Some(origin)) =
            (&self.inner.config.allowed_origins, map.get("origin"))
        {
            if !allowed.iter().any(|a| a == origin) {
                return Err(HandshakeError::OriginNotAllowed(origin.clone()));
            }
        }
        let query: Vec<(String, String)> = req
            .query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let source = crate::headers::Source {
            http: &map,
            query: &query,
        };
        if let Some(v) = source.get("x-zocket-version") {
            if v != protocol::VERSION {
                tracing::info!(client_version = %v, server_version = protocol::VERSION, "protocol version mismatch; accepting");
            }
        }
        let headers: C::Headers = crate::headers::deserialize(&source)?;
        map.extend(query);
        let info = ConnInfo {
            client_id: ClientId::random(),
            remote_addr: req.remote_addr,
            path: req.path,
            headers: map,
        };
        let server = self.handle();
        let conn = Connect {
            headers,
            info: &info,
            state: &self.inner.state,
            server: &server,
        };
        match C::connect(conn).await {
            Ok(ctx) => Ok(Accepted {
                server: self.clone(),
                ctx,
                info,
            }),
            Err(rej) if rej.code() == crate::codes::UNAUTHORIZED => {
                Err(HandshakeError::Unauthorized(rej.message().to_owned()))
            }
            Err(rej) if rej.code() == crate::codes::INTERNAL => {
                crate::error::log_internal(&rej, "connect hook");
                Err(HandshakeError::Internal)
            }
            Err(rej) => Err(HandshakeError::Forbidden(rej.message().to_owned())),
        }
    }
}

/// A connection whose handshake passed: the context is built, the upgrade may proceed.
pub struct Accepted<C: Context> {
    server: Server<C>,
    ctx: C,
    info: ConnInfo,
}

impl<C: Context> std::fmt::Debug for Accepted<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<C: Context> Accepted<C> {
    /// The connection's id.
    pub fn client_id(&self) -> &ClientId {
        &self.info.client_id
    }

    /// Drive the connection to its end: `__welcome`, the reader (dispatch in arrival
    /// order, concurrent once handlers wait, up to the in-flight limit), the writer
    /// (bounded queue, heartbeats), close codes, and the disconnect hook, exactly once.
    /// Returns why it ended.
    pub async fn serve<S, K>(self, stream: S, sink: K) -> CloseReason
    where
        S: Stream<Item = Result<WsFrame, TransportError>> + Send + Unpin,
        K: Sink<WsFrame> + Send + Unpin,
        K::Error: std::fmt::Display,
    {
        let server = self.server.clone();
        let span = tracing::info_span!("connection", client_id = %self.info.client_id, remote = ?self.info.remote_addr);
        server
            .inner
            .tracker
            .track_future(self.run(stream, sink))
            .instrument(span)
            .await
    }

    async fn run<S, K>(self, stream: S, sink: K) -> CloseReason
    where
        S: Stream<Item = Result<WsFrame, TransportError>> + Send + Unpin,
        K: Sink<WsFrame> + Send + Unpin,
        K::Error: std::fmt::Display,
    {
        let inner = &self.server.inner;
        let cfg = &inner.config;
        let id = self.info.client_id.clone();
        let (out, rx, closer) = Outbound::new(
            id.clone(),
            cfg.outbound_queue,
            cfg.slow_consumer,
            inner.stats.clone(),
        );
        inner.hub.register(out.clone());
        inc(&inner.stats.connections_open);
        inc(&inner.stats.connections_total);
        tracing::debug!("connected");
        let conn = Arc::new(Conn::new(
            id.clone(),
            out,
            inner.hub.clone(),
            inner.stats.clone(),
            (cfg.max_protocol_errors, cfg.protocol_error_window),
        ));
        conn.push(protocol::encode_welcome(id.as_str()));
        let cx = Cx::new(Arc::new(self.ctx), inner.state.clone(), conn);
        let pongs = AtomicU64::new(0);
        tokio::join!(
            read_loop(
                &inner.router,
                &cx,
                stream,
                &closer,
                &inner.shutdown,
                cfg,
                &pongs
            ),
            write_loop(sink, rx, &closer, cfg, &pongs, &inner.stats),
        );
        let reason = closer
            .reason()
            .cloned()
            .unwrap_or_else(|| CloseReason::TransportError("connection ended".into()));
        let rooms = inner.hub.rooms_of(&id);
        tracing::debug!(?reason, ?rooms, "disconnected");
        let info = DisconnectInfo {
            client_id: id.clone(),
            rooms,
            reason: reason.clone(),
        };
        let server = self.server.handle();
        cx.context()
            .disconnect(Disconnect {
                info: &info,
                state: &inner.state,
                server: &server,
            })
            .await;
        inner.hub.unregister(&id);
        inner.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        reason
    }
}

async fn read_loop<C, S>(
    router: &Router<C>,
    cx: &Cx<C, C::State>,
    mut stream: S,
    closer: &Closer,
    shutdown: &CancellationToken,
    cfg: &ServerConfig,
    pongs: &AtomicU64,
) where
    C: Context,
    S: Stream<Item = Result<WsFrame, TransportError>> + Unpin,
{
    let conn = &cx.conn;
    let mut inflight = FuturesUnordered::new();
    let mut draining = false;
    let mut grace = pin!(tokio::time::sleep(Duration::from_secs(86400 * 365)));
    let limit = cfg.max_in_flight.max(1);
    loop {
        let can_read = !draining && inflight.len() < limit;
        tokio::select! {
            biased;
            _ = closer.token().cancelled() => break,
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                grace.as_mut().reset(Instant::now() + cfg.shutdown_grace);
            }
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
            _ = &mut grace, if draining => {
                tracing::warn!(in_flight = inflight.len(), "shutdown grace passed; abandoning in-flight handlers");
                closer.close(CloseReason::ServerShutdown);
                break;
            }
            item = stream.next(), if can_read => match item {
                None => {
                    closer.close(CloseReason::TransportError("connection ended without a close frame".into()));
                    break;
                }
                Some(Err(TransportError::MessageTooBig)) => {
                    too_big(conn);
                    closer.close(CloseReason::MessageTooBig);
                    break;
                }
                Some(Err(e)) => {
                    closer.close(CloseReason::TransportError(e.to_string()));
                    break;
                }
                Some(Ok(WsFrame::Text(text))) => {
                    if text.len() > cfg.max_message_bytes {
                        too_big(conn);
                        closer.close(CloseReason::MessageTooBig);
                        break;
                    }
                    if let Some(mut fut) = dispatch(router, cx, text.as_str(), cfg.handler_timeout) {
                        // v1 order: run the handler until it first waits, right now.
                        if futures::poll!(&mut fut).is_pending() {
                            inflight.push(fut);
                        }
                    }
                }
                Some(Ok(WsFrame::Binary(_))) => {
                    conn.fail(None, None, &crate::Reject::bad_request("binary frames are not supported"));
                }
                Some(Ok(WsFrame::Ping(_))) => {}
                Some(Ok(WsFrame::Pong(_))) => {
                    pongs.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(WsFrame::Close(frame))) => {
                    closer.close(CloseReason::ClientClosed(frame.map(|f| f.code)));
                    break;
                }
            },
        }
        if draining && inflight.is_empty() {
            closer.close(CloseReason::ServerShutdown);
            break;
        }
    }
}

fn too_big(conn: &Conn) {
    inc(&conn.stats.oversize_closes);
    tracing::warn!("message over the size limit: closing (1009)");
}

async fn send_batch<K>(
    sink: &mut K,
    first: Text,
    rx: &mut mpsc::Receiver<Text>,
) -> Result<(), K::Error>
where
    K: Sink<WsFrame> + Unpin,
{
    sink.feed(WsFrame::Text(first)).await?;
    for _ in 0..64 {
        match rx.try_recv() {
            Ok(frame) => sink.feed(WsFrame::Text(frame)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

/// The heartbeat of one connection's writer.
struct Heartbeat<'a> {
    /// Ticks every `heartbeat_interval`; `None` when heartbeats are off.
    ping: Option<tokio::time::Interval>,
    /// When the outstanding ping must have been answered.
    pong_due: Pin<Box<tokio::time::Sleep>>,
    /// The pong count when the outstanding ping was sent; `None`: no ping outstanding.
    awaiting: Option<u64>,
    /// A tick came while a write was stuck: send a ping as soon as it completes.
    ping_owed: bool,
    pongs: &'a AtomicU64,
    timeout: Duration,
    /// How long an interrupted write may still take on a graceful close.
    close_timeout: Duration,
    stats: &'a Stats,
}

impl Heartbeat<'_> {
    /// Start the pong deadline, unless a ping is outstanding already.
    fn expect_pong(&mut self) {
        if self.awaiting.is_none() {
            self.awaiting = Some(self.pongs.load(Ordering::Relaxed));
            self.pong_due.as_mut().reset(Instant::now() + self.timeout);
        }
    }

    /// The pong deadline passed: whether a pong arrived since the ping (then the next
    /// ping starts a new deadline). Counts and logs a timeout.
    fn answered(&mut self) -> bool {
        if self
            .awaiting
            .is_some_and(|seen| self.pongs.load(Ordering::Relaxed) > seen)
        {
            self.awaiting = None;
            true
        } else {
            inc(&self.stats.heartbeat_timeouts);
            tracing::info!("no pong within the heartbeat timeout: dropping the connection");
            false
        }
    }
}

async fn tick(ping: &mut Option<tokio::time::Interval>) {
    match ping.as_mut() {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Run one write to the socket while the heartbeat keeps running, so that a peer that
/// reads nothing (its socket full, the write stuck) is still dropped in time: the
/// deadline of an outstanding ping applies, and a tick with none outstanding starts one
/// (the ping itself is sent once the write completes). Returns `false` when the
/// connection must end; the close reason is set then.
async fn write_with_heartbeat<E: std::fmt::Display>(
    write: impl Future<Output = Result<(), E>>,
    hb: &mut Heartbeat<'_>,
    closer: &Closer,
) -> bool {
    let mut write = pin!(write);
    loop {
        tokio::select! {
            biased;
            _ = closer.token().cancelled() => {
                // A graceful close (shutdown, 1008, 1009) lets the frames of this batch,
                // already taken from the queue, reach the peer first (e.g. the last RPC
                // reply before 1001). A dead or clogged peer's write is abandoned.
                let graceful = !matches!(
                    closer.reason(),
                    Some(CloseReason::SlowConsumer | CloseReason::HeartbeatTimeout | CloseReason::TransportError(_))
                        | Some(CloseReason::ClientClosed(_))
                        | None
                );
                if graceful {
                    let _ = tokio::time::timeout(hb.close_timeout, &mut write).await;
                }
                return false;
            }
            r = &mut write => {
                return match r {
                    Ok(()) => true,
                    Err(e) => {
                        closer.close(CloseReason::TransportError(e.to_string()));
                        false
                    }
                };
            }
            _ = tick(&mut hb.ping), if hb.awaiting.is_none() => {
                hb.expect_pong();
                hb.ping_owed = true;
            }
            _ = hb.pong_due.as_mut(), if hb.awaiting.is_some() => {
                if !hb.answered() {
                    closer.close(CloseReason::HeartbeatTimeout);
                    return false;
                }
            }
        }
    }
}

async fn write_loop<K>(
    mut sink: K,
    mut rx: mpsc::Receiver<Text>,
    closer: &Closer,
    cfg: &ServerConfig,
    pongs: &AtomicU64,
    stats: &Stats,
) where
    K: Sink<WsFrame> + Unpin,
    K::Error: std::fmt::Display,
{
    let mut hb = Heartbeat {
        ping: cfg.heartbeat_interval.map(|every| {
            let mut interval = tokio::time::interval_at(Instant::now() + every, every);
            // Ticks missed while a write was stuck are not made up in a burst of pings.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        }),
        pong_due: Box::pin(tokio::time::sleep(Duration::from_secs(86400 * 365))),
        awaiting: None,
        ping_owed: false,
        pongs,
        timeout: cfg.heartbeat_timeout,
        close_timeout: cfg.close_timeout,
        stats,
    };
    loop {
        tokio::select! {
            biased;
            _ = closer.token().cancelled() => break,
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                if !write_with_heartbeat(send_batch(&mut sink, frame, &mut rx), &mut hb, closer).await {
                    break;
                }
                if hb.ping_owed {
                    // The peer gets the full timeout from the moment the ping is sent.
                    hb.ping_owed = false;
                    hb.awaiting = None;
                    hb.expect_pong();
                    if !write_with_heartbeat(sink.send(WsFrame::Ping(bytes::Bytes::new())), &mut hb, closer).await {
                        break;
                    }
                }
            }
            _ = tick(&mut hb.ping) => {
                hb.expect_pong();
                if !write_with_heartbeat(sink.send(WsFrame::Ping(bytes::Bytes::new())), &mut hb, closer).await {
                    break;
                }
            }
            _ = hb.pong_due.as_mut(), if hb.awaiting.is_some() => {
                if !hb.answered() {
                    closer.close(CloseReason::HeartbeatTimeout);
                    break;
                }
            }
        }
    }
    let reason = closer.reason().cloned();
    let finish = async {
        match reason {
            // A peer that answers no ping may be gone, or may read nothing: closing
            // gracefully would only wait for the close timeout. Drop the socket.
            Some(CloseReason::HeartbeatTimeout) => return,
            Some(CloseReason::TransportError(_)) | None => {}
            Some(CloseReason::ClientClosed(_)) => {}
            Some(reason) => {
                if reason != CloseReason::SlowConsumer {
                    // Frames queued before the close (e.g. the last RPC replies) go first.
                    while let Ok(frame) = rx.try_recv() {
                        if sink.feed(WsFrame::Text(frame)).await.is_err() {
                            return;
                        }
                    }
                }
                if let Some(code) = reason.code() {
                    let close = CloseFrame {
                        code,
                        reason: reason.text().to_owned().into(),
                    };
                    let _ = sink.send(WsFrame::Close(Some(close))).await;
                }
            }
        }
        let _ = sink.close().await;
    };
    let _ = tokio::time::timeout(cfg.close_timeout, finish).await;
}
