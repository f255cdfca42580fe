//! The per-connection engine: a sans-IO state machine (`Connection`, crate-private) and
//! the thin async driver every adapter runs through [`crate::Accepted::serve`].
//!
//! The machine takes events in (a frame or transport error read, a handler that went
//! pending or finished, a batch flushed, the sink closed, a close asked for, shutdown,
//! and the time) and tells the driver what to do: whether to read, which frame to feed
//! to the sink next, when to flush, when to close the sink, when it is done. Time is
//! always an input (`handle_timeout(now)`, `poll_timeout()`, in the manner of
//! quinn-proto), so every rule below is tested in virtual time.
//!
//! One concept per file, each rule in exactly one place:
//!
//! - `ordering`: arrival-order dispatch and the in-flight limit;
//! - `outbound`: the queue shared with senders, the byte budget, own vs pushed frames
//!   ([`Outbound`]);
//! - `writer`: batching (up to 64 frames or 64 KiB fed, one flush), control frames owed,
//!   bytes released when a flush completes;
//! - `heartbeat`: pings, the pong deadline, a ping owed during a stuck write;
//! - `limits`: the protocol-error flood window and the message-rate token bucket
//!   ([`RateLimit`]);
//! - `close`: the closing sequence and what each close reason asks of it;
//! - `driver`: the async loop.
//!
//! # Backpressure and the byte budget
//!
//! Every frame waiting to be written, replies and control frames included, is charged
//! to the connection's budget ([`crate::ServerConfig::outbound_budget`], default 1 MiB)
//! until the flush that writes it completes. Frames caused by the connection's own
//! messages (replies, error frames, events its handlers send to itself) are never
//! dropped: when the budget is full the engine stops reading from that connection until
//! the writer drains, so TCP pushes back on a client that sends faster than it reads.
//! Only events pushed by others can make a connection a slow consumer (close 1013 by
//! default, see [`crate::SlowConsumerPolicy`]): when the pushed events waiting would
//! exceed the budget, or number [`crate::ServerConfig::outbound_queue`]. A single event is
//! always accepted when no pushed event is waiting, so an event larger than the budget
//! can still be delivered. Reading also pauses at the in-flight limit.
//!
//! Which frames are own needs no help from the sender: while the engine polls a
//! connection (its dispatcher and its handlers), a thread-local marks that connection as
//! the current one, and [`Outbound::push`] to the current connection is own. A push from
//! another connection's engine, from a spawned task or from a distributed hub's receiver
//! is pushed. The same mark lets the engine skip waking itself for frames it queues
//! during its own poll.
//!
//! # The engine's lane
//!
//! A message's answer (its RPC reply or error frame) does not go through the shared
//! queue: the message's future returns it, and the engine puts it in its own lane,
//! without a lock or an atomic, charged to a count of its own. The lane also holds the
//! frames last taken from the queue (all of them, in one lock), and is written before
//! anything that waits in the queue. Order is kept: an answer joins the lane only
//! while nothing waits in the queue (otherwise it joins the queue, behind what was
//! queued before it, e.g. the events its own handler sent), and the queue is taken
//! from only once the lane is empty. The server-wide counters of messages and queued
//! frames are added once per poll, before the frames that answer those messages are
//! written.
//!
//! # Pings
//!
//! A peer's ping is charged to the budget and answered by the transport
//! ([`PingReplies::Transport`], what tokio-tungstenite does inside its stream) or by the
//! engine ([`PingReplies::Engine`], set with [`crate::Accepted::ping_replies`]). Either
//! way a peer that pings and never reads fills the budget with pongs that cannot leave,
//! reading pauses, and the heartbeat drops it: memory stays bounded.
//!
//! # Closing
//!
//! Whatever the reason, the close frame is written (after the frames that must precede
//! it), then the engine keeps reading and discarding until the peer's close frame or the
//! close timeout, then closes the sink and drops the connection: see `close`.
//!
//! # One task, no hand-offs
//!
//! The driver is a single future: it reads, dispatches (polling each handler once on the
//! spot), polls waiting handlers and writes, all in the task of the connection. A reply
//! produced while reading is written by the same poll, coalesced with the other frames
//! of that poll into one flush; nothing wakes another task per message, and no lock is
//! held across an await. An idle connection holds no timer unless heartbeats are on,
//! no handler set unless a handler waits, an outbound queue of one slot, and once it
//! has made calls a lane of 4 to 16 slots (160 to 640 bytes; larger ones are freed).
//!
//! The limits and timings are the server's, shared by all its connections; each holds
//! only its own state. Measured (x86_64, `cargo test -p zocket-core -- --nocapture
//! size_of`): the machine is 240 bytes, the shared outbound state 184 bytes (one
//! allocation), the whole future `Accepted::serve` returns 584 bytes with the test
//! harness's channel transport (the transport's own state comes on top), plus one timer
//! (112 bytes, boxed) when heartbeats are on.

mod close;
pub(crate) mod driver;
mod heartbeat;
mod limits;
mod ordering;
mod outbound;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::context::CloseReason;
use crate::error::Reject;
use crate::protocol::TransportError;
use crate::protocol::{self, Text, WsFrame};
use crate::server::ServerConfig;
use crate::stats::inc;

pub(crate) use close::SINK_CLOSE_GRACE;
pub use limits::RateLimit;
pub use outbound::{FRAME_OVERHEAD, Outbound, Push};
#[cfg(test)]
use writer::MAX_BATCH_FRAMES;
pub use writer::PingReplies;

pub(crate) use outbound::{Budget, OwnScope};
use outbound::{Frames, Origin};

use close::{Closing, Policy};
use heartbeat::{PingTimer, Timing, Verdict};
use limits::{Flood, FloodWindow, Rate, RateLimiter};
use ordering::Ordering;
use writer::Writer;

/// Slots an empty lane keeps while the connection waits (16 slots: 640 bytes, what 16
/// pipelined calls need); a lane grown larger by a burst is freed.
const LANE_KEEP: usize = 16;

#[derive(Debug)]
enum Phase {
    Open,
    /// Shutdown began: no reading, in-flight handlers may finish until `until`.
    Draining {
        until: Instant,
    },
    Closing(Box<Closing>),
    Done(CloseReason),
}

/// What the machine needs from [`ServerConfig`], built once per server and shared by
/// all its connections (so that each connection holds only its own state).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_message_bytes: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) heartbeat: Option<Timing>,
    pub(crate) flood: Flood,
    pub(crate) rate: Option<Rate>,
    pub(crate) close_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
}

impl Settings {
    pub(crate) fn from_config(cfg: &ServerConfig) -> Self {
        Self {
            max_message_bytes: cfg.max_message_bytes,
            max_in_flight: cfg.max_in_flight,
            heartbeat: cfg
                .heartbeat
                .interval()
                .zip(cfg.heartbeat.timeout())
                .map(|(interval, timeout)| Timing { interval, timeout }),
            flood: Flood {
                max: cfg.protocol_errors.max,
                window: cfg.protocol_errors.window,
            },
            rate: cfg.message_rate.map(Rate::from),
            close_timeout: cfg.close_timeout,
            shutdown_grace: cfg.shutdown_grace,
        }
    }
}

/// The sans-IO state machine of one connection. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Connection {
    settings: Arc<Settings>,
    out: Outbound,
    ordering: Ordering,
    writer: Writer,
    heartbeat: Option<PingTimer>,
    flood: FloodWindow,
    rate: Option<RateLimiter>,
    phase: Phase,
    /// Reading is paused for the budget (counted once per pause).
    budget_paused: bool,
    /// The engine's lane: frames taken from the outbound queue in one lock, and the
    /// answers the engine queued itself ([`Origin::Local`]), in order, not yet fed to
    /// the sink. Everything in it goes before what waits in the queue: an answer joins
    /// the lane only while nothing waits there, and the queue is taken from only once
    /// the lane is empty.
    lane: Frames,
    /// Bytes charged for the lane's [`Origin::Local`] frames, queued or being written.
    lane_charged: usize,
}

impl Connection {
    pub(crate) fn new(
        out: Outbound,
        settings: Arc<Settings>,
        replies: PingReplies,
        now: Instant,
    ) -> Self {
        Self {
            ordering: Ordering::new(settings.max_in_flight),
            writer: Writer::new(replies),
            heartbeat: settings.heartbeat.map(|t| PingTimer::new(t, now)),
            flood: FloodWindow::new(now),
            rate: settings.rate.map(|_| RateLimiter::new(now)),
            phase: Phase::Open,
            budget_paused: false,
            lane: Frames::new(),
            lane_charged: 0,
            settings,
            out,
        }
    }

    /// The outbound queue.
    pub(crate) fn outbound(&self) -> &Outbound {
        &self.out
    }

    // ---- reading ----

    /// Whether the driver should read from the stream now.
    pub(crate) fn wants_read(&mut self) -> bool {
        match &self.phase {
            Phase::Open => {
                let full = self.is_full();
                if full && !self.budget_paused {
                    self.budget_paused = true;
                    self.paused_for_budget();
                } else if !full {
                    self.budget_paused = false;
                }
                let read = !full && self.ordering.has_room();
                if !read {
                    if let Some(hb) = &mut self.heartbeat {
                        hb.on_read_paused();
                    }
                }
                read
            }
            Phase::Draining { .. } | Phase::Done(_) => false,
            Phase::Closing(c) => c.wants_read(),
        }
    }

    /// Reading pauses for the budget: counted and logged (out of line: the common path
    /// does not run it).
    #[cold]
    #[inline(never)]
    fn paused_for_budget(&self) {
        inc(&self.out.shared.stats.read_pauses);
        tracing::debug!(
            charged = self.charged(),
            budget = self.out.shared.budget(),
            "outbound budget full: reading paused until the writer drains"
        );
    }

    /// An item read from the stream (`None`: the stream ended). Returns a text frame to
    /// dispatch.
    pub(crate) fn on_read(
        &mut self,
        now: Instant,
        item: Option<Result<WsFrame, TransportError>>,
    ) -> Option<Text> {
        if let Phase::Closing(c) = &mut self.phase {
            match item {
                None => c.on_end(),
                Some(Ok(WsFrame::Close(_))) => c.on_peer_close(),
                Some(Err(e)) => c.on_error(e == TransportError::MessageTooBig),
                Some(Ok(_)) => {}
            }
            return None;
        }
        if matches!(self.phase, Phase::Done(_)) {
            return None;
        }
        let draining = matches!(self.phase, Phase::Draining { .. });
        if let (Some(hb), Some(Ok(WsFrame::Text(_) | WsFrame::Binary(_) | WsFrame::Pong(_)))) =
            (&mut self.heartbeat, &item)
        {
            // Pings do not count: a peer that pings and never reads is not answering.
            hb.on_frame();
        }
        match item {
            None => self.close(
                now,
                CloseReason::TransportError("connection ended without a close frame".into()),
            ),
            Some(Err(TransportError::MessageTooBig)) => self.too_big(now),
            Some(Err(e)) => self.close(now, CloseReason::TransportError(e.to_string())),
            Some(Ok(WsFrame::Close(frame))) => {
                self.close(now, CloseReason::ClientClosed(frame.map(|f| f.code)))
            }
            Some(Ok(WsFrame::Ping(payload))) => self.writer.on_ping(payload, &self.out.shared),
            Some(Ok(WsFrame::Pong(_))) => {}
            // Shutting down: messages are no longer taken.
            Some(Ok(WsFrame::Text(_) | WsFrame::Binary(_))) if draining => {}
            Some(Ok(WsFrame::Text(text))) => {
                if !self.within_rate(now) {
                    return None;
                }
                if text.len() > self.settings.max_message_bytes {
                    self.too_big(now);
                    return None;
                }
                return Some(text);
            }
            Some(Ok(WsFrame::Binary(_))) => {
                if self.within_rate(now) {
                    self.out.push_own(protocol::encode_error(
                        None,
                        &Reject::bad_request("binary frames are not supported"),
                    ));
                    inc(&self.out.shared.stats.protocol_errors);
                    self.on_protocol_errors(now, 1);
                }
            }
        }
        None
    }

    fn within_rate(&mut self, now: Instant) -> bool {
        let (Some(limiter), Some(rate)) = (&mut self.rate, self.settings.rate) else {
            return true;
        };
        if limiter.allow(rate, now) {
            return true;
        }
        inc(&self.out.shared.stats.rate_limit_closes);
        tracing::warn!("message rate over the limit: closing (1008 rate limit)");
        self.close(now, CloseReason::RateLimited);
        false
    }

    fn too_big(&mut self, now: Instant) {
        inc(&self.out.shared.stats.oversize_closes);
        tracing::warn!("message over the size limit: closing (1009)");
        self.close(now, CloseReason::MessageTooBig);
    }

    /// `n` protocol errors were answered (by the dispatcher or a handler).
    pub(crate) fn on_protocol_errors(&mut self, now: Instant, n: u32) {
        if n == 0 || !self.runs_handlers() {
            return;
        }
        if self.flood.record(self.settings.flood, now, n) {
            inc(&self.out.shared.stats.flood_closes);
            tracing::warn!("too many protocol errors: closing (1008)");
            self.close(now, CloseReason::ProtocolErrors);
        }
    }

    // ---- handlers ----

    /// Whether handlers run (open, or shutting down with handlers in flight). When not,
    /// the driver drops the handlers still in flight.
    pub(crate) fn runs_handlers(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Draining { .. })
    }

    /// A handler went pending after its first poll.
    pub(crate) fn on_handler_started(&mut self) {
        self.ordering.started();
    }

    /// A pending handler completed.
    pub(crate) fn on_handler_finished(&mut self, now: Instant) {
        self.ordering.finished();
        if matches!(self.phase, Phase::Draining { .. }) && self.ordering.in_flight() == 0 {
            self.close(now, CloseReason::ServerShutdown);
        }
    }

    // ---- close and time ----

    /// Server shutdown began: stop reading, let in-flight handlers finish (up to the
    /// grace), then close with 1001.
    pub(crate) fn begin_shutdown(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        if self.ordering.in_flight() == 0 {
            self.close(now, CloseReason::ServerShutdown);
        } else {
            self.phase = Phase::Draining {
                until: now + self.settings.shutdown_grace,
            };
        }
    }

    /// Close for `reason`, unless closing already (the first reason wins).
    pub(crate) fn close(&mut self, now: Instant, reason: CloseReason) {
        if !self.runs_handlers() {
            return;
        }
        let abandoned = self.ordering.abandon();
        if abandoned > 0 {
            tracing::debug!(abandoned, "closing: handlers still in flight are dropped");
        }
        let policy = Policy::of(&reason);
        let local = self
            .out
            .shared
            .close_queue(!policy.write_queued, &mut self.lane);
        self.lane_charged = self.lane_charged.saturating_sub(local);
        tracing::debug!(?reason, "closing");
        self.phase = if policy.graceful {
            Phase::Closing(Box::new(Closing::new(
                reason,
                policy.write_queued,
                now + self.settings.close_timeout,
            )))
        } else {
            Phase::Done(reason)
        };
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let hb = self.heartbeat.as_ref().map(PingTimer::poll_timeout);
        match &self.phase {
            Phase::Open => hb,
            Phase::Draining { until } => Some(hb.map_or(*until, |h| h.min(*until))),
            Phase::Closing(c) => Some(c.deadline),
            Phase::Done(_) => None,
        }
    }

    /// Time passes.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.runs_handlers() {
            let busy =
                self.writer.is_busy() || !self.lane.is_empty() || self.out.shared.has_frames();
            if let (Some(hb), Some(t)) = (&mut self.heartbeat, self.settings.heartbeat) {
                if hb.handle_timeout(t, now, busy) == Verdict::Dead {
                    inc(&self.out.shared.stats.heartbeat_timeouts);
                    tracing::info!("no pong within the heartbeat timeout: dropping the connection");
                    self.close(now, CloseReason::HeartbeatTimeout);
                    return;
                }
            }
        }
        match &mut self.phase {
            Phase::Draining { until } if now >= *until => {
                tracing::warn!(
                    in_flight = self.ordering.in_flight(),
                    "shutdown grace passed; abandoning in-flight handlers"
                );
                self.close(now, CloseReason::ServerShutdown);
            }
            Phase::Closing(c) => {
                let first = !c.timed_out;
                if c.on_timeout(now) {
                    let reason = c.reason.clone();
                    self.phase = Phase::Done(reason);
                } else if first && c.timed_out {
                    inc(&self.out.shared.stats.close_timeouts);
                    tracing::debug!(
                        "close timeout: closing the sink without the peer's close frame"
                    );
                }
            }
            _ => {}
        }
    }

    // ---- writing ----

    /// The next frame to feed to the sink, or `None` (then flush if
    /// [`wants_flush`](Self::wants_flush)).
    pub(crate) fn poll_transmit(&mut self) -> Option<WsFrame> {
        if !self.writer.can_feed() {
            return None;
        }
        match &mut self.phase {
            Phase::Open | Phase::Draining { .. } => {
                if let Some(pong) = self.writer.take_pong() {
                    return Some(WsFrame::Pong(pong));
                }
                if self.heartbeat.as_mut().is_some_and(PingTimer::take_ping) {
                    self.writer.add_ping(&self.out.shared);
                    return Some(WsFrame::Ping(Bytes::new()));
                }
                let (frame, origin) = take_frame(&mut self.lane, &self.out.shared)?;
                self.writer.add(frame.len(), origin);
                Some(WsFrame::Text(frame))
            }
            Phase::Closing(c) => {
                if c.frame_written || c.timed_out {
                    return None;
                }
                if c.write_queued && !c.peer_closed {
                    if let Some((frame, origin)) = take_frame(&mut self.lane, &self.out.shared) {
                        self.writer.add(frame.len(), origin);
                        return Some(WsFrame::Text(frame));
                    }
                }
                c.frame_written = true;
                self.writer.add_uncharged();
                Some(WsFrame::Close(Some(c.frame())))
            }
            Phase::Done(_) => None,
        }
    }

    /// Whether a flush is due (after [`poll_transmit`](Self::poll_transmit) returned `None`).
    pub(crate) fn wants_flush(&self) -> bool {
        !matches!(self.phase, Phase::Done(_)) && self.writer.wants_flush()
    }

    /// Whether a flush is in progress (poll it to completion before feeding more).
    pub(crate) fn is_flushing(&self) -> bool {
        self.writer.is_flushing()
    }

    /// The driver starts flushing.
    pub(crate) fn on_flush_start(&mut self) {
        self.writer.flush_started();
    }

    /// The flush completed at `now`.
    pub(crate) fn on_flushed(&mut self, now: Instant) {
        let local = self.writer.flushed(&self.out.shared);
        self.lane_charged = self.lane_charged.saturating_sub(local);
        match &mut self.phase {
            Phase::Open | Phase::Draining { .. } => {
                if let (Some(hb), Some(t)) = (&mut self.heartbeat, self.settings.heartbeat) {
                    hb.on_flushed(t, now);
                }
            }
            Phase::Closing(c) => c.frame_flushed = c.frame_written,
            Phase::Done(_) => {}
        }
    }

    /// Writing failed: the connection cannot say anything more.
    pub(crate) fn on_write_error(&mut self, now: Instant, error: String) {
        match &self.phase {
            Phase::Open | Phase::Draining { .. } => {
                self.close(now, CloseReason::TransportError(error))
            }
            Phase::Closing(c) if c.peer_closed => {
                // The transport answered the peer's close itself (tokio-tungstenite
                // does): only the sink is left to close.
                tracing::trace!(%error, "write after the peer's close refused");
                if let Phase::Closing(c) = &mut self.phase {
                    c.frame_written = true;
                    c.frame_flushed = true;
                }
            }
            Phase::Closing(c) => {
                tracing::debug!(%error, "write failed while closing");
                self.phase = Phase::Done(c.reason.clone());
            }
            Phase::Done(_) => {}
        }
    }

    /// Whether the driver should close the sink now.
    pub(crate) fn wants_sink_close(&self) -> bool {
        matches!(&self.phase, Phase::Closing(c) if c.wants_sink_close() && !self.writer.is_flushing())
    }

    /// The sink is closed (or closing it failed): the connection is done.
    pub(crate) fn on_sink_closed(&mut self) {
        if let Phase::Closing(c) = &self.phase {
            self.phase = Phase::Done(c.reason.clone());
        }
    }

    // ---- the engine's answers ----

    /// Queue an answer to one of the connection's own messages (a reply, an error
    /// frame): own, so never refused for the budget. It joins the lane, without the
    /// queue's lock, and counts a frame queued in `frames`, unless frames wait in the
    /// queue (those were queued before it and go first, so it joins them there) or the
    /// connection is closing (the queue, closed then, drops and counts it as every
    /// push it refuses).
    pub(crate) fn push_answer(&mut self, frame: Text, frames: &mut u64) {
        if !self.runs_handlers() || self.out.shared.has_frames() {
            self.out.push_own(frame);
            return;
        }
        self.lane_charged += outbound::cost(frame.len());
        self.lane.push_back((frame, Origin::Local));
        *frames += 1;
    }

    /// The engine waits for the peer or the clock: an empty lane keeps a small buffer
    /// for the next answers (no allocation per call), a larger one (after a burst) is
    /// freed.
    pub(crate) fn trim(&mut self) {
        if self.lane.is_empty() && self.lane.capacity() > LANE_KEEP {
            self.lane = Frames::new();
        }
    }

    /// Every byte charged to the budget: the queue's and the lane's answers.
    fn charged(&self) -> usize {
        self.out.shared.charged() + self.lane_charged
    }

    /// Whether the charged bytes fill the budget (reading pauses).
    fn is_full(&self) -> bool {
        self.charged() >= self.out.shared.budget()
    }

    /// Whether the connection has ended.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    /// Why it ended or is ending.
    pub(crate) fn reason(&self) -> Option<&CloseReason> {
        match &self.phase {
            Phase::Closing(c) => Some(&c.reason),
            Phase::Done(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

/// The next frame to write: from the lane, else from the queue, whose waiting frames
/// join the lane in one lock.
fn take_frame(lane: &mut Frames, shared: &outbound::Shared) -> Option<(Text, Origin)> {
    if let Some(frame) = lane.pop_front() {
        return Some(frame);
    }
    if !shared.has_frames() {
        // A push racing with this wakes the engine (the queue was empty).
        return None;
    }
    shared.take_all(lane);
    lane.pop_front()
}
