//! The typed send builder: an event encoded once, then given its recipients.

use std::fmt;

use super::into_recipients::{IntoClientIds, IntoRoomNames};
use super::limits::HandlerLimits;
use crate::contract::Event;
use crate::hub::{Delivery, Hub, Recipients};
use crate::protocol::{self, Text};
use crate::stats::{Stats, inc};

/// An encoded event waiting for its recipients. Pick one of [`to`](Outgoing::to),
/// [`to_room`](Outgoing::to_room) or [`broadcast`](Outgoing::broadcast).
#[must_use = "an event goes nowhere until `.to(..)`, `.to_room(..)` or `.broadcast()` is called"]
pub struct Outgoing<'a> {
    hub: &'a dyn Hub,
    frame: Option<Text>,
    /// Set for sends from a handler (client-controlled targets).
    pub(super) limits: Option<HandlerLimits>,
    pub(super) stats: Option<&'a Stats>,
}

impl fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("frame", &self.frame)
            .finish()
    }
}

impl<'a> Outgoing<'a> {
    pub(super) fn new<E: Event>(hub: &'a dyn Hub, stats: &Stats, payload: &E::Payload) -> Self {
        let frame = match protocol::encode_event(E::NAME, payload) {
            Ok(f) => Some(f),
            Err(e) => {
                inc(&stats.encode_failures);
                tracing::error!(event = E::NAME, error = %e, "event payload failed to serialise; not sent");
                None
            }
        };
        Self {
            hub,
            frame,
            limits: None,
            stats: None,
        }
    }

    fn deliver(self, to: Recipients) -> Delivery {
        if let Some(Err(refused)) = self.limits.map(|l| l.check_recipients(&to)) {
            if let Some(stats) = self.stats {
                inc(&stats.limit_refusals);
            }
            tracing::debug!(limit = refused.0, "send refused");
            return Delivery {
                refused: Some(refused),
                ..Delivery::default()
            };
        }
        match self.frame {
            Some(frame) => self.hub.deliver(&to, &frame),
            None => Delivery {
                encode_failed: true,
                ..Delivery::default()
            },
        }
    }

    /// To one or more clients by id: `.to(&id)`, `.to([a, b])`, `.to(vec_of_ids)`.
    pub fn to(self, ids: impl IntoClientIds) -> Delivery {
        self.deliver(Recipients::Clients(ids.into_client_ids()))
    }
    /// To every member of one or more rooms (each member once): `.to_room("lobby")`.
    pub fn to_room(self, rooms: impl IntoRoomNames) -> Delivery {
        self.deliver(Recipients::Rooms(rooms.into_room_names()))
    }
    /// To every connected client.
    pub fn broadcast(self) -> Delivery {
        self.deliver(Recipients::All)
    }
}
