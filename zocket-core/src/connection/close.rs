//! The closing sequence (RFC 6455 §7.1.1), the one place that decides how a connection
//! ends for each [`CloseReason`].
//!
//! | reason | frames still queued | close frame | then |
//! |---|---|---|---|
//! | 1001 shutdown, 1008 flood / rate limit, 1009 too big, a server-side disconnect | written first (the last RPC replies, the error frames that led to the close) | yes | read and discard until the peer's close frame or the close timeout |
//! | 1013 slow consumer | dropped (the peer is not reading them) | yes | the same |
//! | the peer's close | dropped | 1000, at once | nothing to wait for |
//! | heartbeat timeout, transport failure | dropped | no (nobody would read it) | drop at once |
//!
//! After that the sink is closed (adapters shut the TCP write side down then) and the
//! connection is dropped. The whole sequence is bounded by `close_timeout`; closing the
//! sink gets at most [`SINK_CLOSE_GRACE`] more. While draining, an oversize message is
//! discarded like any other (the transport's size limit still applies, so it is never
//! buffered whole), and so are a few transport errors, so that a peer that is still
//! sending when the server closes reads the close code instead of a TCP reset.

use std::time::Duration;

use tokio::time::Instant;

use crate::context::CloseReason;
use crate::protocol::CloseFrame;

/// How long closing the sink may take after the close timeout passed.
pub(crate) const SINK_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The longest reason a close frame holds (RFC 6455 §5.5: 125 bytes of payload, 2 of
/// them the code).
const MAX_REASON_BYTES: usize = 123;

/// Transport errors discarded while draining before the engine gives up reading.
const MAX_DRAIN_ERRORS: u8 = 8;

/// What a reason asks of the closing sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Write the frames still queued before the close frame.
    pub(crate) write_queued: bool,
    /// Send a close frame and run the sequence; `false`: drop at once.
    pub(crate) graceful: bool,
}

impl Policy {
    pub(crate) fn of(reason: &CloseReason) -> Self {
        match reason {
            CloseReason::HeartbeatTimeout | CloseReason::TransportError(_) => Self {
                write_queued: false,
                graceful: false,
            },
            CloseReason::ClientClosed(_) | CloseReason::SlowConsumer => Self {
                write_queued: false,
                graceful: true,
            },
            _ => Self {
                write_queued: true,
                graceful: true,
            },
        }
    }
}

/// Where a graceful close is.
#[derive(Debug)]
pub(crate) struct Closing {
    pub(crate) reason: CloseReason,
    pub(crate) write_queued: bool,
    /// When the sequence gives up waiting (then only the sink is closed).
    pub(crate) deadline: Instant,
    /// The close frame was handed to the sink.
    pub(crate) frame_written: bool,
    /// ... and the flush that carried it completed.
    pub(crate) frame_flushed: bool,
    /// The peer's close frame arrived.
    pub(crate) peer_closed: bool,
    /// Reading ended (the stream ended or kept failing).
    pub(crate) read_ended: bool,
    /// The close timeout passed: close the sink now, by [`SINK_CLOSE_GRACE`].
    pub(crate) timed_out: bool,
    drain_errors: u8,
}

/// What to do with an item read while closing.
impl Closing {
    pub(crate) fn new(reason: CloseReason, write_queued: bool, deadline: Instant) -> Self {
        let peer_closed = matches!(reason, CloseReason::ClientClosed(_));
        Self {
            reason,
            write_queued,
            deadline,
            frame_written: false,
            frame_flushed: false,
            peer_closed,
            read_ended: false,
            timed_out: false,
            drain_errors: 0,
        }
    }

    /// The close frame to send; the reason is cut to the 123 bytes a close frame holds.
    pub(crate) fn frame(&self) -> CloseFrame {
        let text = self.reason.text();
        let mut end = text.len().min(MAX_REASON_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        CloseFrame {
            code: self.reason.code().unwrap_or(1000),
            reason: text[..end].to_owned().into(),
        }
    }

    /// Whether to keep reading (and discarding).
    pub(crate) fn wants_read(&self) -> bool {
        !self.peer_closed && !self.read_ended && !self.timed_out
    }

    /// The peer's close frame arrived.
    pub(crate) fn on_peer_close(&mut self) {
        self.peer_closed = true;
    }

    /// The stream ended.
    pub(crate) fn on_end(&mut self) {
        self.read_ended = true;
    }

    /// A transport error while draining: an oversize message is discarded like any
    /// frame; other errors only a few times.
    pub(crate) fn on_error(&mut self, too_big: bool) {
        if too_big {
            return;
        }
        self.drain_errors += 1;
        if self.drain_errors >= MAX_DRAIN_ERRORS {
            self.read_ended = true;
        }
    }

    /// Whether the sink should be closed now.
    pub(crate) fn wants_sink_close(&self) -> bool {
        self.timed_out || (self.frame_flushed && !self.wants_read())
    }

    /// The close timeout passed at `now`: returns whether the connection is done (the
    /// sink-close grace passed as well).
    pub(crate) fn on_timeout(&mut self, now: Instant) -> bool {
        if now < self.deadline {
            return false;
        }
        if self.timed_out {
            return true;
        }
        self.timed_out = true;
        self.deadline = now + SINK_CLOSE_GRACE;
        false
    }
}
