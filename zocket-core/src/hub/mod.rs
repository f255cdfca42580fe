//! The [`Hub`], for hub implementors: the connection registry, rooms, and delivery
//! into each connection's outbound queue ([`Outbound`], bounded in bytes). [`LocalHub`]
//! is the in-memory default; a distributed hub (e.g. `zocket_redis::RedisHub`) wraps one
//! and forwards to other nodes. Applications only pass a hub to
//! [`ServerBuilder::hub`](crate::ServerBuilder::hub) and use it through
//! [`ServerHandle`](crate::ServerHandle).

mod delivery;
mod local;
mod recipients;

use futures::future::BoxFuture;

pub use crate::connection::{FRAME_OVERHEAD, Outbound, Push};
pub use crate::stats::HubStats;
pub use delivery::Delivery;
pub use local::LocalHub;
pub use recipients::Recipients;

use crate::ids::ClientId;
use crate::protocol::Text;

/// A boxed future returned by the [`Hub`] operations that may have to ask other nodes.
/// The trait is used as `Arc<dyn Hub>`, hence boxed; users call the `async` methods of
/// [`crate::ServerHandle`] instead.
pub type HubFuture<'a, T> = BoxFuture<'a, Result<T, HubError>>;

/// Why a cluster-wide [`Hub`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The close code cannot be sent by a server: use 1000, 1001, 1008, 1011 or
    /// 3000–4999 (RFC 6455 §7.4).
    #[error("close code {0} cannot be sent (use 1000, 1001, 1008, 1011 or 3000-4999)")]
    InvalidCloseCode(u16),
    /// The close reason is longer than the 123 bytes a close frame can carry.
    #[error("close reason is {0} bytes; a close frame carries at most 123")]
    ReasonTooLong(usize),
    /// The shared backend (e.g. Redis) could not answer; the message says why.
    #[error("hub backend unavailable: {0}")]
    Unavailable(String),
}

/// The longest close reason a close frame carries (125-byte control payload minus the
/// 2-byte code).
pub const MAX_CLOSE_REASON: usize = 123;

/// Check that a server may send this close code and reason (used by every
/// [`Hub::disconnect`]).
pub fn check_close(code: u16, reason: &str) -> Result<(), HubError> {
    if !matches!(code, 1000 | 1001 | 1008 | 1011 | 3000..=4999) {
        return Err(HubError::InvalidCloseCode(code));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(HubError::ReasonTooLong(reason.len()));
    }
    Ok(())
}

/// Connection registry, rooms and delivery.
///
/// Everything a handler does through it is synchronous and never waits: [`join`],
/// [`leave`] and [`deliver`] enqueue effects, which is what keeps one client's messages
/// in order (also with a distributed hub, which forwards to other nodes in the
/// background). The per-connection questions ([`has`], [`rooms_of`]) are answered
/// locally, since a connection lives on exactly one node.
///
/// The cluster-wide questions and commands ([`members`], [`member_count`],
/// [`is_connected`], [`disconnect`]) may have to ask other nodes, so they return a
/// [`HubFuture`]; call them through [`crate::ServerHandle`]'s `async` methods.
///
/// [`LocalHub`] is the in-memory implementation; a distributed hub (e.g.
/// `zocket_redis::RedisHub`) wraps one and also forwards to other nodes.
///
/// [`join`]: Hub::join
/// [`leave`]: Hub::leave
/// [`deliver`]: Hub::deliver
/// [`has`]: Hub::has
/// [`rooms_of`]: Hub::rooms_of
/// [`members`]: Hub::members
/// [`member_count`]: Hub::member_count
/// [`is_connected`]: Hub::is_connected
/// [`disconnect`]: Hub::disconnect
pub trait Hub: Send + Sync + 'static {
    /// Add a connection of this node.
    fn register(&self, out: Outbound);
    /// Remove a connection of this node and its room memberships.
    fn unregister(&self, id: &ClientId);
    /// Put `id` (a connection of this node) in `room`; `false` if it was a member
    /// already (or is unknown). Never waits.
    fn join(&self, id: &ClientId, room: &str) -> bool;
    /// Take `id` out of `room`; `false` if it was not a member. Never waits.
    fn leave(&self, id: &ClientId, room: &str) -> bool;
    /// Whether `id`, a connection of this node, is in `room`.
    fn has(&self, id: &ClientId, room: &str) -> bool;
    /// The rooms of `id`, a connection of this node, sorted.
    fn rooms_of(&self, id: &ClientId) -> Vec<String>;
    /// Deliver an encoded frame (shared, never re-encoded) to the recipients, on
    /// every node. Never waits; the returned [`Delivery`] counts this node's recipients.
    fn deliver(&self, to: &Recipients, frame: &Text) -> Delivery;
    /// How many connections this node holds.
    fn local_connections(&self) -> usize;
    /// The members of `room` on every node, sorted.
    fn members(&self, room: &str) -> HubFuture<'_, Vec<ClientId>>;
    /// How many members `room` has on every node.
    fn member_count(&self, room: &str) -> HubFuture<'_, usize>;
    /// Whether `id` is connected to any node.
    fn is_connected(&self, id: &ClientId) -> HubFuture<'_, bool>;
    /// Close the connection `id`, on whichever node holds it, with this close code and
    /// reason (checked with [`check_close`]); its disconnect hook sees
    /// [`CloseReason::Closed`](crate::CloseReason::Closed). `Ok(false)`: no node holds that connection.
    fn disconnect(&self, id: &ClientId, code: u16, reason: &str) -> HubFuture<'_, bool>;
    /// The hub's own counters, added into [`crate::Server::stats`]. Zero by default.
    fn stats(&self) -> HubStats {
        HubStats::default()
    }
}
