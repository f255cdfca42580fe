//! The server's configuration: limits and timings, each with a documented default.

use std::time::Duration;

use crate::connection::RateLimit;

/// Limits and timings of a server. Every field has a sensible default
/// (`ServerConfig::default()`); change what you need with the setter of the same name
/// (the type is `#[non_exhaustive]`, so new options are not a breaking change):
///
/// ```
/// use std::time::Duration;
/// use zocket_core::{Heartbeat, ServerConfig};
/// let config = ServerConfig::default()
///     .max_in_flight(1)
///     .heartbeat(Heartbeat::new(Duration::from_secs(5), Duration::from_secs(3)))
///     .handler_timeout(Duration::from_secs(30));
/// assert_eq!(config.max_message_bytes, 1 << 20);
/// assert_eq!(config.heartbeat.interval(), Some(Duration::from_secs(5)));
/// ```
///
/// Values that only mean something together are one type: the [`Heartbeat`] (interval
/// and timeout), the [`ProtocolErrorLimit`] (count and window) and the [`RateLimit`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest accepted message (reassembled, uncompressed); larger closes with 1009.
    /// Default 1 MiB. Adapters pass it to their WebSocket implementation as well.
    pub max_message_bytes: usize,
    /// Handlers of one connection that may wait concurrently; at the limit reading from
    /// that connection pauses. `1` is strictly sequential. Default 64.
    pub max_in_flight: usize,
    /// The most events pushed to a connection by others (fan-out, [`ServerHandle`](crate::ServerHandle)) that
    /// may wait to be written, in frames, on top of [`outbound_budget`](Self::outbound_budget);
    /// beyond it the connection is a slow consumer. It bounds many tiny events; the
    /// connection's own replies are not counted here. Default 4096.
    pub outbound_queue: usize,
    /// Each connection's outbound budget in bytes: every frame waiting to be written
    /// (replies, events, pings and pongs; each charged its length plus
    /// [`FRAME_OVERHEAD`](crate::hub::FRAME_OVERHEAD) until the flush that writes it
    /// completes). When the connection's own frames fill it, reading from the connection
    /// pauses until the writer drains (backpressure, nothing dropped); events pushed by
    /// others beyond it make it a slow consumer. Nothing is reserved up front. Default 1 MiB.
    pub outbound_budget: usize,
    /// What to do with a slow consumer. Default: close with 1013.
    pub slow_consumer: SlowConsumerPolicy,
    /// Server pings and the liveness timeout. Default: a ping every 25 s, 20 s to answer.
    pub heartbeat: Heartbeat,
    /// Protocol errors (`BAD_REQUEST`, `NOT_FOUND`, `INVALID_INPUT`) allowed per window
    /// before closing with 1008. Default 100 per 10 s.
    pub protocol_errors: ProtocolErrorLimit,
    /// When set, a request whose `Origin` header is not in the list is refused (403).
    /// Requests without `Origin` (non-browser clients) are allowed. Default: no check.
    pub allowed_origins: Option<Vec<String>>,
    /// On shutdown, how long in-flight handlers may run before connections are closed
    /// anyway. Default 10 s.
    pub shutdown_grace: Duration,
    /// A deadline for each handler (answered with `TIMEOUT`). Default: none. It bounds
    /// async handlers and middleware; a plain function ([`SyncHandler`](crate::SyncHandler))
    /// cannot be interrupted, so only its middleware is bounded.
    pub handler_timeout: Option<Duration>,
    /// How long the closing sequence may take: the last frames, the close frame, and
    /// waiting for the peer's close frame (reading and discarding meanwhile); closing the
    /// sink then gets at most 1 s more. Default 5 s.
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
    /// Most client ids or rooms in one send of a handler (`cx.send(..).to(..)` or
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
            heartbeat: Heartbeat::default(),
            protocol_errors: ProtocolErrorLimit::default(),
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

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    )*};
}

macro_rules! optional_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<Option<$ty>>) -> Self {
            self.$name = value.into();
            self
        }
    )*};
}

impl ServerConfig {
    setters! {
        /// Set [`max_message_bytes`](Self::max_message_bytes).
        max_message_bytes: usize;
        /// Set [`max_in_flight`](Self::max_in_flight).
        max_in_flight: usize;
        /// Set [`outbound_queue`](Self::outbound_queue).
        outbound_queue: usize;
        /// Set [`outbound_budget`](Self::outbound_budget).
        outbound_budget: usize;
        /// Set [`slow_consumer`](Self::slow_consumer).
        slow_consumer: SlowConsumerPolicy;
        /// Set [`heartbeat`](Self::heartbeat) (e.g. [`Heartbeat::disabled()`]).
        heartbeat: Heartbeat;
        /// Set [`protocol_errors`](Self::protocol_errors).
        protocol_errors: ProtocolErrorLimit;
        /// Set [`shutdown_grace`](Self::shutdown_grace).
        shutdown_grace: Duration;
        /// Set [`close_timeout`](Self::close_timeout).
        close_timeout: Duration;
        /// Set [`max_connections`](Self::max_connections).
        max_connections: usize;
        /// Set [`max_connections_per_ip`](Self::max_connections_per_ip).
        max_connections_per_ip: usize;
        /// Set [`retry_after`](Self::retry_after).
        retry_after: Duration;
        /// Set [`handshake_timeout`](Self::handshake_timeout).
        handshake_timeout: Duration;
        /// Set [`max_rooms_per_connection`](Self::max_rooms_per_connection).
        max_rooms_per_connection: usize;
        /// Set [`max_room_name_bytes`](Self::max_room_name_bytes).
        max_room_name_bytes: usize;
        /// Set [`max_send_targets`](Self::max_send_targets).
        max_send_targets: usize;
        /// Set [`redact_headers`](Self::redact_headers).
        redact_headers: Vec<String>;
    }
    optional_setters! {
        /// Set [`allowed_origins`](Self::allowed_origins) (`None`: no check).
        allowed_origins: Vec<String>;
        /// Set [`handler_timeout`](Self::handler_timeout): a `Duration`, or `None` for no
        /// deadline.
        handler_timeout: Duration;
        /// Set [`message_rate`](Self::message_rate): a [`RateLimit`], or `None` to
        /// disable it.
        message_rate: RateLimit;
    }
}

/// Server-side liveness checks: every `interval` the server pings, and a connection
/// that sends nothing back (the pong, or a message; its pings do not count) within
/// `timeout` of a ping written is dropped, as is one whose ping cannot even be written
/// within `timeout` of being due (the peer reads nothing and its socket is full). So a
/// dead peer is detected within `interval + timeout`. The same shape as the client's
/// `zocket_client::Heartbeat`.
///
/// ```
/// use std::time::Duration;
/// use zocket_core::Heartbeat;
///
/// let hb = Heartbeat::new(Duration::from_secs(5), Duration::from_secs(3));
/// assert_eq!(hb.interval(), Some(Duration::from_secs(5)));
/// assert_eq!(Heartbeat::default().timeout(), Some(Duration::from_secs(20)));
/// assert_eq!(Heartbeat::disabled().interval(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    timing: Option<(Duration, Duration)>,
}

impl Default for Heartbeat {
    /// A ping every 25 s, 20 s to answer.
    fn default() -> Self {
        Self::new(Duration::from_secs(25), Duration::from_secs(20))
    }
}

impl Heartbeat {
    /// Ping every `interval`; drop the connection when nothing arrives within `timeout`
    /// of a ping. Zero durations are raised to 1 ms.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        let min = Duration::from_millis(1);
        Self {
            timing: Some((interval.max(min), timeout.max(min))),
        }
    }
    /// No server pings (the peer's pings are still answered).
    pub fn disabled() -> Self {
        Self { timing: None }
    }
    /// The ping interval, `None` when disabled.
    pub fn interval(&self) -> Option<Duration> {
        self.timing.map(|(i, _)| i)
    }
    /// The pong timeout, `None` when disabled.
    pub fn timeout(&self) -> Option<Duration> {
        self.timing.map(|(_, t)| t)
    }
}

/// How many protocol errors (`BAD_REQUEST`, `NOT_FOUND`, `INVALID_INPUT` answers) one
/// connection may cause in a fixed window: more than `max` in one `window` closes it
/// with 1008 `too many protocol errors`.
///
/// ```
/// use std::time::Duration;
/// use zocket_core::{ProtocolErrorLimit, ServerConfig};
/// let strict = ServerConfig::default()
///     .protocol_errors(ProtocolErrorLimit { max: 5, window: Duration::from_secs(60) });
/// assert_eq!(ServerConfig::default().protocol_errors.max, 100);
/// # let _ = strict;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolErrorLimit {
    /// Errors allowed per window. Default 100.
    pub max: u32,
    /// The window. Default 10 s.
    pub window: Duration,
}

impl Default for ProtocolErrorLimit {
    fn default() -> Self {
        Self {
            max: 100,
            window: Duration::from_secs(10),
        }
    }
}

/// What to do when the events pushed to a connection by others exceed its outbound
/// budget ([`crate::ServerConfig::outbound_budget`], [`crate::ServerConfig::outbound_queue`]).
/// Frames caused by the connection's own messages never count as slow consumption:
/// reading from it pauses instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1013 ("try again later"). The default: a client that
    /// cannot keep up is told so, instead of silently missing messages.
    #[default]
    Close,
    /// Drop the event that did not fit and keep the connection (counted in
    /// [`crate::StatsSnapshot::frames_dropped`], logged once per connection).
    DropFrame,
}
