//! The writer's side of the byte budget: batching (several frames fed to the sink, one
//! flush), the accounting of what is being written, and the control frames owed.
//!
//! Frames are charged to the budget while queued *and* while being written: a batch's
//! bytes are released only when the flush that carries them completes, i.e. when the
//! transport has taken them. Control frames count the same way: a ping the heartbeat
//! sends, and for every ping the peer sends, the pong answering it. When the transport
//! answers pings itself (tokio-tungstenite does, inside its stream) the engine still
//! charges each ping and asks for a flush, and releases the charge when a flush
//! completes: a peer that pings and never reads stalls every flush, fills the budget
//! with pongs that cannot leave, and reading pauses, so it cannot make the server buffer
//! more pongs; the heartbeat then drops it.

use bytes::Bytes;

use super::outbound::{Origin, Shared, cost};

/// Frames fed to the sink before a flush.
pub(crate) const MAX_BATCH_FRAMES: u32 = 64;
/// Bytes fed to the sink before a flush (a batch may exceed it by one frame).
pub(crate) const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Who answers the peer's pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PingReplies {
    /// The transport answers pings itself (tokio-tungstenite, and so both bundled
    /// adapters). The engine only charges them to the budget and flushes.
    #[default]
    Transport,
    /// The engine answers each ping with a pong frame through the sink (a transport that
    /// hands pings up without answering them). Only the latest ping is answered when
    /// several arrive before the writer can take a frame (RFC 6455 §5.5.3).
    Engine,
}

#[derive(Debug, Clone, Copy, Default)]
struct Batch {
    frames: u32,
    pushed_frames: u32,
    bytes: usize,
    pushed: usize,
    /// Bytes of [`Origin::Local`] frames (charged to the engine's own count).
    local: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    replies: PingReplies,
    /// The payload of the latest unanswered ping ([`PingReplies::Engine`]).
    /// (Boxed: only a transport that hands pings up has one, and every connection's
    /// state would keep its room.)
    pong: Option<Box<Bytes>>,
    /// Charged for pings received, not yet in a batch.
    owed: usize,
    batch: Batch,
    flushing: bool,
}

impl Writer {
    pub(crate) fn new(replies: PingReplies) -> Self {
        Self {
            replies,
            pong: None,
            owed: 0,
            batch: Batch::default(),
            flushing: false,
        }
    }

    /// The peer pinged.
    pub(crate) fn on_ping(&mut self, payload: Bytes, shared: &Shared) {
        let c = cost(payload.len());
        shared.charge(c);
        self.owed += c;
        if self.replies == PingReplies::Engine {
            self.pong = Some(Box::new(payload));
        }
    }

    /// Whether another frame may join the batch now.
    pub(crate) fn can_feed(&self) -> bool {
        !self.flushing && self.batch.frames < MAX_BATCH_FRAMES && self.batch.bytes < MAX_BATCH_BYTES
    }

    /// The pong owed, if the engine answers pings: it joins the batch.
    pub(crate) fn take_pong(&mut self) -> Option<Bytes> {
        let pong = self.pong.take()?;
        self.batch.frames += 1;
        self.batch.bytes += std::mem::take(&mut self.owed);
        Some(*pong)
    }

    /// A ping of the heartbeat joins the batch (charged here).
    pub(crate) fn add_ping(&mut self, shared: &Shared) {
        let c = cost(0);
        shared.charge(c);
        self.batch.frames += 1;
        self.batch.bytes += c;
    }

    /// A queued frame (already charged) joins the batch.
    pub(crate) fn add(&mut self, len: usize, origin: Origin) {
        let c = cost(len);
        self.batch.frames += 1;
        self.batch.bytes += c;
        match origin {
            Origin::Pushed => {
                self.batch.pushed += c;
                self.batch.pushed_frames += 1;
            }
            Origin::Local => self.batch.local += c,
            Origin::Own => {}
        }
    }

    /// A frame that is not charged (the close frame) joins the batch.
    pub(crate) fn add_uncharged(&mut self) {
        self.batch.frames += 1;
    }

    /// Whether a flush is due once nothing more joins the batch.
    pub(crate) fn wants_flush(&self) -> bool {
        !self.flushing
            && (self.batch.frames > 0 || (self.replies == PingReplies::Transport && self.owed > 0))
    }

    /// Whether a flush is in progress.
    pub(crate) fn is_flushing(&self) -> bool {
        self.flushing
    }

    /// The driver starts flushing the batch.
    pub(crate) fn flush_started(&mut self) {
        self.flushing = true;
        if self.replies == PingReplies::Transport {
            // The transport's pongs leave with this flush.
            self.batch.bytes += std::mem::take(&mut self.owed);
        }
    }

    /// The flush completed: the batch's bytes leave the budget. Returns the bytes of
    /// its [`Origin::Local`] frames, for the engine to release from its own count.
    pub(crate) fn flushed(&mut self, shared: &Shared) -> usize {
        let b = std::mem::take(&mut self.batch);
        self.flushing = false;
        shared.release(b.bytes - b.local, b.pushed, b.pushed_frames);
        b.local
    }

    /// Frames are being written, or charged pongs wait for a flush.
    pub(crate) fn is_busy(&self) -> bool {
        self.flushing || self.batch.frames > 0 || self.owed > 0
    }
}
