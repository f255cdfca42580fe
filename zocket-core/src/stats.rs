//! Server-wide counters and metrics: everything dropped or refused is counted here.
//!
//! Two views of the same events, recorded at the same places (the `record_*` and
//! `Stats` methods below), so they cannot disagree:
//!
//! - [`Stats`]: this server's own counters, read with [`crate::Server::stats`].
//! - Metrics through the [`metrics`] facade: process-wide, recorded into whatever
//!   recorder the application installed (e.g. `metrics-exporter-prometheus`; the
//!   `reference` and `chat` example binaries serve them with `--metrics ADDR`). Without
//!   a recorder they cost a no-op call. zocket-core ships no exporter.
//!
//! # Metrics
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `zocket_connections_open` | gauge | | WebSocket connections open now (after the handshake) |
//! | `zocket_connections_total` | counter | | connections accepted |
//! | `zocket_handshakes_refused_total` | counter | `status`: the HTTP status answered (`400`, `401`, `403`, `503`, ...) | handshakes refused before the upgrade |
//! | `zocket_messages_in_total` | counter | `type`: the message name when it is a registered route, else `unknown` (also for frames that do not parse) | text frames received |
//! | `zocket_rpc_duration_seconds` | histogram | `type` (a registered route), `outcome`: `ok` or `error` | from a request's arrival to its reply being queued (read off the clock after the reply is queued and before it is written: a reply queued while its poll still reads is counted until the poll's next reading, every 4 messages), for every RPC that reached its handler (an `INTERNAL` answer to a panic or `TIMEOUT` counts as `error`) |
//! | `zocket_events_delivered_total` | counter | | event frames queued for local connections (one per recipient; on a cluster, counted by the node holding the recipient) |
//! | `zocket_frames_dropped_total` | counter | `reason`: `queue_full` or `closed` | frames that could not be queued (`queue_full`: the outbound budget was full; `closed`: the connection was closing or gone, including frames still queued when it closed without flushing them) |
//! | `zocket_closes_total` | counter | `code`: the close code the server sent or echoed (`1000`, `1001`, `1008`, `1009`, `1013`, ... or `none` when the socket ended without one); `reason`: `client_closed`, `transport_error`, `heartbeat_timeout`, `slow_consumer`, `protocol_errors`, `rate_limited`, `message_too_big`, `server_shutdown` or `closed` (closed by the application) | connections ended |
//!
//! Every label value comes from a fixed set or from the application's own router and
//! code: nothing a client sends can create a new label value (an unregistered message
//! name is counted as `unknown`, a client's close code is not used).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use metrics::{Counter, Histogram};
use tokio::time::Instant;

use crate::context::CloseReason;

/// Metric names (types and labels: [the crate docs](crate#metrics)).
pub mod names {
    /// Gauge: connections open now.
    pub const CONNECTIONS_OPEN: &str = "zocket_connections_open";
    /// Counter: connections accepted.
    pub const CONNECTIONS_TOTAL: &str = "zocket_connections_total";
    /// Counter, label `status`: handshakes refused.
    pub const HANDSHAKES_REFUSED: &str = "zocket_handshakes_refused_total";
    /// Counter, label `type`: text frames received.
    pub const MESSAGES_IN: &str = "zocket_messages_in_total";
    /// Histogram (seconds), labels `type` and `outcome`: RPC latency.
    pub const RPC_DURATION: &str = "zocket_rpc_duration_seconds";
    /// Counter: event frames queued for local connections.
    pub const EVENTS_DELIVERED: &str = "zocket_events_delivered_total";
    /// Counter, label `reason`: frames that could not be queued.
    pub const FRAMES_DROPPED: &str = "zocket_frames_dropped_total";
    /// Counter, labels `code` and `reason`: connections ended.
    pub const CLOSES: &str = "zocket_closes_total";
}

/// Describe every metric to the installed recorder (units and help texts, e.g. the
/// `# HELP` lines of Prometheus), and register the unlabelled ones at zero so that a
/// scrape shows them before the first connection. Call it once after installing a
/// recorder; recording works without it.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    metrics::gauge!(names::CONNECTIONS_OPEN).increment(0.0);
    metrics::counter!(names::CONNECTIONS_TOTAL).increment(0);
    metrics::counter!(names::EVENTS_DELIVERED).increment(0);
    describe_gauge!(names::CONNECTIONS_OPEN, "WebSocket connections open now");
    describe_counter!(names::CONNECTIONS_TOTAL, "WebSocket connections accepted");
    describe_counter!(
        names::HANDSHAKES_REFUSED,
        "Handshakes refused before the upgrade, by HTTP status"
    );
    describe_counter!(
        names::MESSAGES_IN,
        "Text frames received, by message type (registered routes; others: unknown)"
    );
    describe_histogram!(
        names::RPC_DURATION,
        Unit::Seconds,
        "RPC latency from arrival to queued reply, by message type and outcome"
    );
    describe_counter!(
        names::EVENTS_DELIVERED,
        "Event frames queued for local connections (one per recipient)"
    );
    describe_counter!(
        names::FRAMES_DROPPED,
        "Frames that could not be queued, by reason (queue_full, closed)"
    );
    describe_counter!(
        names::CLOSES,
        "Connections ended, by close code sent (none: no close frame) and reason"
    );
}

impl<C: crate::Context> crate::Server<C> {
    /// Waits until `cond` holds for this server, e.g. for its [`stats`](Self::stats)
    /// or its [`admitted`](Self::admitted) connections: checked now, then again after
    /// every change of the connection counts (a connection admitted, opened, closed,
    /// or its admission slot freed). An event wait, no polling; bound it with
    /// `tokio::time::timeout`.
    ///
    /// ```
    /// # use zocket_core::{Connect, Context, Reject, Router, Server};
    /// # struct User;
    /// # impl Context for User {
    /// #     type Headers = std::collections::HashMap<String, String>;
    /// #     type State = ();
    /// #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let server = Server::new(Router::<User>::new());
    /// // Resolves once every connection has ended and freed its slot.
    /// server.wait_until(|s| s.admitted().0 == 0).await;
    /// # });
    /// ```
    pub async fn wait_until(&self, mut cond: impl FnMut(&Self) -> bool) {
        let stats = self.handle().stats;
        // Subscribed before the first check, so a change in between is not missed.
        let mut changes = stats.changes.subscribe();
        while !cond(self) {
            if changes.changed().await.is_err() {
                return; // unreachable: `stats` holds the sender
            }
        }
    }
}

/// The `type` label of a message that is not a registered route.
pub(crate) const UNKNOWN_TYPE: &str = "unknown";

/// Live counters of a server. Read them with [`crate::Server::stats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
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
    pub(crate) admission_full: AtomicU64,
    pub(crate) limit_refusals: AtomicU64,
    pub(crate) rate_limit_closes: AtomicU64,
    pub(crate) read_pauses: AtomicU64,
    pub(crate) close_timeouts: AtomicU64,
    /// Bumped whenever a connection is admitted, opened, unregistered or closed, or
    /// frees its admission slot: what [`Server::wait_until`](crate::Server::wait_until)
    /// waits on.
    changes: tokio::sync::watch::Sender<u64>,
}

/// A point-in-time copy of the server's counters ([`crate::Server::stats`]).
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
    /// Handshakes refused with `503` because a connection limit (total or per IP) was
    /// reached.
    pub admission_full: u64,
    /// Joins and sends refused with `LIMIT` (rooms per connection, room-name length,
    /// send-target size).
    pub limit_refusals: u64,
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

/// The counters a [`Hub`](crate::hub::Hub) keeps itself ([`Hub::stats`](crate::hub::Hub::stats)); the server adds
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
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
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
            admission_full: self.admission_full.load(Relaxed),
            limit_refusals: self.limit_refusals.load(Relaxed),
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

/// Why a frame was not queued (the `reason` label of `zocket_frames_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The outbound queue was full.
    QueueFull,
    /// The connection was closing or gone.
    Closed,
}

impl Stats {
    /// A connection passed its handshake and is being served.
    pub(crate) fn connection_opened(&self) {
        inc(&self.connections_open);
        inc(&self.connections_total);
        metrics::gauge!(names::CONNECTIONS_OPEN).increment(1.0);
        metrics::counter!(names::CONNECTIONS_TOTAL).increment(1);
        self.changed();
    }

    /// A connection left the hub: it is no longer open.
    pub(crate) fn connection_unregistered(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
        metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1.0);
        self.changed();
    }

    /// Wake whoever waits in [`Server::wait_until`](crate::Server::wait_until): the
    /// connection counts or the admission slots changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// How a connection ended (`zocket_closes_total`), after its disconnect hook.
    pub(crate) fn record_close(&self, reason: &CloseReason) {
        let code = match reason.code() {
            Some(code) => std::borrow::Cow::Owned(code.to_string()),
            None => std::borrow::Cow::Borrowed("none"),
        };
        tracing::trace!(%code, reason = close_label(reason), "close recorded");
        metrics::counter!(names::CLOSES, "code" => code, "reason" => close_label(reason))
            .increment(1);
        self.changed();
    }

    /// A handshake was refused with this HTTP status.
    pub(crate) fn handshake_refused(&self, status: u16) {
        inc(&self.handshakes_rejected);
        metrics::counter!(names::HANDSHAKES_REFUSED, "status" => status.to_string()).increment(1);
    }

    /// Messages and frames an engine counted during one poll, added at once (one
    /// atomic add each per poll rather than per message); the engine adds them before
    /// it writes the frames that answer those messages.
    pub(crate) fn add_polled(&self, messages: u64, frames: u64) {
        if messages > 0 {
            self.messages_in.fetch_add(messages, Relaxed);
        }
        if frames > 0 {
            self.frames_queued.fetch_add(frames, Relaxed);
        }
    }

    /// A frame went into an outbound queue.
    pub(crate) fn frame_queued(&self) {
        inc(&self.frames_queued);
    }

    /// A frame could not be queued.
    pub(crate) fn frame_dropped(&self, why: Dropped) {
        self.frames_dropped(why, 1);
    }

    /// `n` frames could not be queued, or were queued and discarded by the close.
    pub(crate) fn frames_dropped(&self, why: Dropped, n: u64) {
        self.frames_dropped.fetch_add(n, Relaxed);
        let reason = match why {
            Dropped::QueueFull => "queue_full",
            Dropped::Closed => "closed",
        };
        metrics::counter!(names::FRAMES_DROPPED, "reason" => reason).increment(n);
    }
}

/// An RPC of a registered route was answered: which, how, and when its frame arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RpcDone {
    /// The route's name (the router's key).
    pub(crate) name: &'static str,
    /// Answered `__rpc_res` (else `__rpc_err`).
    pub(crate) ok: bool,
    /// When the frame arrived (the engine's reading of the clock for the read).
    pub(crate) arrived: Instant,
}

/// What one engine poll counted, recorded at once when the engine publishes it (before
/// it writes the frames that answer those messages, and when the poll ends).
///
/// The server's counters take one atomic add per poll instead of one per message and
/// frame. The per-route metrics take one lookup of the route's handles (see
/// [`with_route`]) per run of consecutive messages (or answered RPCs) of one route, not
/// one per message: the messages of a run are one increment of `zocket_messages_in_total`.
///
/// An RPC's duration ends at a reading of the clock the engine takes after its answer
/// was queued and before that answer is written (see [`settle`](Self::settle)), not at
/// a reading of its own: answered RPCs of one route and outcome that arrived at the same
/// reading wait for the next one, and are recorded together then (one clock read and
/// one histogram call for a batch, where the clock costs as much as the rest of the
/// bookkeeping of an RPC).
#[derive(Default)]
pub(crate) struct Tally {
    /// Text frames that arrived (see [`message_in`](Self::message_in)).
    messages: u64,
    /// Frames queued.
    pub(crate) frames: u64,
    /// The route of the latest messages, and how many arrived in a row.
    route_run: Option<(&'static str, u64)>,
    /// The duration histograms of the route of the latest answered RPC.
    rpc_run: Option<RpcHandles>,
    /// Answered RPCs whose duration waits for the next reading of the clock: all of
    /// one route and outcome that arrived at the same reading, and how many.
    unsettled: Option<(RpcDone, usize)>,
}

/// The duration histograms of one route, each registered when first used.
struct RpcHandles {
    name: &'static str,
    ok: Option<Histogram>,
    error: Option<Histogram>,
}

impl Tally {
    /// A text frame arrived: a message of the registered route `route`, or (`None`) one
    /// that did not parse or names no route (the per-route metric's `unknown`).
    pub(crate) fn message_in(&mut self, route: Option<&'static str>) {
        self.messages += 1;
        let Some(name) = route else {
            metrics::counter!(names::MESSAGES_IN, "type" => UNKNOWN_TYPE).increment(1);
            return;
        };
        match &mut self.route_run {
            Some((run, n)) if same_route(run, name) => *n += 1,
            _ => {
                self.record_messages();
                self.route_run = Some((name, 1));
            }
        }
    }

    /// An RPC was answered (its answer is queued): its duration is recorded at the next
    /// [`settle`](Self::settle) (or [`publish`](Self::publish)).
    pub(crate) fn rpc_done(&mut self, done: RpcDone) {
        match &mut self.unsettled {
            Some((run, n))
                if same_route(run.name, done.name)
                    && run.ok == done.ok
                    && run.arrived == done.arrived =>
            {
                *n += 1
            }
            _ => {
                // Another batch waits: its answers were queued before this one, so a
                // reading now ends them.
                self.settle(Instant::now());
                self.unsettled = Some((done, 1));
            }
        }
    }

    /// The clock read `now`, after every answer counted by [`rpc_done`](Self::rpc_done)
    /// so far was queued: their durations end there.
    pub(crate) fn settle(&mut self, now: Instant) {
        let Some((done, n)) = self.unsettled.take() else {
            return;
        };
        let run = match &mut self.rpc_run {
            Some(run) if same_route(run.name, done.name) => run,
            slot => slot.insert(RpcHandles {
                name: done.name,
                ok: None,
                error: None,
            }),
        };
        let slot = if done.ok { &mut run.ok } else { &mut run.error };
        let elapsed = now.saturating_duration_since(done.arrived).as_secs_f64();
        slot.get_or_insert_with(|| rpc_histogram(done.name, done.ok))
            .record_many(elapsed, n);
    }

    /// Add everything counted to the server's counters and the metrics, and start over.
    /// Durations still unsettled end at a reading of the clock taken here.
    pub(crate) fn publish(&mut self, stats: &Stats) {
        if self.unsettled.is_some() {
            self.settle(Instant::now());
        }
        if self.messages | self.frames != 0 {
            stats.add_polled(self.messages, self.frames);
            self.messages = 0;
            self.frames = 0;
        }
        self.record_messages();
    }

    fn record_messages(&mut self) {
        if let Some((name, n)) = self.route_run.take() {
            with_route(name, |r| {
                r.messages_in
                    .get_or_insert_with(|| metrics::counter!(names::MESSAGES_IN, "type" => name))
                    .increment(n);
            });
        }
    }
}

/// The duration histogram of the RPCs of route `name` with this outcome.
fn rpc_histogram(name: &'static str, ok: bool) -> Histogram {
    with_route(name, |r| {
        let slot = if ok { &mut r.rpc_ok } else { &mut r.rpc_error };
        slot.get_or_insert_with(|| {
            let outcome = if ok { "ok" } else { "error" };
            metrics::histogram!(names::RPC_DURATION, "type" => name, "outcome" => outcome)
        })
        .clone()
    })
}

/// Whether two route names are the same route: a route's name is always the router's
/// `&'static str` key, compared by address and length (not by its text).
fn same_route(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b)
}

/// The metric handles of one route, registered with the recorder when first used.
#[derive(Default)]
struct RouteMetrics {
    messages_in: Option<Counter>,
    rpc_ok: Option<Histogram>,
    rpc_error: Option<Histogram>,
}

/// Per thread: the handles of every route seen, and the recorder they came from.
///
/// Registering a labelled metric builds its key (a label vector and a hash) on every
/// call, even with no recorder installed, which cost more per message than the rest of
/// the dispatch bookkeeping. The handles are kept instead, and dropped when the
/// recorder in effect changes (a recorder installed later, or a local recorder), so
/// every message still reaches the recorder that is current when it is recorded.
/// Bounded by the number of route names (static strings) in the program.
#[derive(Default)]
struct RouteCache {
    /// Address of the recorder the handles came from.
    recorder: usize,
    /// By the route's name (see [`same_route`]).
    routes: Vec<(&'static str, RouteMetrics)>,
}

thread_local! {
    static ROUTES: RefCell<RouteCache> = RefCell::default();
}

/// `f` on the handles of route `name` (registered with the recorder in effect), and
/// what it returns.
fn with_route<T>(name: &'static str, f: impl FnOnce(&mut RouteMetrics) -> T) -> T {
    let recorder = metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize);
    let mut f = Some(f);
    // Fails only while the thread exits; a borrow fails only if a recorder re-entered.
    // `f` is taken only once the cache is at hand, and then its result is returned.
    let cached = ROUTES.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        if cache.recorder != recorder {
            cache.recorder = recorder;
            cache.routes.clear();
        }
        let i = match cache.routes.iter().position(|(k, _)| same_route(k, name)) {
            Some(i) => i,
            None => {
                cache.routes.push((name, RouteMetrics::default()));
                cache.routes.len() - 1
            }
        };
        f.take().map(|f| f(&mut cache.routes[i].1))
    });
    match (cached, f) {
        (Ok(Some(done)), _) => done,
        // No cache: register and record once.
        (_, Some(f)) => f(&mut RouteMetrics::default()),
        (_, None) => unreachable!("the cache took `f` and returned its result"),
    }
}

/// `n` event frames were queued for local connections.
pub(crate) fn record_events_delivered(n: usize) {
    if n > 0 {
        metrics::counter!(names::EVENTS_DELIVERED).increment(n as u64);
    }
}

/// The `reason` label of `zocket_closes_total`.
fn close_label(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::ClientClosed(_) => "client_closed",
        CloseReason::TransportError(_) => "transport_error",
        CloseReason::HeartbeatTimeout => "heartbeat_timeout",
        CloseReason::SlowConsumer => "slow_consumer",
        CloseReason::ProtocolErrors => "protocol_errors",
        CloseReason::RateLimited => "rate_limited",
        CloseReason::MessageTooBig => "message_too_big",
        CloseReason::ServerShutdown => "server_shutdown",
        CloseReason::Closed { .. } => "closed",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::{CompositeKey, MetricKind};

    use super::*;
    use std::time::Duration;

    /// Every metric the recorder holds: (kind, name, labels) → value.
    fn read(recorder: &DebuggingRecorder) -> Vec<(MetricKind, String, Vec<String>, DebugValue)> {
        recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, value): (CompositeKey, _, _, _)| {
                let (kind, key) = ck.into_parts();
                let labels = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (kind, key.name().to_owned(), labels, value)
            })
            .collect()
    }

    fn counter(all: &[(MetricKind, String, Vec<String>, DebugValue)], labels: &[&str]) -> u64 {
        all.iter()
            .find_map(|(_, name, l, v)| match v {
                DebugValue::Counter(n) if name == names::MESSAGES_IN && l == labels => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    }

    fn samples(all: &[(MetricKind, String, Vec<String>, DebugValue)], labels: &[&str]) -> Vec<f64> {
        all.iter()
            .find_map(|(_, name, l, v)| match v {
                DebugValue::Histogram(s) if name == names::RPC_DURATION && l == labels => {
                    Some(s.iter().map(|x| x.into_inner()).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_poll_records_runs_of_routes_in_order_and_exactly() {
        static A: &str = "route.a";
        static B: &str = "route.b";
        let recorder = DebuggingRecorder::new();
        let stats = Stats::default();
        let t0 = Instant::now();
        let at = |micros| t0 + Duration::from_micros(micros);
        let done = |name, ok| RpcDone {
            name,
            ok,
            arrived: t0,
        };
        let mut forced = Vec::new();
        metrics::with_local_recorder(&recorder, || {
            let mut tally = Tally::default();
            for route in [Some(A), Some(A), Some(B), None, Some(A)] {
                tally.message_in(route);
            }
            tally.frames = 3;
            // Nothing answered yet: a reading records nothing.
            tally.settle(at(100));
            tally.rpc_done(done(A, true));
            tally.settle(at(1));
            tally.rpc_done(done(A, false));
            tally.settle(at(2));
            tally.rpc_done(done(B, true));
            tally.settle(at(3));
            // A long run of one route, outcome and arrival: one batch, ended by the
            // next reading.
            for _ in 0..20 {
                tally.rpc_done(done(A, true));
            }
            tally.settle(at(10));
            // Another arrival of the same route: the batch before it ends at once, by a
            // reading of the clock taken then (after `before`).
            let long_ago = RpcDone {
                arrived: t0 - Duration::from_secs(1),
                ..done(B, false)
            };
            tally.rpc_done(long_ago);
            let before = Instant::now();
            tally.rpc_done(done(B, false));
            forced.push(before.duration_since(long_ago.arrived));
            tally.settle(at(4));
            tally.publish(&stats);
            // Published once: a second publish adds nothing.
            tally.publish(&stats);
        });
        let all = read(&recorder);
        assert_eq!(counter(&all, &["type=route.a"]), 3);
        assert_eq!(counter(&all, &["type=route.b"]), 1);
        assert_eq!(counter(&all, &["type=unknown"]), 1);
        let secs = |micros: std::ops::Range<u64>| -> Vec<f64> {
            micros
                .map(|m| Duration::from_micros(m).as_secs_f64())
                .collect()
        };
        let mut a_ok = secs(1..2);
        a_ok.extend(std::iter::repeat_n(secs(10..11)[0], 20));
        assert_eq!(samples(&all, &["type=route.a", "outcome=ok"]), a_ok);
        assert_eq!(
            samples(&all, &["type=route.a", "outcome=error"]),
            secs(2..3)
        );
        assert_eq!(samples(&all, &["type=route.b", "outcome=ok"]), secs(3..4));
        let b_error = samples(&all, &["type=route.b", "outcome=error"]);
        assert_eq!(b_error.len(), 2, "{b_error:?}");
        assert!(b_error[0] >= forced[0].as_secs_f64(), "{b_error:?}");
        assert_eq!(b_error[1], secs(4..5)[0]);
        let snap = stats.snapshot();
        assert_eq!((snap.messages_in, snap.frames_queued), (5, 3));
    }
}
