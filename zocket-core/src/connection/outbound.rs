//! The outbound queue of one connection and its byte budget, shared between the
//! connection's engine (which writes it to the socket) and everybody who sends to the
//! connection (its own handlers, other connections' handlers, [`crate::ServerHandle`]).
//!
//! Every frame waiting to be written is *charged* to the budget
//! ([`crate::ServerConfig::outbound_budget`]): its length plus [`FRAME_OVERHEAD`], from the
//! moment it is queued until the flush that wrote it completes. Control frames (pings,
//! pongs) are charged the same way by the engine. Two kinds of frames are told apart:
//!
//! - **own** frames, caused by the connection's own messages: RPC replies, `__error` /
//!   `__rpc_err`, `__welcome`, and every event its own handlers send to itself (`reply_event`,
//!   `to(own id)`, a room or broadcast it is part of) while the engine polls them. They are
//!   never refused: when the budget is full the engine stops reading that connection
//!   until the writer drains, so TCP pushes back on the client.
//! - **pushed** events, sent by anybody else. When the pushed events already waiting
//!   (bytes, or frames: [`crate::ServerConfig::outbound_queue`]) would exceed the budget,
//!   the connection is a slow consumer: [`SlowConsumerPolicy`] applies (close 1013, or drop
//!   the event), counted in the stats and logged once per connection. A single event is
//!   always accepted when no pushed event is waiting, so an event larger than the budget
//!   can still be delivered.
//!
//! Which frames are own is known without any help from the sender: while the engine polls
//! a connection (its dispatcher and its handlers), a thread-local marks that
//! connection as the current one, and a push to the current connection is own. A push
//! from another connection's engine, from a spawned task or from a distributed hub's
//! receiver is pushed. The same mark lets the engine skip waking itself for frames it
//! queues during its own poll.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::task::AtomicWaker;

use crate::context::CloseReason;
use crate::ids::ClientId;
use crate::protocol::Text;
use crate::server::SlowConsumerPolicy;
use crate::stats::{Dropped, Stats, inc};

/// Bytes charged per queued frame on top of its length: the queue slot and the shared
/// buffer's header, so that many tiny frames are bounded as well as a few large ones.
pub const FRAME_OVERHEAD: usize = 48;

/// Queue slots kept once the queue is empty again; a larger queue is freed.
const SHRINK_ABOVE: usize = 64;

/// Whether a queued frame was caused by the connection's own messages, and where it is
/// charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Caused by the connection's own calls: never refused (backpressure instead).
    Own,
    /// Pushed by others: subject to the slow-consumer policy.
    Pushed,
    /// An answer the engine queued itself (an RPC's reply or error frame), straight into
    /// its lane, without the queue's lock: own, and charged to the engine's own count
    /// rather than to the shared one.
    Local,
}

/// The bytes charged for a frame of `len` bytes.
pub(crate) fn cost(len: usize) -> usize {
    len + FRAME_OVERHEAD
}

/// Frames in order, each with its origin.
pub(crate) type Frames = VecDeque<(Text, Origin)>;

#[derive(Debug, Default)]
struct Queue {
    /// Frames not yet handed to the writer. No capacity is reserved up front.
    frames: Frames,
    /// Bytes of pushed events queued or being written.
    pushed_bytes: usize,
    /// Pushed events queued or being written.
    pushed_frames: usize,
    /// The connection is closing: pushes are refused.
    closed: bool,
    /// A close asked for from outside the engine (slow consumer, disconnect).
    close_request: Option<CloseReason>,
    /// The slow-consumer warning was logged for this connection.
    warned: bool,
}

/// The state shared by a connection's engine and its senders.
#[derive(Debug)]
pub(crate) struct Shared {
    id: ClientId,
    queue: Mutex<Queue>,
    /// Every byte charged: queued frames, frames being written, control frames owed.
    /// Updated while `queue` is locked or by the engine alone; read without the lock.
    charged: AtomicUsize,
    /// Frames in `queue`, written while it is locked: the engine looks here before
    /// locking for a frame (it asks after every batch, mostly in vain).
    waiting: AtomicUsize,
    /// A close request is set in `queue` (written while it is locked), likewise.
    close_asked: AtomicBool,
    /// Wakes the engine when a frame or a close request arrives from outside.
    waker: AtomicWaker,
    budget: usize,
    max_pushed_frames: usize,
    policy: SlowConsumerPolicy,
    pub(crate) stats: Arc<Stats>,
}

thread_local! {
    /// The connection whose engine is polling on this thread right now.
    static CURRENT: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
}

/// While alive, marks `out`'s connection as the one being polled on this thread: its
/// pushes to itself are own, and need no wake-up.
pub(crate) struct OwnScope {
    prev: *const Shared,
}

impl OwnScope {
    pub(crate) fn enter(out: &Outbound) -> Self {
        let ptr = Arc::as_ptr(&out.shared);
        Self {
            prev: CURRENT.with(|c| c.replace(ptr)),
        }
    }
}

impl Drop for OwnScope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

fn is_current(shared: &Shared) -> bool {
    CURRENT.with(|c| std::ptr::eq(c.get(), shared))
}

/// One connection's outbound queue, as the [`Hub`](crate::hub::Hub) and handlers hold it: queue
/// frames with [`push`](Self::push), ask for a close with [`close`](Self::close). Cheap
/// to clone (one reference count).
#[derive(Debug, Clone)]
pub struct Outbound {
    pub(crate) shared: Arc<Shared>,
}

/// The result of [`Outbound::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is queued.
    Queued,
    /// The connection is a slow consumer: the event was dropped (and, by default policy,
    /// the connection is being closed with 1013).
    Full,
    /// The connection is closing or gone.
    Closed,
}

/// Limits of one outbound queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Bytes (see [`cost`]) that may wait to be written.
    pub(crate) bytes: usize,
    /// Pushed events that may wait.
    pub(crate) pushed_frames: usize,
    /// What to do with a slow consumer.
    pub(crate) policy: SlowConsumerPolicy,
}

impl Outbound {
    pub(crate) fn new(id: ClientId, budget: Budget, stats: Arc<Stats>) -> Self {
        Self {
            shared: Arc::new(Shared {
                id,
                queue: Mutex::new(Queue::default()),
                charged: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                close_asked: AtomicBool::new(false),
                waker: AtomicWaker::new(),
                budget: budget.bytes.max(1),
                max_pushed_frames: budget.pushed_frames.max(1),
                policy: budget.policy,
                stats,
            }),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &ClientId {
        &self.shared.id
    }

    /// Queue a frame without waiting. Called from the connection's own engine (its
    /// handlers) the frame is own and always queued; from anywhere else it is a pushed
    /// event, and a connection whose pushed events exceed the budget is a slow consumer
    /// (see [`crate::protocol`]). Every frame not queued is counted and logged.
    pub fn push(&self, frame: Text) -> Push {
        let origin = if is_current(&self.shared) {
            Origin::Own
        } else {
            Origin::Pushed
        };
        self.push_as(frame, origin)
    }

    /// Queue a frame of the connection's own (a reply, an error frame): never refused
    /// for the budget.
    pub(crate) fn push_own(&self, frame: Text) -> Push {
        self.push_as(frame, Origin::Own)
    }

    pub(crate) fn push_as(&self, frame: Text, origin: Origin) -> Push {
        let s = &*self.shared;
        let cost = cost(frame.len());
        let mut q = s.lock();
        if q.closed {
            drop(q);
            s.stats.frame_dropped(Dropped::Closed);
            tracing::debug!(client_id = %s.id, "frame for a closing connection dropped");
            return Push::Closed;
        }
        if origin == Origin::Pushed
            && q.pushed_frames > 0
            && (q.pushed_bytes + cost > s.budget || q.pushed_frames >= s.max_pushed_frames)
        {
            return self.slow_consumer(q);
        }
        let wake = q.frames.is_empty() && !is_current(s);
        if q.frames.capacity() == 0 {
            // One slot first (a `VecDeque` would take four): an idle connection keeps
            // the slot its `__welcome` took. A second frame waiting grows it as usual.
            q.frames.reserve_exact(1);
        }
        q.frames.push_back((frame, origin));
        s.waiting.store(q.frames.len(), Ordering::Relaxed);
        s.charged.fetch_add(cost, Ordering::Relaxed);
        if origin == Origin::Pushed {
            q.pushed_bytes += cost;
            q.pushed_frames += 1;
        }
        drop(q);
        s.stats.frame_queued();
        if wake {
            s.waker.wake();
        }
        Push::Queued
    }

    fn slow_consumer(&self, mut q: MutexGuard<'_, Queue>) -> Push {
        let s = &*self.shared;
        let first = !q.warned;
        q.warned = true;
        let close = s.policy == SlowConsumerPolicy::Close && q.close_request.is_none();
        if close {
            q.close_request = Some(CloseReason::SlowConsumer);
            s.close_asked.store(true, Ordering::Relaxed);
        }
        let (bytes, frames) = (q.pushed_bytes, q.pushed_frames);
        drop(q);
        s.stats.frame_dropped(Dropped::QueueFull);
        if close {
            inc(&s.stats.slow_consumer_closes);
            tracing::warn!(client_id = %s.id, waiting_bytes = bytes, waiting_events = frames, "outbound budget exceeded by pushed events: closing slow consumer (1013)");
            s.waker.wake();
        } else if first {
            tracing::warn!(client_id = %s.id, waiting_bytes = bytes, waiting_events = frames, "outbound budget exceeded by pushed events: dropping events (logged once per connection, all counted)");
        }
        Push::Full
    }

    /// Ask the connection to close with the given reason (the first reason wins). It
    /// runs its closing sequence: see [`crate::protocol`].
    pub fn close(&self, reason: CloseReason) {
        let s = &*self.shared;
        let mut q = s.lock();
        if q.closed || q.close_request.is_some() {
            return;
        }
        q.close_request = Some(reason);
        s.close_asked.store(true, Ordering::Relaxed);
        drop(q);
        s.waker.wake();
    }
}

/// The engine's side of the queue.
impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register the engine's waker (at the start of every poll).
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Bytes charged now.
    pub(crate) fn charged(&self) -> usize {
        self.charged.load(Ordering::Relaxed)
    }

    /// The budget in bytes.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// Whether the bytes charged here fill the budget (the engine adds its lane's: see
    /// `Connection::is_full`).
    #[cfg(test)]
    pub(crate) fn is_full(&self) -> bool {
        self.charged() >= self.budget
    }

    /// Charge a control frame the engine owes.
    pub(crate) fn charge(&self, bytes: usize) {
        self.charged.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Move every waiting frame into the engine's empty `batch` (its lane), in one
    /// lock: they stay charged until [`release`](Self::release), and the engine writes
    /// them in order before it takes more. The engine asks only when frames wait (it
    /// keeps its lane's buffer itself, see `Connection::trim`); asked with nothing
    /// waiting, the batch's buffer goes back to the queue (or is freed).
    pub(crate) fn take_all(&self, batch: &mut Frames) {
        debug_assert!(batch.is_empty());
        if self.waiting.load(Ordering::Relaxed) == 0 && batch.capacity() == 0 {
            // A push racing with this wakes the engine (the queue was empty).
            return;
        }
        let mut q = self.lock();
        if q.frames.is_empty() && q.frames.capacity() >= batch.capacity() {
            *batch = Frames::new();
            return;
        }
        std::mem::swap(&mut q.frames, batch);
        self.waiting.store(0, Ordering::Relaxed);
        if q.frames.capacity() > SHRINK_ABOVE {
            // A burst grew the queue: an idle connection does not keep its slots.
            q.frames = VecDeque::new();
        }
    }

    /// Whether frames are waiting.
    pub(crate) fn has_frames(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// A flush completed: these bytes (of which `pushed` bytes in `pushed_frames`
    /// pushed events) have left.
    pub(crate) fn release(&self, bytes: usize, pushed: usize, pushed_frames: u32) {
        if pushed_frames > 0 {
            let mut q = self.lock();
            q.pushed_bytes = q.pushed_bytes.saturating_sub(pushed);
            q.pushed_frames = q.pushed_frames.saturating_sub(pushed_frames as usize);
        }
        self.uncharge(bytes);
    }

    fn uncharge(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        // Never below zero, even if the engine's accounting were off by a frame.
        let _ = self
            .charged
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(bytes))
            });
    }

    /// A close asked for from outside, if any (taken once).
    pub(crate) fn take_close_request(&self) -> Option<CloseReason> {
        if !self.close_asked.load(Ordering::Relaxed) {
            // A request racing with this wakes the engine.
            return None;
        }
        let mut q = self.lock();
        self.close_asked.store(false, Ordering::Relaxed);
        if q.closed {
            return None;
        }
        q.close_request.take()
    }

    /// The connection is closing: refuse every further push; with `discard`, also drop
    /// what is still queued, and the engine's `lane` not yet written (counted as
    /// dropped). Returns the bytes of the discarded [`Origin::Local`] frames (charged to
    /// the engine's count, not to this one).
    pub(crate) fn close_queue(&self, discard: bool, lane: &mut Frames) -> usize {
        let mut q = self.lock();
        q.closed = true;
        q.close_request = None;
        self.close_asked.store(false, Ordering::Relaxed);
        if !discard {
            return 0;
        }
        let mut frames = std::mem::take(lane);
        frames.append(&mut q.frames);
        q.frames = VecDeque::new();
        self.waiting.store(0, Ordering::Relaxed);
        let (mut bytes, mut local) = (0, 0);
        for (frame, origin) in &frames {
            let c = cost(frame.len());
            match origin {
                Origin::Local => local += c,
                Origin::Own => bytes += c,
                Origin::Pushed => {
                    bytes += c;
                    q.pushed_bytes = q.pushed_bytes.saturating_sub(c);
                    q.pushed_frames = q.pushed_frames.saturating_sub(1);
                }
            }
        }
        drop(q);
        self.uncharge(bytes);
        if !frames.is_empty() {
            self.stats
                .frames_dropped(Dropped::Closed, frames.len() as u64);
        }
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(bytes: usize, frames: usize, policy: SlowConsumerPolicy) -> Outbound {
        Outbound::new(
            ClientId::from("c"),
            Budget {
                bytes,
                pushed_frames: frames,
                policy,
            },
            Arc::new(Stats::default()),
        )
    }

    fn text(n: usize) -> Text {
        Text::from("x".repeat(n))
    }

    /// What the engine would take to write now.
    fn taken(o: &Outbound) -> Frames {
        let mut batch = Frames::new();
        o.shared.take_all(&mut batch);
        batch
    }

    #[test]
    fn batches_keep_the_order_and_an_idle_connection_keeps_no_batch_buffer() {
        let o = out(1 << 20, 1000, SlowConsumerPolicy::Close);
        let _scope = OwnScope::enter(&o);
        for i in 0..10 {
            o.push(Text::from(i.to_string()));
        }
        let mut batch = Frames::new();
        o.shared.take_all(&mut batch);
        assert_eq!(batch.len(), 10);
        assert!(!o.shared.has_frames());
        // Arrives while the batch is being written: comes after it.
        o.push(Text::from("10"));
        let mut order: Vec<String> = batch.drain(..).map(|(t, _)| t.to_string()).collect();
        o.shared.take_all(&mut batch);
        order.extend(batch.drain(..).map(|(t, _)| t.to_string()));
        assert_eq!(order, (0..=10).map(|i| i.to_string()).collect::<Vec<_>>());
        // Nothing waits: the batch's buffer is given back (or freed), not kept twice.
        o.shared.take_all(&mut batch);
        assert_eq!(batch.capacity(), 0);
        assert_eq!(o.shared.charged(), 10 * cost(1) + cost(2));
    }

    #[test]
    fn a_discarding_close_drops_the_batch_too_and_counts_it() {
        let o = out(1 << 20, 1000, SlowConsumerPolicy::Close);
        for _ in 0..3 {
            assert_eq!(o.push(text(10)), Push::Queued);
        }
        let mut batch = Frames::new();
        o.shared.take_all(&mut batch);
        assert_eq!(o.push(text(10)), Push::Queued);
        o.shared.close_queue(true, &mut batch);
        assert!(batch.is_empty());
        assert_eq!(o.shared.charged(), 0);
        assert_eq!(o.shared.stats.frames_dropped.load(Ordering::Relaxed), 4);
        assert_eq!(o.push(text(10)), Push::Closed);
    }

    #[test]
    fn own_frames_are_never_refused_and_fill_the_budget() {
        let o = out(1000, 4, SlowConsumerPolicy::Close);
        let _scope = OwnScope::enter(&o);
        for _ in 0..100 {
            assert_eq!(o.push(text(100)), Push::Queued);
        }
        assert!(o.shared.is_full());
        assert_eq!(o.shared.charged(), 100 * cost(100));
        assert!(o.shared.take_close_request().is_none());
    }

    #[test]
    fn pushed_events_over_the_budget_request_1013_once() {
        let o = out(1000, 100, SlowConsumerPolicy::Close);
        // The first is always accepted, even if larger than the budget.
        assert_eq!(o.push(text(2000)), Push::Queued);
        assert_eq!(o.push(text(10)), Push::Full);
        assert_eq!(o.push(text(10)), Push::Full);
        assert_eq!(
            o.shared.stats.slow_consumer_closes.load(Ordering::Relaxed),
            1
        );
        assert_eq!(o.shared.stats.frames_dropped.load(Ordering::Relaxed), 2);
        assert_eq!(
            o.shared.take_close_request(),
            Some(CloseReason::SlowConsumer)
        );
    }

    #[test]
    fn pushed_frame_count_is_bounded_too() {
        let o = out(1 << 20, 3, SlowConsumerPolicy::DropFrame);
        for _ in 0..3 {
            assert_eq!(o.push(text(1)), Push::Queued);
        }
        assert_eq!(o.push(text(1)), Push::Full);
        assert!(
            o.shared.take_close_request().is_none(),
            "DropFrame keeps it"
        );
        // Written and flushed: room again.
        let mut bytes = 0;
        let mut pushed = 0;
        for (f, origin) in taken(&o) {
            assert_eq!(origin, Origin::Pushed);
            bytes += cost(f.len());
            pushed += 1;
        }
        o.shared.release(bytes, bytes, pushed);
        assert_eq!(o.shared.charged(), 0);
        assert_eq!(o.push(text(1)), Push::Queued);
    }

    #[test]
    fn own_frames_do_not_make_room_for_pushed_ones_scarce() {
        // A client busy with its own pipelined calls is not a slow consumer.
        let o = out(1000, 100, SlowConsumerPolicy::Close);
        {
            let _scope = OwnScope::enter(&o);
            for _ in 0..50 {
                o.push(text(100));
            }
        }
        assert_eq!(o.push(text(100)), Push::Queued);
        assert_eq!(o.push(text(100)), Push::Queued);
        assert!(o.shared.take_close_request().is_none());
    }

    #[test]
    fn a_queue_grown_by_a_burst_is_freed_when_empty() {
        let o = out(1 << 20, 10_000, SlowConsumerPolicy::Close);
        for _ in 0..1000 {
            o.push(text(1));
        }
        assert_eq!(taken(&o).len(), 1000);
        assert_eq!(o.shared.lock().frames.capacity(), 0);
    }

    #[test]
    fn closing_refuses_and_discards() {
        let o = out(1000, 100, SlowConsumerPolicy::Close);
        o.push(text(10));
        o.push(text(10));
        o.shared.close_queue(true, &mut VecDeque::new());
        assert_eq!(o.shared.charged(), 0);
        assert_eq!(o.push(text(10)), Push::Closed);
        assert!(taken(&o).is_empty());
        o.close(CloseReason::ServerShutdown);
        assert!(o.shared.take_close_request().is_none());
    }
}
