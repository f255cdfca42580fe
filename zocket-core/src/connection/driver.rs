//! The async driver: one future per connection that feeds the [`Connection`] machine
//! with what the stream, the sink, the handlers and the clock do, and carries out what
//! it asks. It is the whole connection's lifetime: registration, `__welcome`, the loop,
//! the disconnect hook (exactly once) and unregistration.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFuture;

use super::{Budget, Connection, Outbound, OwnScope, PingReplies};
use crate::context::CloseReason;
use crate::context::{Context, Disconnect, DisconnectInfo};
use crate::cx::{Conn, Cx};
use crate::ids::ClientId;
use crate::protocol::TransportError;
use crate::protocol::{self, Text, WsFrame};
use crate::router::{Answer, Dispatched, dispatch};
use crate::server::Server;
use crate::stats::{Tally, inc};

/// Frames read in one poll before the driver yields to other tasks.
const READS_PER_POLL: u32 = 64;
/// Time one poll may spend reading and dispatching before the driver yields, so that
/// heavy messages do not starve the other connections of its worker (nor the timers and
/// the connections it just woke, which the scheduler runs on this worker next).
const SLICE: Duration = Duration::from_millis(2);
/// Messages dispatched between two readings of the clock against [`SLICE`].
const SLICE_CHECK_EVERY: u32 = 4;
/// Loop turns in one poll before the driver yields (a guard, never reached normally).
const TURNS_PER_POLL: u32 = 256;

/// Run one connection to its end; returns why it ended.
///
/// Everything the connection holds is built here, outside the future, and moved into
/// it once: an `async fn` would keep its arguments (the stream and the sink among them)
/// next to the driver that took them over, doubling their share of the future's size.
/// Registration and `__welcome` happen when the future is first polled.
pub(crate) fn serve<C, S, K>(
    server: Server<C>,
    ctx: C,
    id: ClientId,
    replies: PingReplies,
    stream: S,
    sink: K,
) -> impl Future<Output = CloseReason> + Send
where
    C: Context,
    S: Stream<Item = Result<WsFrame, TransportError>> + Send + Unpin,
    K: Sink<WsFrame> + Send + Unpin,
    K::Error: std::fmt::Display,
{
    let cfg = server.config();
    let out = Outbound::new(
        id.clone(),
        Budget {
            bytes: cfg.outbound_budget,
            pushed_frames: cfg.outbound_queue,
            policy: cfg.slow_consumer,
        },
        server.stats_ref().clone(),
    );
    let conn = Arc::new(Conn::new(
        id,
        out.clone(),
        server.hub_ref().clone(),
        server.stats_ref().clone(),
        crate::cx::HandlerLimits::from_config(cfg),
    ));
    let mut driver = Driver {
        machine: Connection::new(
            out,
            server.engine_settings().clone(),
            replies,
            Instant::now(),
        ),
        cx: Cx::new(Arc::new(ctx), server.state().clone(), conn),
        stream,
        sink,
        pending: None,
        in_flight: None,
        timer: None,
        shutdown_seen: false,
        shutdown_waker: None,
        server,
    };
    async move {
        let token = driver.server.shutdown_token().clone();
        let mut shutdown = std::pin::pin!(token.cancelled());
        let registered = driver.open();
        std::future::poll_fn(|task| driver.poll(task, shutdown.as_mut())).await;
        // Only what the hook needs lives on; the transport is dropped here.
        let (reason, cx) = driver.finish();
        // Boxed: allocated once, when the connection ends, rather than reserved in every
        // connection's future for its whole life.
        Box::pin(end(reason, cx, registered)).await
    }
}

/// A connection registered with the hub and counted as open. If its future is dropped
/// before it ended (the runtime shutting down, an adapter giving up on it), dropping this
/// unregisters it, so the hub keeps no dead queue and the count stays right; the
/// disconnect hook, being async, cannot run then.
struct Registered<C: Context> {
    server: Server<C>,
    id: ClientId,
    armed: bool,
}

impl<C: Context> Registered<C> {
    fn unregister(&mut self) {
        if std::mem::take(&mut self.armed) {
            self.server.hub_ref().unregister(&self.id);
            self.server.stats_ref().connection_unregistered();
        }
    }
}

impl<C: Context> Drop for Registered<C> {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!(
                "connection dropped before it ended: unregistered without the disconnect hook"
            );
            self.unregister();
        }
    }
}

/// The connection ended: the disconnect hook (exactly once, while its rooms are still
/// known), then unregistration.
async fn end<C: Context>(
    reason: CloseReason,
    cx: Cx<C, C::State>,
    mut registered: Registered<C>,
) -> CloseReason {
    let id = cx.conn().id.clone();
    let hub = registered.server.hub_ref();
    let rooms = hub.rooms_of(&id);
    tracing::debug!(?reason, rooms = %crate::redact::list(&rooms, 10, 64), "disconnected");
    let info = DisconnectInfo {
        client_id: id.clone(),
        rooms,
        reason: reason.clone(),
    };
    let server = registered.server.handle();
    cx.context()
        .disconnect(Disconnect {
            info: &info,
            state: registered.server.state(),
            server: &server,
        })
        .await;
    registered.unregister();
    registered.server.stats_ref().record_close(&reason);
    reason
}

type Handlers = FuturesUnordered<BoxFuture<'static, Answer>>;

struct Driver<C: Context, S, K> {
    machine: Connection,
    cx: Cx<C, C::State>,
    stream: S,
    sink: K,
    /// A frame taken from the machine while the sink was not ready (boxed: rare, and
    /// every connection's future would keep its room).
    pending: Option<Box<WsFrame>>,
    /// Handlers that waited; created when the first one does.
    in_flight: Option<Handlers>,
    /// The machine's next deadline; created when it first has one.
    timer: Option<Pin<Box<Sleep>>>,
    shutdown_seen: bool,
    /// The waker the shutdown future was last polled with: polling it takes the
    /// server-wide token's lock, so it is polled only to register a new waker; otherwise
    /// the server's flag is read.
    shutdown_waker: Option<Waker>,
    server: Server<C>,
}

impl<C, S, K> Driver<C, S, K>
where
    C: Context,
    S: Stream<Item = Result<WsFrame, TransportError>> + Unpin,
    K: Sink<WsFrame> + Unpin,
    K::Error: std::fmt::Display,
{
    /// The connection begins: registered with the hub, counted, welcomed.
    fn open(&mut self) -> Registered<C> {
        let conn = self.cx.conn();
        self.server.hub_ref().register(conn.out.clone());
        let stats = self.server.stats_ref();
        stats.connection_opened();
        tracing::debug!("connected");
        conn.push(protocol::encode_welcome(conn.id.as_str()));
        Registered {
            server: self.server.clone(),
            id: conn.id.clone(),
            armed: true,
        }
    }

    /// The connection ended: why, and what the disconnect hook needs; the rest (the
    /// transport first) is dropped.
    fn finish(self) -> (CloseReason, Cx<C, C::State>) {
        let reason = self
            .machine
            .reason()
            .cloned()
            .unwrap_or_else(|| CloseReason::TransportError("connection ended".into()));
        (reason, self.cx)
    }

    fn poll(
        &mut self,
        task: &mut TaskContext<'_>,
        shutdown: Pin<&mut WaitForCancellationFuture<'_>>,
    ) -> Poll<()> {
        // Everything this connection's handlers queue for themselves during this poll is
        // own (and needs no wake-up): see `outbound`.
        let _own = OwnScope::enter(self.machine.outbound());
        self.machine.outbound().shared.register(task.waker());
        let started = Instant::now();
        let mut tally = Tally::default();
        let done = self.turns(task, shutdown, started, &mut tally);
        tally.publish(self.server.stats_ref());
        if done.is_pending() {
            self.machine.trim();
        }
        done
    }

    /// The poll's loop: until nothing moves, the connection ends, or the poll's share
    /// of reads or turns is used up. `started` is the clock's reading when the poll
    /// began.
    ///
    /// The clock is read when a turn begins after one that ran code of the
    /// application (it read messages, or had handlers in flight) or found its timer due
    /// (the first turn takes `started`; a turn after one that only wrote keeps the
    /// reading), and every few messages in a long run of reads. What a turn read and
    /// answered is counted with the next reading (`Tally::settle`), taken after those
    /// answers were queued and before they are written. A reading costs as much as the
    /// rest of the engine's bookkeeping of one RPC.
    fn turns(
        &mut self,
        task: &mut TaskContext<'_>,
        mut shutdown: Pin<&mut WaitForCancellationFuture<'_>>,
        started: Instant,
        tally: &mut Tally,
    ) -> Poll<()> {
        let slice_end = started + SLICE;
        let mut reads = READS_PER_POLL;
        // Set once the stream returned pending in this poll: it holds this task's waker
        // then, and asking it again before a wake-up would only repeat the pending.
        let mut read_pending = false;
        let mut now = started;
        // The clock is to be read again before the next turn.
        let mut stale = false;
        for _ in 0..TURNS_PER_POLL {
            if std::mem::take(&mut stale) {
                now = Instant::now();
                tally.settle(now);
            }
            let mut progress = false;
            if !self.shutdown_seen && self.shutdown_due(task, shutdown.as_mut()) {
                self.shutdown_seen = true;
                self.machine.begin_shutdown(now);
                progress = true;
            }
            if let Some(reason) = self.machine.outbound().shared.take_close_request() {
                self.machine.close(now, reason);
                progress = true;
            }
            if self.machine.poll_timeout().is_some_and(|t| t <= now) {
                self.machine.handle_timeout(now);
            }
            // Handlers in flight may run (and take time) even when none finishes.
            stale |= self.in_flight.is_some();
            progress |= self.poll_handlers(task, now, tally);
            // Counted before the frames that answer them are written.
            tally.publish(self.server.stats_ref());
            progress |= self.poll_write(task, now);
            let read = self.poll_read(task, now, slice_end, &mut reads, &mut read_pending, tally);
            stale |= read;
            progress |= read;
            if self.machine.is_done() {
                return Poll::Ready(());
            }
            if reads == 0 {
                // Fair to the other connections: write what these reads produced, and
                // come back after the others.
                let now = Instant::now();
                tally.settle(now);
                tally.publish(self.server.stats_ref());
                self.poll_write(task, now);
                if self.machine.is_done() {
                    return Poll::Ready(());
                }
                task.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !progress {
                if !self.arm_timer(task) {
                    return Poll::Pending;
                }
                // Due by the timer, not yet by the reading this turn had.
                stale = true;
            }
        }
        task.waker().wake_by_ref();
        Poll::Pending
    }

    fn shutdown_due(
        &mut self,
        task: &mut TaskContext<'_>,
        shutdown: Pin<&mut WaitForCancellationFuture<'_>>,
    ) -> bool {
        if self.server.stopping() {
            return true;
        }
        let fresh = self
            .shutdown_waker
            .as_ref()
            .is_none_or(|w| !w.will_wake(task.waker()));
        if !fresh {
            return false;
        }
        self.shutdown_waker = Some(task.waker().clone());
        shutdown.poll(task).is_ready()
    }

    /// Poll the handlers that wait; returns whether any finished.
    fn poll_handlers(
        &mut self,
        task: &mut TaskContext<'_>,
        now: Instant,
        tally: &mut Tally,
    ) -> bool {
        if !self.machine.runs_handlers() {
            // Closing: the handlers still in flight are abandoned.
            self.in_flight = None;
            return false;
        }
        let mut progress = false;
        while let Some(set) = &mut self.in_flight {
            let Poll::Ready(Some(answer)) = set.poll_next_unpin(task) else {
                if set.is_empty() {
                    // An idle connection holds no handler set.
                    self.in_flight = None;
                }
                break;
            };
            // Queued before the machine hears of the end: the last handler of a
            // shutdown's grace ends the connection, after its answer.
            self.answer(answer, now, tally);
            self.machine.on_handler_finished(now);
            progress = true;
            if !self.machine.runs_handlers() {
                // The answer closed the connection (the flood limit): the others are
                // abandoned.
                self.in_flight = None;
            }
        }
        progress
    }

    /// Queue what a message answered, and count it.
    fn answer(&mut self, answer: Answer, now: Instant, tally: &mut Tally) {
        if let Some(frame) = answer.frame {
            self.machine.push_answer(frame, &mut tally.frames);
        }
        if let Some(done) = answer.rpc {
            tally.rpc_done(done);
        }
        let stats = self.server.stats_ref();
        if answer.panicked {
            inc(&stats.handler_panics);
        }
        if answer.protocol_error {
            inc(&stats.protocol_errors);
            self.machine.on_protocol_errors(now, 1);
        }
    }

    /// Dispatch one text frame: start its handler and poll it once on the spot.
    fn dispatch(
        &mut self,
        task: &mut TaskContext<'_>,
        text: &Text,
        now: Instant,
        tally: &mut Tally,
    ) {
        let handler_timeout = self.server.config().handler_timeout;
        let answer = match dispatch(
            self.server.router(),
            &self.cx,
            text.as_str(),
            now,
            handler_timeout,
            tally,
        ) {
            Dispatched::Answered(answer) => answer,
            Dispatched::Started(mut fut) => match fut.as_mut().poll(task) {
                Poll::Ready(answer) => answer,
                Poll::Pending => {
                    self.in_flight
                        .get_or_insert_with(FuturesUnordered::new)
                        .push(fut);
                    self.machine.on_handler_started();
                    return;
                }
            },
        };
        self.answer(answer, now, tally);
    }

    /// Read while the machine wants to; returns whether anything was read.
    /// Sets `reads` to 0 when the poll's time slice is used up.
    fn poll_read(
        &mut self,
        task: &mut TaskContext<'_>,
        now: Instant,
        slice_end: Instant,
        reads: &mut u32,
        pending: &mut bool,
        tally: &mut Tally,
    ) -> bool {
        let mut progress = false;
        while !*pending && *reads > 0 && self.machine.wants_read() {
            let Poll::Ready(item) = self.stream.poll_next_unpin(task) else {
                *pending = true;
                break;
            };
            *reads -= 1;
            progress = true;
            if let Some(text) = self.machine.on_read(now, item) {
                self.dispatch(task, &text, now, tally);
                // The clock is read every few messages only: most take microseconds.
                // The reading also ends the durations of the RPCs answered so far.
                if *reads % SLICE_CHECK_EVERY == 0 {
                    let t = Instant::now();
                    tally.settle(t);
                    if t >= slice_end {
                        *reads = 0;
                    }
                }
            }
        }
        progress
    }

    /// Feed, flush and close the sink as the machine asks; returns whether anything moved.
    fn poll_write(&mut self, task: &mut TaskContext<'_>, now: Instant) -> bool {
        let mut progress = false;
        loop {
            if self.machine.is_done() {
                return progress;
            }
            if self.machine.is_flushing() {
                match self.sink.poll_flush_unpin(task) {
                    Poll::Ready(Ok(())) => {
                        self.machine.on_flushed(now);
                        progress = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        self.machine.on_write_error(now, e.to_string());
                        return true;
                    }
                    Poll::Pending => return progress,
                }
            }
            let next = match self.pending.take() {
                Some(frame) => Some(*frame),
                None => self.machine.poll_transmit(),
            };
            if let Some(frame) = next {
                match self.sink.poll_ready_unpin(task) {
                    Poll::Ready(Ok(())) => {
                        if let Err(e) = self.sink.start_send_unpin(frame) {
                            self.machine.on_write_error(now, e.to_string());
                            return true;
                        }
                        progress = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        self.machine.on_write_error(now, e.to_string());
                        return true;
                    }
                    Poll::Pending => {
                        self.pending = Some(Box::new(frame));
                        return progress;
                    }
                }
            }
            if self.machine.wants_flush() {
                self.machine.on_flush_start();
                continue;
            }
            if self.machine.wants_sink_close() {
                return match self.sink.poll_close_unpin(task) {
                    Poll::Ready(result) => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "closing the sink failed");
                        }
                        self.machine.on_sink_closed();
                        true
                    }
                    Poll::Pending => progress,
                };
            }
            return progress;
        }
    }

    /// Arm the timer for the machine's next deadline; returns whether it is due already.
    fn arm_timer(&mut self, task: &mut TaskContext<'_>) -> bool {
        let Some(at) = self.machine.poll_timeout() else {
            self.timer = None;
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.as_mut().poll(task).is_ready()
    }
}
