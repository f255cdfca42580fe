//! The [`Server`]: a router, the application state, a hub and a configuration, and its
//! lifetime (stats, shutdown). Built by [`builder`]; a connection passes [`handshake`]
//! (with [`admission`] control and the [`headers`] decoder) and is then [`Accepted`] and
//! served by the engine ([`crate::connection`]).

mod accepted;
mod admission;
mod builder;
mod config;
mod handshake;
mod handshake_error;
mod headers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use accepted::Accepted;
pub use admission::{HttpVersion, UpgradeRequest, validate_upgrade};
pub use builder::{BuilderState, NoState, ServerBuilder};
pub use config::{Heartbeat, ProtocolErrorLimit, ServerConfig, SlowConsumerPolicy};
pub use handshake::HandshakeRequest;
pub use handshake_error::HandshakeError;

use crate::connection::{self, SINK_CLOSE_GRACE};
use crate::context::Context;
use crate::cx::ServerHandle;
use crate::hub::Hub;
use crate::redact::Redaction;
use crate::router::Router;
use crate::stats::{Stats, StatsSnapshot};
use admission::Slots;

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
/// [`Accepted::serve`] with the socket as a stream and sink of [`WsFrame`](crate::protocol::WsFrame)s.
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

impl<C: Context> Server<C> {
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
}
