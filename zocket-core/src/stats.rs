//! Server-wide counters: everything dropped or refused is counted here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of a server. Read them with [`crate::Server::stats`].
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) handshakes_rejected: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) frames_queued: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) slow_consumer_closes: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) flood_closes: AtomicU64,
    pub(crate) oversize_closes: AtomicU64,
    pub(crate) heartbeat_timeouts: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) encode_failures: AtomicU64,
    pub(crate) rate_limit_closes: AtomicU64,
    pub(crate) read_pauses: AtomicU64,
    pub(crate) close_timeouts: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Handshakes refused (bad headers, connect hook, origin, shutting down).
    pub handshakes_rejected: u64,
    /// Text frames received.
    pub messages_in: u64,
    /// Frames put into outbound queues.
    pub frames_queued: u64,
    /// Frames that could not be queued or were discarded unwritten (a slow consumer's
    /// events, frames for a closing connection).
    pub frames_dropped: u64,
    /// Connections closed with 1013 because events pushed to them exceeded their budget.
    pub slow_consumer_closes: u64,
    /// `BAD_REQUEST` / `NOT_FOUND` / `INVALID_INPUT` answers.
    pub protocol_errors: u64,
    /// Connections closed with 1008 for too many protocol errors.
    pub flood_closes: u64,
    /// Connections closed with 1009 for an oversize message.
    pub oversize_closes: u64,
    /// Connections closed because no pong arrived in time.
    pub heartbeat_timeouts: u64,
    /// Handler panics (answered with `INTERNAL`).
    pub handler_panics: u64,
    /// Events or replies whose payload failed to serialise.
    pub encode_failures: u64,
    /// Frames a distributed hub published to other nodes (one per target channel).
    pub cluster_published: u64,
    /// Frames a distributed hub received from other nodes.
    pub cluster_received: u64,
    /// Cross-node sends that failed (the backend was unreachable): those events
    /// reached this node's recipients only.
    pub cluster_send_failures: u64,
    /// Connections closed with 1008 `rate limit` (over [`crate::ServerConfig::message_rate`]).
    pub rate_limit_closes: u64,
    /// Times reading from a connection paused because its outbound budget was full
    /// (backpressure on a client that sends faster than it reads; nothing dropped).
    pub read_pauses: u64,
    /// Closing sequences that ended by the close timeout, without the peer's close frame.
    pub close_timeouts: u64,
}

/// The counters a [`crate::Hub`] keeps itself ([`crate::Hub::stats`]); the server adds
/// them into its [`StatsSnapshot`]. All zero for the in-memory hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// See [`StatsSnapshot::cluster_published`].
    pub cluster_published: u64,
    /// See [`StatsSnapshot::cluster_received`].
    pub cluster_received: u64,
    /// See [`StatsSnapshot::cluster_send_failures`].
    pub cluster_send_failures: u64,
}

impl HubStats {
    /// Counters with these values.
    pub fn new(cluster_published: u64, cluster_received: u64, cluster_send_failures: u64) -> Self {
        Self {
            cluster_published,
            cluster_received,
            cluster_send_failures,
        }
    }
}

impl Stats {
    /// Copy every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            handshakes_rejected: self.handshakes_rejected.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            frames_queued: self.frames_queued.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            slow_consumer_closes: self.slow_consumer_closes.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            flood_closes: self.flood_closes.load(Relaxed),
            oversize_closes: self.oversize_closes.load(Relaxed),
            heartbeat_timeouts: self.heartbeat_timeouts.load(Relaxed),
            handler_panics: self.handler_panics.load(Relaxed),
            encode_failures: self.encode_failures.load(Relaxed),
            cluster_published: 0,
            cluster_received: 0,
            cluster_send_failures: 0,
            rate_limit_closes: self.rate_limit_closes.load(Relaxed),
            read_pauses: self.read_pauses.load(Relaxed),
            close_timeouts: self.close_timeouts.load(Relaxed),
        }
    }

    /// This snapshot with a hub's counters in it.
    pub(crate) fn with_hub(mut s: StatsSnapshot, h: HubStats) -> StatsSnapshot {
        s.cluster_published = h.cluster_published;
        s.cluster_received = h.cluster_received;
        s.cluster_send_failures = h.cluster_send_failures;
        s
    }
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}
