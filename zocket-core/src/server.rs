//! The [`Server`]: router + hub + configuration, its builder and the handshake. A
//! connection's lifetime is the engine's: [`crate::connection`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{FutureExt as _, Sink, Stream};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::admission::{Full, Slot, Slots};
use crate::connection::{self, PingReplies, RateLimit, SINK_CLOSE_GRACE, driver};
use crate::context::{ConnInfo, Connect, Context};
use crate::cx::ServerHandle;
use crate::hub::{CloseReason, Hub, LocalHub, SlowConsumerPolicy};
use crate::ids::ClientId;
use crate::protocol::{self, WsFrame};
use crate::redact::Redaction;
use crate::router::Router;
use crate::stats::{Stats, StatsSnapshot};

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
    /// The most events pushed to a connection by others (fan-out, [`ServerHandle`]) that
    /// may wait to be written, in frames, on top of [`outbound_budget`](Self::outbound_budget);
    /// beyond it the connection is a slow consumer. It bounds many tiny events; the
    /// connection's own replies are not counted here. Default 4096.
    pub outbound_queue: usize,
    /// Each connection's outbound budget in bytes: every frame waiting to be written
    /// (replies, events, pings and pongs; each charged its length plus
    /// [`FRAME_OVERHEAD`](crate::connection::FRAME_OVERHEAD) until the flush that writes it
    /// completes). When the connection's own frames fill it, reading from the connection
    /// pauses until the writer drains (backpressure, nothing dropped); events pushed by
    /// others beyond it make it a slow consumer. Nothing is reserved up front. Default 1 MiB.
    pub outbound_budget: usize,
    /// What to do with a slow consumer. Default: close with 1013.
    pub slow_consumer: SlowConsumerPolicy,
    /// Interval between server pings; `None` disables heartbeats. Default 25 s.
    pub heartbeat_interval: Option<Duration>,
    /// How long to wait, once a ping was written, for the pong (or a message from the
    /// peer; its pings do not count) before dropping the connection. A ping that cannot even be written within
    /// this time of being due (the peer reads nothing and its socket is full) drops it too.
    /// Default 20 s.
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
    /// How long the closing sequence may take: the last frames, the close frame, and
    /// waiting for the peer's close frame (reading and discarding meanwhile); closing the
    /// sink then gets at most [`SINK_CLOSE_GRACE`] more. Default 5 s.
    pub close_timeout: Duration,
    /// Connections held at once (in the handshake or open), in total; over it a
    /// handshake is refused with `503` and `Retry-After`. Default 65 536.
    pub max_connections: usize,
    /// Connections held at once from one remote IP address (IPv4-mapped IPv6 counts as
    /// IPv4); over it `503`. Default 16 384, so that 10 000 idle connections from one
    /// address (a load generator, many users behind one NAT) get in.
    pub max_connections_per_ip: usize,
    /// The `Retry-After` of a `503` refusal. Default 5 s.
    pub retry_after: Duration,
    /// How long a client may take to complete its handshake: sending the request
    /// headers (the adapters' `serve` functions apply it to the HTTP connection, and to
    /// the TLS handshake) and the connect hook. Past it the connection is dropped (a hook
    /// that takes longer is answered `503`). Default 10 s.
    pub handshake_timeout: Duration,
    /// Rooms one connection may be in at once; a join past it is refused with `LIMIT`.
    /// Default 1 024.
    pub max_rooms_per_connection: usize,
    /// Longest room name, in bytes, a handler may join or send to; longer: `LIMIT`.
    /// Default 256.
    pub max_room_name_bytes: usize,
    /// Most client ids or rooms in one send target of a handler (`cx.send(..).to(..)` or
    /// `.to_room(..)`); more: nothing is sent, the delivery reports `LIMIT`. Default 1 024.
    pub max_send_targets: usize,
    /// Handshake headers (case-insensitive names, compared with the header map's keys)
    /// whose values never appear in logs, spans or `Debug` output, in addition to
    /// `token`, `authorization`, `proxy-authorization` and `cookie`. Default: none.
    pub redact_headers: Vec<String>,
    /// The message-rate limit per connection (close 1008 `rate limit` beyond it); `None`
    /// disables it. Default 10 000 messages per second with bursts of 10 000.
    pub message_rate: Option<RateLimit>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_in_flight: 64,
            outbound_queue: 4096,
            outbound_budget: 1 << 20,
            slow_consumer: SlowConsumerPolicy::Close,
            heartbeat_interval: Some(Duration::from_secs(25)),
            heartbeat_timeout: Duration::from_secs(20),
            max_protocol_errors: 100,
            protocol_error_window: Duration::from_secs(10),
            allowed_origins: None,
            shutdown_grace: Duration::from_secs(10),
            handler_timeout: None,
            close_timeout: Duration::from_secs(5),
            max_connections: 65_536,
            max_connections_per_ip: 16_384,
            retry_after: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_rooms_per_connection: 1024,
            max_room_name_bytes: 256,
            max_send_targets: 1024,
            redact_headers: Vec::new(),
            message_rate: Some(RateLimit::default()),
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
    /// Not a valid RFC 6455 upgrade request (400 `BAD_REQUEST`); see
    /// [`admission::validate`](crate::admission::validate).
    #[error("bad upgrade request: {0}")]
    BadRequest(&'static str),
    /// `Sec-WebSocket-Version` is not 13 (426, with `Sec-WebSocket-Version: 13`).
    #[error("unsupported Sec-WebSocket-Version (13 is required)")]
    UnsupportedVersion,
    /// Over a connection limit, or the connect hook took longer than the handshake
    /// timeout (503, with `Retry-After`).
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Which limit.
        reason: &'static str,
        /// Seconds for `Retry-After`.
        retry_after: u64,
    },
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
            HandshakeError::ShuttingDown | HandshakeError::Unavailable { .. } => 503,
            HandshakeError::Internal => 500,
            HandshakeError::BadRequest(_) => 400,
            HandshakeError::UnsupportedVersion => 426,
        }
    }

    /// Headers the refusal must carry besides `content-type: application/json`:
    /// `Sec-WebSocket-Version: 13` with a 426, `Retry-After` with a 503.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            HandshakeError::UnsupportedVersion => vec![("sec-websocket-version", "13".into())],
            HandshakeError::Unavailable { retry_after, .. } => {
                vec![("retry-after", retry_after.to_string())]
            }
            // While shutting down, come back (to another instance) in 5 s.
            HandshakeError::ShuttingDown => vec![("retry-after", "5".into())],
            _ => Vec::new(),
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
            HandshakeError::BadRequest(m) => (crate::codes::BAD_REQUEST, *m, None),
            HandshakeError::UnsupportedVersion => (
                crate::codes::BAD_REQUEST,
                "unsupported Sec-WebSocket-Version (13 is required)",
                None,
            ),
            HandshakeError::Unavailable { reason, .. } => ("UNAVAILABLE", *reason, None),
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
    /// The engine's view of `config`, shared by every connection.
    engine: Arc<connection::Settings>,
    hub: Arc<dyn Hub>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    accepting: AtomicBool,
    slots: Arc<Slots>,
    redaction: Arc<Redaction>,
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
        let stats = Arc::new(Stats::default());
        let slots = Slots::new(
            self.config.max_connections,
            self.config.max_connections_per_ip,
            stats.clone(),
        );
        let redaction = Arc::new(Redaction::new(&self.config.redact_headers));
        Server {
            inner: Arc::new(Inner {
                router: self.router,
                state: self.state.into_state(),
                engine: Arc::new(connection::Settings::from_config(&self.config)),
                config: self.config,
                hub: self.hub.unwrap_or_else(|| Arc::new(LocalHub::new())),
                stats,
                slots,
                redaction,
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

    pub(crate) fn engine_settings(&self) -> &Arc<connection::Settings> {
        &self.inner.engine
    }

    pub(crate) fn router(&self) -> &Router<C> {
        &self.inner.router
    }

    pub(crate) fn hub_ref(&self) -> &Arc<dyn Hub> {
        &self.inner.hub
    }

    pub(crate) fn stats_ref(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Whether shutdown began, read without a lock (set before the token is cancelled).
    pub(crate) fn stopping(&self) -> bool {
        !self.inner.accepting.load(Ordering::Acquire)
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
        Stats::with_hub(self.inner.stats.snapshot(), self.inner.hub.stats())
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
        // Before the cancel: connections woken by it read the flag, not the token's lock.
        self.inner.accepting.store(false, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let limit = self.inner.config.shutdown_grace
            + self.inner.config.close_timeout
            + SINK_CLOSE_GRACE
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

    /// Connections holding an admission slot now (in the handshake or open), and the
    /// number of distinct remote IPs among them.
    pub fn admitted(&self) -> (usize, usize) {
        (self.inner.slots.total(), self.inner.slots.ips())
    }

    /// Resolves once no connection holds an admission slot (at once if none does):
    /// every connection, in its handshake or open, has ended. A connection frees its
    /// slot last, after its disconnect hook and its removal from the hub, so then
    /// [`ServerHandle::local_connections`] is 0 as well. New connections may arrive
    /// right after; bound the wait with `tokio::time::timeout`.
    pub async fn idle(&self) {
        self.inner.slots.idle().await
    }

    /// Check a handshake, before the upgrade: shutting down and the connection limits
    /// (`503`), origin, headers, connect hook (within
    /// [`ServerConfig::handshake_timeout`]). The adapters check the HTTP request itself
    /// with [`admission::validate`](crate::admission::validate) first.
    pub async fn handshake(&self, req: HandshakeRequest) -> Result<Accepted<C>, HandshakeError> {
        let remote = req.remote_addr;
        let result = self.check(req).await;
        if let Err(e) = &result {
            self.inner.stats.handshake_refused(e.status());
            // Client-caused: DEBUG (counted in the stats), and bounded (the message may
            // quote input).
            tracing::debug!(
                status = e.status(),
                error = %crate::redact::truncate(&e.to_string(), 200),
                remote = ?remote,
                "handshake refused"
            );
        }
        result
    }

    async fn check(&self, req: HandshakeRequest) -> Result<Accepted<C>, HandshakeError> {
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Err(HandshakeError::ShuttingDown);
        }
        let cfg = &self.inner.config;
        let retry_after = cfg.retry_after.as_secs().max(1);
        let slot = self
            .inner
            .slots
            .acquire(req.remote_addr.map(|a| a.ip()))
            .map_err(|full| HandshakeError::Unavailable {
                reason: match full {
                    Full::Total => "too many connections",
                    Full::PerIp => "too many connections from this address",
                },
                retry_after,
            })?;
        let timeout = cfg.handshake_timeout;
        match tokio::time::timeout(timeout, self.check_headers(req, slot)).await {
            Ok(result) => result,
            Err(_) => Err(HandshakeError::Unavailable {
                reason: "the handshake timed out",
                retry_after,
            }),
        }
    }

    async fn check_headers(
        &self,
        req: HandshakeRequest,
        slot: Slot,
    ) -> Result<Accepted<C>, HandshakeError> {
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
                tracing::info!(client_version = %crate::redact::truncate(v, 32), server_version = protocol::VERSION, "protocol version mismatch; accepting");
            }
        }
        let headers: C::Headers = crate::headers::deserialize(&source)?;
        map.extend(query);
        let info = ConnInfo {
            client_id: ClientId::random(),
            remote_addr: req.remote_addr,
            path: req.path,
            headers: map,
            redaction: self.inner.redaction.clone(),
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
                slot,
                replies: PingReplies::default(),
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
    /// The admission slot: freed when the served connection ends (or this is dropped).
    slot: Slot,
    replies: PingReplies,
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

    /// Who answers the peer's pings: the transport (the default; tokio-tungstenite does,
    /// inside its stream) or the engine, through the sink. Pongs count against the
    /// outbound budget either way; see [`crate::connection`].
    pub fn ping_replies(mut self, replies: PingReplies) -> Self {
        self.replies = replies;
        self
    }

    /// Drive the connection to its end: `__welcome`, dispatch in arrival order
    /// (concurrent once handlers wait, up to the in-flight limit), writing under the byte
    /// budget with backpressure, heartbeats, limits, the closing sequence, and the
    /// disconnect hook, exactly once. Returns why it ended. See [`crate::connection`].
    ///
    /// The stream yields what the peer sent (a [`TransportError::MessageTooBig`] for a
    /// message over the transport's size limit); the sink takes what to send. Closing the
    /// sink is the end of the closing sequence: adapters shut the TCP write side down then.
    pub fn serve<S, K>(self, stream: S, sink: K) -> impl Future<Output = CloseReason> + Send
    where
        S: Stream<Item = Result<WsFrame, TransportError>> + Send + Unpin,
        K: Sink<WsFrame> + Send + Unpin,
        K::Error: std::fmt::Display,
    {
        let Accepted {
            server,
            ctx,
            info,
            slot,
            replies,
        } = self;
        let span = tracing::info_span!("connection", client_id = %info.client_id, remote = ?info.remote_addr);
        // Only the id lives on: the handshake's header map is freed here.
        let id = info.client_id;
        let tracker = server.inner.tracker.clone();
        tracker
            .track_future(driver::serve(server, ctx, id, replies, stream, sink))
            .instrument(span)
            .map(move |reason| {
                // The admission slot is freed once the connection has ended.
                drop(slot);
                reason
            })
    }
}
