//! The per-connection state the engine and every handler of that connection share:
//! its id, outbound queue, hub and stats, the handler limits and the number of rooms
//! joined.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::limits::HandlerLimits;
use crate::hub::{Hub, Outbound};
use crate::ids::ClientId;
use crate::protocol::Text;
use crate::stats::Stats;

/// Per-connection state shared by the driver and every handler of that connection.
pub(crate) struct Conn {
    pub(crate) id: ClientId,
    pub(crate) out: Outbound,
    pub(crate) hub: Arc<dyn Hub>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) limits: HandlerLimits,
    /// Rooms joined through [`Rooms`] and not left: what `max_rooms_per_connection`
    /// counts (O(1), instead of asking the hub for the whole list).
    pub(super) rooms: AtomicUsize,
}

impl Conn {
    pub(crate) fn new(
        id: ClientId,
        out: Outbound,
        hub: Arc<dyn Hub>,
        stats: Arc<Stats>,
        limits: HandlerLimits,
    ) -> Self {
        Self {
            id,
            out,
            hub,
            stats,
            limits,
            rooms: AtomicUsize::new(0),
        }
    }

    /// Queue a frame of this connection's own (never refused for the budget).
    pub(crate) fn push(&self, frame: Text) {
        self.out.push_own(frame);
    }
}
