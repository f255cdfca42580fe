//! What became of one send on this node.

use crate::connection::Push;
use crate::cx::limit_reject;

/// How many local queues took a frame, and how many could not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Frames queued on this node.
    pub queued: usize,
    /// Recipients on this node whose queue was full or closed (counted in the stats).
    pub dropped: usize,
    /// Whether the payload failed to serialise (nothing was sent; logged and counted).
    pub encode_failed: bool,
    /// A configured limit refused the send (nothing was sent): the limit's name in
    /// [`crate::ServerConfig`] and its value. See [`Delivery::check`].
    pub refused: Option<(&'static str, usize)>,
}

impl Delivery {
    /// `Err` with the `LIMIT` [`crate::Reject`] when a limit refused the send (so a
    /// handler answers the client with `cx.send(..).to(ids).check()?`), else the delivery.
    pub fn check(self) -> Result<Self, crate::Reject> {
        match self.refused {
            Some((limit, max)) => Err(limit_reject(limit, max)),
            None => Ok(self),
        }
    }

    pub(crate) fn add(&mut self, p: Push) {
        match p {
            Push::Queued => self.queued += 1,
            Push::Full | Push::Closed => self.dropped += 1,
        }
    }
}
