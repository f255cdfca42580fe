//! The [`Hub`]: connection registry, rooms, and delivery into each connection's
//! outbound queue ([`Outbound`], bounded in bytes: see [`crate::connection`]).
//! [`LocalHub`] is the in-memory default.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::RwLock;

use futures::future::BoxFuture;

pub use crate::connection::{Outbound, Push};
use crate::ids::ClientId;
use crate::protocol::Text;
use crate::stats::HubStats;

/// Why a connection ended. Passed to [`crate::Context::disconnect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the connection (with its close code, if any).
    ClientClosed(Option<u16>),
    /// The transport failed or ended without a close frame.
    TransportError(String),
    /// No pong arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// Events pushed by others exceeded the outbound budget (close 1013).
    SlowConsumer,
    /// Too many protocol errors in the window (close 1008).
    ProtocolErrors,
    /// More messages than the configured rate (close 1008, reason `rate limit`).
    RateLimited,
    /// A message exceeded the maximum size (close 1009).
    MessageTooBig,
    /// The server shut down (close 1001).
    ServerShutdown,
    /// The server closed it on request (e.g. [`crate::ServerHandle::disconnect`]).
    Closed {
        /// The close code sent.
        code: u16,
        /// The reason sent.
        reason: String,
    },
}

impl CloseReason {
    /// The close code the server sends for this reason (`None`: no close frame).
    pub fn code(&self) -> Option<u16> {
        match self {
            CloseReason::ClientClosed(_) => Some(1000),
            CloseReason::TransportError(_) | CloseReason::HeartbeatTimeout => None,
            CloseReason::SlowConsumer => Some(1013),
            CloseReason::ProtocolErrors | CloseReason::RateLimited => Some(1008),
            CloseReason::MessageTooBig => Some(1009),
            CloseReason::ServerShutdown => Some(1001),
            CloseReason::Closed { code, .. } => Some(*code),
        }
    }
    /// A short text for the close frame.
    pub fn text(&self) -> &str {
        match self {
            CloseReason::ClientClosed(_) => "",
            CloseReason::TransportError(_) => "transport error",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::SlowConsumer => "slow consumer: outbound queue full",
            CloseReason::ProtocolErrors => "too many protocol errors",
            CloseReason::RateLimited => "rate limit",
            CloseReason::MessageTooBig => "message too big",
            CloseReason::ServerShutdown => "server shutting down",
            CloseReason::Closed { reason, .. } => reason,
        }
    }
}

/// What to do when the events pushed to a connection by others exceed its outbound
/// budget ([`crate::ServerConfig::outbound_budget`], [`crate::ServerConfig::outbound_queue`]).
/// Frames caused by the connection's own messages never count as slow consumption:
/// reading from it pauses instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1013 ("try again later"). The default: a client that
    /// cannot keep up is told so, instead of silently missing messages.
    #[default]
    Close,
    /// Drop the event that did not fit and keep the connection (counted in
    /// [`crate::StatsSnapshot::frames_dropped`], logged once per connection).
    DropFrame,
}

/// Who an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These clients (unknown ids receive nothing).
    Clients(Vec<ClientId>),
    /// Every member of these rooms, each once.
    Rooms(Vec<String>),
    /// Every connected client.
    All,
}

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
            Some((limit, max)) => Err(crate::cx::limit_reject(limit, max)),
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
    /// Deliver an encoded frame (shared, never re-encoded) to the target, on every
    /// node. Never waits; the returned [`Delivery`] counts this node's recipients.
    fn deliver(&self, target: &Target, frame: &Text) -> Delivery;
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
    /// [`CloseReason::Closed`]. `Ok(false)`: no node holds that connection.
    fn disconnect(&self, id: &ClientId, code: u16, reason: &str) -> HubFuture<'_, bool>;
    /// The hub's own counters, added into [`crate::Server::stats`]. Zero by default.
    fn stats(&self) -> HubStats {
        HubStats::default()
    }
}

#[derive(Default)]
struct Entry {
    out: Option<Outbound>,
    rooms: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    conns: HashMap<ClientId, Entry>,
    /// Each member with its queue (a copy of its entry's), so that a room is delivered
    /// without a second lookup per member.
    rooms: HashMap<String, HashMap<ClientId, Option<Outbound>>>,
}

/// The in-memory hub: one process, every connection in a map, rooms as sets.
///
/// Besides the [`Hub`] trait it offers synchronous, this-node-only methods
/// (`local_*`, [`deliver_room_once`](LocalHub::deliver_room_once)) that a distributed
/// hub wrapping it builds on.
#[derive(Default)]
pub struct LocalHub {
    state: RwLock<State>,
}

impl LocalHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
    /// The members of `room` on this node, sorted.
    pub fn local_members(&self, room: &str) -> Vec<ClientId> {
        let mut v: Vec<ClientId> = self
            .read()
            .rooms
            .get(room)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    /// How many members `room` has on this node.
    pub fn local_member_count(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, HashMap::len)
    }
    /// Whether `id` is a connection of this node.
    pub fn is_local(&self, id: &ClientId) -> bool {
        self.read().conns.contains_key(id)
    }
    /// The ids of this node's connections (unsorted).
    pub fn local_ids(&self) -> Vec<ClientId> {
        self.read().conns.keys().cloned().collect()
    }
    /// The rooms that have at least one member on this node (unsorted).
    pub fn local_rooms(&self) -> Vec<String> {
        self.read().rooms.keys().cloned().collect()
    }
    /// Close `id` if it is a connection of this node, with [`CloseReason::Closed`];
    /// `false` if it is not here. The code and reason are not checked here (see
    /// [`check_close`]).
    pub fn disconnect_local(&self, id: &ClientId, code: u16, reason: &str) -> bool {
        match self.read().conns.get(id).and_then(|e| e.out.as_ref()) {
            Some(out) => {
                out.close(CloseReason::Closed {
                    code,
                    reason: reason.to_owned(),
                });
                true
            }
            None => false,
        }
    }
    /// Deliver to this node's members of `rooms[index]` that are in none of
    /// `rooms[..index]`: called once per room of a multi-room target, each member gets
    /// the frame once, and no state is needed between the calls. An `index` out of range
    /// delivers nothing.
    pub fn deliver_room_once(&self, rooms: &[String], index: usize, frame: &Text) -> Delivery {
        let mut d = Delivery::default();
        let (Some(room), earlier) = (rooms.get(index), rooms.get(..index).unwrap_or(&[])) else {
            return d;
        };
        let st = self.read();
        for id in st.rooms.get(room).into_iter().flat_map(HashMap::keys) {
            if let Some(e) = st.conns.get(id) {
                if earlier.iter().any(|r| e.rooms.contains(r)) {
                    continue;
                }
                if let Some(out) = &e.out {
                    d.add(out.push(frame.clone()));
                }
            }
        }
        crate::stats::record_events_delivered(d.queued);
        d
    }
}

impl Hub for LocalHub {
    fn register(&self, out: Outbound) {
        let id = out.id().clone();
        self.write().conns.insert(
            id,
            Entry {
                out: Some(out),
                rooms: BTreeSet::new(),
            },
        );
    }

    fn unregister(&self, id: &ClientId) {
        let mut st = self.write();
        if let Some(entry) = st.conns.remove(id) {
            for room in entry.rooms {
                if let Some(set) = st.rooms.get_mut(&room) {
                    set.remove(id);
                    if set.is_empty() {
                        st.rooms.remove(&room);
                    }
                }
            }
        }
    }

    fn join(&self, id: &ClientId, room: &str) -> bool {
        let mut st = self.write();
        let Some(entry) = st.conns.get_mut(id) else {
            return false;
        };
        if !entry.rooms.insert(room.to_owned()) {
            return false;
        }
        let out = entry.out.clone();
        st.rooms
            .entry(room.to_owned())
            .or_default()
            .insert(id.clone(), out);
        true
    }

    fn leave(&self, id: &ClientId, room: &str) -> bool {
        let mut st = self.write();
        let Some(entry) = st.conns.get_mut(id) else {
            return false;
        };
        if !entry.rooms.remove(room) {
            return false;
        }
        if let Some(set) = st.rooms.get_mut(room) {
            set.remove(id);
            if set.is_empty() {
                st.rooms.remove(room);
            }
        }
        true
    }

    fn has(&self, id: &ClientId, room: &str) -> bool {
        self.read()
            .conns
            .get(id)
            .is_some_and(|e| e.rooms.contains(room))
    }

    fn rooms_of(&self, id: &ClientId) -> Vec<String> {
        self.read()
            .conns
            .get(id)
            .map(|e| e.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn deliver(&self, target: &Target, frame: &Text) -> Delivery {
        let st = self.read();
        let mut d = Delivery::default();
        let mut push = |out: Option<&Outbound>| {
            if let Some(out) = out {
                d.add(out.push(frame.clone()));
            }
        };
        match target {
            Target::All => st.conns.values().for_each(|e| push(e.out.as_ref())),
            Target::Clients(ids) => {
                let mut seen = HashSet::with_capacity(ids.len());
                for id in ids {
                    if seen.insert(id) {
                        if let Some(e) = st.conns.get(id) {
                            push(e.out.as_ref());
                        }
                    }
                }
            }
            Target::Rooms(rooms) => {
                if let [room] = rooms.as_slice() {
                    for out in st.rooms.get(room).into_iter().flat_map(HashMap::values) {
                        push(out.as_ref());
                    }
                } else {
                    let mut seen = HashSet::new();
                    for (id, out) in rooms.iter().filter_map(|r| st.rooms.get(r)).flatten() {
                        if seen.insert(id) {
                            push(out.as_ref());
                        }
                    }
                }
            }
        }
        crate::stats::record_events_delivered(d.queued);
        d
    }

    fn local_connections(&self) -> usize {
        self.read().conns.len()
    }

    fn members(&self, room: &str) -> HubFuture<'_, Vec<ClientId>> {
        let v = self.local_members(room);
        Box::pin(std::future::ready(Ok(v)))
    }

    fn member_count(&self, room: &str) -> HubFuture<'_, usize> {
        let n = self.local_member_count(room);
        Box::pin(std::future::ready(Ok(n)))
    }

    fn is_connected(&self, id: &ClientId) -> HubFuture<'_, bool> {
        let b = self.is_local(id);
        Box::pin(std::future::ready(Ok(b)))
    }

    fn disconnect(&self, id: &ClientId, code: u16, reason: &str) -> HubFuture<'_, bool> {
        let r = check_close(code, reason).map(|()| self.disconnect_local(id, code, reason));
        Box::pin(std::future::ready(r))
    }
}
