//! The per-connection state the engine and every handler of that connection share:
//! its id, outbound queue, hub and stats, the protocol errors counted toward the flood
//! limit, the handler limits and the number of rooms joined.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::limits::HandlerLimits;
use crate::error::Reject;
use crate::hub::{Hub, Outbound};
use crate::ids::ClientId;
use crate::protocol::{self, Text};
use crate::stats::{Stats, inc};

/// Per-connection state shared by the driver and every handler of that connection.
pub(crate) struct Conn {
    pub(crate) id: ClientId,
    pub(crate) out: Outbound,
    pub(crate) hub: Arc<dyn Hub>,
    pub(crate) stats: Arc<Stats>,
    /// Protocol errors answered since the engine last looked; the engine's flood window
    /// (`connection::limits`) decides about 1008.
    protocol_errors: AtomicU32,
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
            protocol_errors: AtomicU32::new(0),
            limits,
            rooms: AtomicUsize::new(0),
        }
    }

    /// Queue a frame of this connection's own (never refused for the budget).
    pub(crate) fn push(&self, frame: Text) {
        self.out.push_own(frame);
    }

    /// Send an error frame for a failed message, counting protocol errors toward the
    /// flood limit (close 1008 past it).
    pub(crate) fn fail(&self, kind: Option<&str>, rpc_id: Option<&str>, err: &Reject) {
        let frame = match rpc_id {
            Some(id) => protocol::encode_rpc_err(id, err),
            None => protocol::encode_error(kind, err),
        };
        self.push(frame);
        if err.is_protocol_error() {
            inc(&self.stats.protocol_errors);
            self.protocol_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The protocol errors answered since the last call.
    pub(crate) fn take_protocol_errors(&self) -> u32 {
        if self.protocol_errors.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.protocol_errors.swap(0, Ordering::Relaxed)
    }
}
