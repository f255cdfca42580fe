//! The client's configuration: [`ClientConfig`], with its [`Reconnect`] policy and
//! [`Heartbeat`].

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// When and how often to reconnect after the connection drops.
///
/// Exponential backoff with jitter: attempt `n` (1-based) waits
/// `min(max_delay, initial_delay * multiplier^(n-1))`, of which a random fraction of up
/// to `jitter` is taken off (so with the default jitter of 0.5 the wait lies between half
/// and all of it). Reconnecting is on by default and tries forever.
///
/// Handshake rejections (HTTP 4xx such as 400, 401, 403) are never retried: the client
/// closes instead.
///
/// ```
/// use std::time::Duration;
/// use zocket_client::Reconnect;
///
/// let policy = Reconnect::default()
///     .initial_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(5))
///     .jitter(0.0)
///     .max_attempts(10);
/// assert_eq!(policy.delay(1), Duration::from_millis(100));
/// assert_eq!(policy.delay(3), Duration::from_millis(400));
/// assert_eq!(policy.delay(30), Duration::from_secs(5));
/// assert!(!Reconnect::disabled().is_enabled());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    enabled: bool,
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: f64,
    max_attempts: Option<u32>,
}

impl Default for Reconnect {
    /// On; 250 ms initial delay, doubling up to 30 s, jitter 0.5, forever.
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl Reconnect {
    /// The default policy (see [`Reconnect::default`]).
    pub fn new() -> Self {
        Self::default()
    }
    /// Never reconnect: when the connection drops the client closes.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
    /// The wait before the first attempt.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }
    /// The longest wait between two attempts.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }
    /// The growth factor of the wait (at least 1.0).
    pub fn multiplier(mut self, factor: f64) -> Self {
        self.multiplier = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }
    /// The largest random fraction taken off each wait, from 0.0 (none) to 1.0.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }
    /// Give up (and close the client) after this many failed attempts in a row.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }
    /// Try forever (the default).
    pub fn forever(mut self) -> Self {
        self.max_attempts = None;
        self
    }
    /// Whether reconnecting is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// The maximum number of attempts in a row, `None` for forever.
    pub fn attempts_limit(&self) -> Option<u32> {
        self.max_attempts
    }

    /// Whether attempt number `attempt` (1-based) is allowed.
    pub(crate) fn allows(&self, attempt: u32) -> bool {
        self.enabled && self.max_attempts.is_none_or(|max| attempt <= max)
    }

    /// The wait before attempt `attempt` (1-based), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        let max = self.max_delay.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// The wait before attempt `attempt`, with jitter applied.
    pub(crate) fn jittered_delay(&self, attempt: u32) -> Duration {
        let base = self.delay(attempt);
        base.mul_f64(1.0 - self.jitter * random_unit())
    }
}

/// A random number in `[0, 1)`, good enough for jitter (not for cryptography).
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Client-side liveness checks: after each `interval` the client sends a WebSocket ping
/// and gives the server `timeout` to send anything at all (the pong, or any frame); when
/// nothing arrives, the connection is treated as dead, dropped, and the reconnect policy
/// applies. So a dead peer is detected within `interval + timeout`, also when writing to
/// it is stuck.
///
/// ```
/// use std::time::Duration;
/// use zocket_client::Heartbeat;
///
/// let hb = Heartbeat::new(Duration::from_secs(5), Duration::from_secs(3));
/// assert_eq!(hb.interval(), Some(Duration::from_secs(5)));
/// assert_eq!(Heartbeat::disabled().interval(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    inner: Option<(Duration, Duration)>,
}

impl Default for Heartbeat {
    /// A ping every 15 s, 10 s to answer.
    fn default() -> Self {
        Self::new(Duration::from_secs(15), Duration::from_secs(10))
    }
}

impl Heartbeat {
    /// Ping every `interval`; dead when nothing arrives within `timeout` after a ping.
    /// Zero durations are raised to 1 ms.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        let min = Duration::from_millis(1);
        Self {
            inner: Some((interval.max(min), timeout.max(min))),
        }
    }
    /// No client-side pings (the server's own pings are still answered).
    pub fn disabled() -> Self {
        Self { inner: None }
    }
    /// The ping interval, `None` when disabled.
    pub fn interval(&self) -> Option<Duration> {
        self.inner.map(|(i, _)| i)
    }
    /// The pong timeout, `None` when disabled.
    pub fn timeout(&self) -> Option<Duration> {
        self.inner.map(|(_, t)| t)
    }
}

/// Everything a [`Client`](crate::Client) is configured with except its URL, headers and
/// hooks: timeouts, the [`Reconnect`] policy, the [`Heartbeat`], buffer sizes and TLS.
///
/// Usually set through [`ClientBuilder`](crate::ClientBuilder)'s methods of the same
/// names; build one to share it between clients, and pass it with
/// [`ClientBuilder::config`](crate::ClientBuilder::config). New options may be added
/// (hence `#[non_exhaustive]`): start from [`ClientConfig::default`] and use the setters
/// or assign the fields.
///
/// ```
/// use std::time::Duration;
/// use zocket_client::{ClientConfig, Heartbeat, Reconnect};
///
/// let config = ClientConfig::default()
///     .rpc_timeout(Duration::from_secs(5))
///     .heartbeat(Heartbeat::new(Duration::from_secs(10), Duration::from_secs(5)))
///     .reconnect(Reconnect::default().max_attempts(3));
/// assert_eq!(config.rpc_timeout, Duration::from_secs(5));
/// assert_eq!(config.outbound_buffer, 1024);
/// let client = zocket_client::Client::builder("ws://127.0.0.1:3000/")
///     .config(config)
///     .build()?;
/// assert_eq!(client.config().heartbeat.timeout(), Some(Duration::from_secs(5)));
/// # Ok::<(), zocket_client::ConnectError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The default timeout of [`Client::call`](crate::Client::call) and
    /// [`Client::emit`](crate::Client::emit). Default 10 s.
    pub rpc_timeout: Duration,
    /// How long one connection attempt (TCP and handshake) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// When to reconnect. Default [`Reconnect::default`]: on, forever.
    pub reconnect: Reconnect,
    /// Client-side pings. Default [`Heartbeat::default`]: every 15 s, 10 s to answer.
    pub heartbeat: Heartbeat,
    /// How many messages may wait to be sent, also while disconnected (`0`: none are
    /// buffered while disconnected). Default 1024.
    pub outbound_buffer: usize,
    /// How many events each subscription holds before it reports
    /// [`ClientError::Lagged`](crate::ClientError::Lagged) (at least 1). Default 1024.
    pub subscription_buffer: usize,
    /// How long to wait for the server's `__welcome`; `None` does not wait (Zocket v1
    /// servers send none). Default 5 s.
    pub welcome_timeout: Option<Duration>,
    /// Retry the first connection by the reconnect policy too. Default off.
    pub retry_initial_connect: bool,
    /// The largest incoming message accepted; `None` for no limit. Default 16 MiB.
    pub max_message_bytes: Option<usize>,
    /// The TLS configuration of `wss://` connections; `None`: rustls with the webpki
    /// roots and the `ring` provider. Default `None`.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl ClientConfig {
    /// Set [`rpc_timeout`](Self::rpc_timeout).
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }
    /// Set [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Set [`reconnect`](Self::reconnect).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = policy;
        self
    }
    /// Set [`heartbeat`](Self::heartbeat).
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }
    /// Set [`outbound_buffer`](Self::outbound_buffer).
    pub fn outbound_buffer(mut self, messages: usize) -> Self {
        self.outbound_buffer = messages;
        self
    }
    /// Set [`subscription_buffer`](Self::subscription_buffer) (raised to at least 1).
    pub fn subscription_buffer(mut self, events: usize) -> Self {
        self.subscription_buffer = events.max(1);
        self
    }
    /// Set [`welcome_timeout`](Self::welcome_timeout).
    pub fn welcome_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.welcome_timeout = timeout;
        self
    }
    /// Set [`retry_initial_connect`](Self::retry_initial_connect).
    pub fn retry_initial_connect(mut self, retry: bool) -> Self {
        self.retry_initial_connect = retry;
        self
    }
    /// Set [`max_message_bytes`](Self::max_message_bytes).
    pub fn max_message_bytes(mut self, bytes: Option<usize>) -> Self {
        self.max_message_bytes = bytes;
        self
    }
    /// Set [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ClientConfig");
        d.field("rpc_timeout", &self.rpc_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &self.reconnect)
            .field("heartbeat", &self.heartbeat)
            .field("outbound_buffer", &self.outbound_buffer)
            .field("subscription_buffer", &self.subscription_buffer)
            .field("welcome_timeout", &self.welcome_timeout)
            .field("retry_initial_connect", &self.retry_initial_connect)
            .field("max_message_bytes", &self.max_message_bytes);
        #[cfg(feature = "tls")]
        d.field("custom_tls", &self.tls.is_some());
        d.finish()
    }
}

impl Default for ClientConfig {
    /// The defaults listed on each field.
    fn default() -> Self {
        Self {
            rpc_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
            heartbeat: Heartbeat::default(),
            outbound_buffer: 1024,
            subscription_buffer: 1024,
            welcome_timeout: Some(Duration::from_secs(5)),
            retry_initial_connect: false,
            max_message_bytes: Some(16 << 20),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = Reconnect::default()
            .initial_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(100))
            .jitter(0.0);
        assert_eq!(p.delay(1), Duration::from_millis(10));
        assert_eq!(p.delay(2), Duration::from_millis(20));
        assert_eq!(p.delay(4), Duration::from_millis(80));
        assert_eq!(p.delay(5), Duration::from_millis(100));
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_in_range() {
        let p = Reconnect::default()
            .initial_delay(Duration::from_millis(100))
            .jitter(0.5);
        for _ in 0..1000 {
            let d = p.jittered_delay(1);
            assert!(d <= Duration::from_millis(100) && d >= Duration::from_millis(50));
        }
    }

    #[test]
    fn attempts_limit() {
        let p = Reconnect::default().max_attempts(2);
        assert!(p.allows(1) && p.allows(2) && !p.allows(3));
        assert!(Reconnect::default().allows(u32::MAX));
        assert!(!Reconnect::disabled().allows(1));
    }
}
