//! The handler's view of its connection: [`Cx`], rooms and typed sends.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::contract::Event;
use crate::error::{Reject, codes};
use crate::hub::{Delivery, Hub, HubError, Outbound, Target};
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
    pub(crate) limits: Limits,
    /// Rooms joined through [`Rooms`] and not left: what `max_rooms_per_connection`
    /// counts (O(1), instead of asking the hub for the whole list).
    rooms: AtomicUsize,
}

/// The per-connection limits of [`crate::ServerConfig`] that handlers' calls check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_rooms: usize,
    pub(crate) max_room_name_bytes: usize,
    pub(crate) max_send_targets: usize,
}

impl Limits {
    pub(crate) fn from_config(cfg: &crate::ServerConfig) -> Self {
        Self {
            max_rooms: cfg.max_rooms_per_connection,
            max_room_name_bytes: cfg.max_room_name_bytes,
            max_send_targets: cfg.max_send_targets,
        }
    }

    fn check_room_name(&self, room: &str) -> Result<(), (&'static str, usize)> {
        if room.len() > self.max_room_name_bytes {
            return Err(("max_room_name_bytes", self.max_room_name_bytes));
        }
        Ok(())
    }

    /// The limit a send target breaks, if any.
    fn check_target(&self, target: &Target) -> Result<(), (&'static str, usize)> {
        let n = match target {
            Target::Clients(ids) => ids.len(),
            Target::Rooms(rooms) => {
                for room in rooms {
                    self.check_room_name(room)?;
                }
                rooms.len()
            }
            Target::All => 0,
        };
        if n > self.max_send_targets {
            return Err(("max_send_targets", self.max_send_targets));
        }
        Ok(())
    }
}

/// The `LIMIT` refusal of the named [`crate::ServerConfig`] limit.
pub(crate) fn limit_reject(limit: &'static str, max: usize) -> Reject {
    let what = match limit {
        "max_room_name_bytes" => format!("a room name may have at most {max} bytes"),
        "max_rooms_per_connection" => format!("a connection may be in at most {max} rooms"),
        "max_send_targets" => format!("one send may name at most {max} ids or rooms"),
        _ => format!("at most {max}"),
    };
    Reject::new(codes::LIMIT, format!("{limit}: {what}"))
}

impl Conn {
    pub(crate) fn new(
        id: ClientId,
        out: Outbound,
        hub: Arc<dyn Hub>,
        stats: Arc<Stats>,
        limits: Limits,
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

/// What every handler and middleware receives: the connection's context `C` (through
/// `Deref`), the application state `S` ([`state`](Cx::state), the context's
/// [`Context::State`](crate::Context::State)) plus the built-ins:
/// [`client_id`](Cx::client_id), [`rooms`](Cx::rooms) and typed [`send`](Cx::send).
///
/// After a middleware, `C` is the middleware's output type, so a handler registered
/// behind `RequireAdmin` receives `Cx<Admin>`: "the user is an admin" is a type. `S`
/// stays the same along the chain; it defaults to `()` (no state), so a stateless
/// application writes `Cx<User>` and a stateful one `Cx<User, App>`.
pub struct Cx<C, S = ()> {
    ctx: Arc<C>,
    state: Arc<S>,
    pub(crate) conn: Arc<Conn>,
}

impl<C, S> Clone for Cx<C, S> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            state: self.state.clone(),
            conn: self.conn.clone(),
        }
    }
}

impl<C: fmt::Debug, S> fmt::Debug for Cx<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx")
            .field("client_id", &self.conn.id)
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl<C, S> Deref for Cx<C, S> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.ctx
    }
}

impl<C, S> Cx<C, S> {
    pub(crate) fn new(ctx: Arc<C>, state: Arc<S>, conn: Arc<Conn>) -> Self {
        Self { ctx, state, conn }
    }

    /// A handle with the same connection and state and a new context value (what a
    /// middleware's output becomes).
    pub(crate) fn narrow<O>(&self, ctx: O) -> Cx<O, S> {
        Cx {
            ctx: Arc::new(ctx),
            state: self.state.clone(),
            conn: self.conn.clone(),
        }
    }

    /// The application state (set with
    /// [`ServerBuilder::state`](crate::ServerBuilder::state)).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The application state, shared (e.g. to move into a spawned task).
    pub fn state_arc(&self) -> Arc<S> {
        self.state.clone()
    }

    /// The context value.
    pub fn context(&self) -> &C {
        &self.ctx
    }

    /// The context value, shared.
    pub fn context_arc(&self) -> Arc<C> {
        self.ctx.clone()
    }

    /// The id the server assigned to this connection.
    pub fn client_id(&self) -> &ClientId {
        &self.conn.id
    }

    /// This connection's rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms { conn: &self.conn }
    }

    /// Send a typed event: serialised once here, then `.to(..)`, `.to_room(..)` or
    /// `.broadcast()`. Never waits. The target is checked against
    /// [`ServerConfig::max_send_targets`](crate::ServerConfig::max_send_targets) and
    /// [`max_room_name_bytes`](crate::ServerConfig::max_room_name_bytes): over them
    /// nothing is sent and [`Delivery::check`] returns the `LIMIT` error.
    pub fn send<E: Event>(&self, payload: E::Payload) -> Outgoing<'_> {
        let mut out = Outgoing::new::<E>(&*self.conn.hub, &self.conn.stats, &payload);
        out.limits = Some(self.conn.limits);
        out.stats = Some(&self.conn.stats);
        out
    }

    /// Send a typed event to this connection only.
    pub fn reply_event<E: Event>(&self, payload: E::Payload) -> Delivery {
        self.send::<E>(payload).to(&self.conn.id)
    }

    /// A handle to the whole server (for sends outside this connection's lifetime,
    /// e.g. from a spawned task).
    pub fn server(&self) -> ServerHandle {
        ServerHandle {
            hub: self.conn.hub.clone(),
            stats: self.conn.stats.clone(),
        }
    }
}

/// Room operations of one connection. They never wait.
///
/// Joining and leaving cost O(log n) in the number of rooms the connection is in;
/// [`current`](Self::current) copies the list (O(n)), which
/// [`ServerConfig::max_rooms_per_connection`](crate::ServerConfig::max_rooms_per_connection)
/// bounds.
#[derive(Clone, Copy)]
pub struct Rooms<'a> {
    conn: &'a Conn,
}

impl fmt::Debug for Rooms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::redact::list(&self.current(), 10, 64))
    }
}

impl Rooms<'_> {
    /// Join a room: `Ok(true)` if joined, `Ok(false)` if a member already. Refused with
    /// a `LIMIT` [`Reject`] (return it with `?` to answer the client) when the name is
    /// longer than [`ServerConfig::max_room_name_bytes`](crate::ServerConfig::max_room_name_bytes)
    /// or the connection is in
    /// [`ServerConfig::max_rooms_per_connection`](crate::ServerConfig::max_rooms_per_connection)
    /// rooms already.
    pub fn join(&self, room: &str) -> Result<bool, Reject> {
        let conn = self.conn;
        let limits = &conn.limits;
        if let Err((limit, max)) = limits.check_room_name(room) {
            inc(&conn.stats.limit_refusals);
            tracing::debug!(client_id = %conn.id, len = room.len(), "join refused: {limit}");
            return Err(limit_reject(limit, max));
        }
        if conn.hub.has(&conn.id, room) {
            return Ok(false);
        }
        if conn.rooms.fetch_add(1, Ordering::AcqRel) >= limits.max_rooms {
            conn.rooms.fetch_sub(1, Ordering::AcqRel);
            inc(&conn.stats.limit_refusals);
            tracing::debug!(client_id = %conn.id, max = limits.max_rooms, "join refused: max_rooms_per_connection");
            return Err(limit_reject("max_rooms_per_connection", limits.max_rooms));
        }
        let joined = conn.hub.join(&conn.id, room);
        if !joined {
            conn.rooms.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(joined)
    }
    /// Leave a room; `false` if not a member.
    pub fn leave(&self, room: &str) -> bool {
        let left = self.conn.hub.leave(&self.conn.id, room);
        if left {
            self.conn.rooms.fetch_sub(1, Ordering::AcqRel);
        }
        left
    }
    /// Whether this connection is in `room`.
    pub fn has(&self, room: &str) -> bool {
        self.conn.hub.has(&self.conn.id, room)
    }
    /// The current rooms, sorted.
    pub fn current(&self) -> Vec<String> {
        self.conn.hub.rooms_of(&self.conn.id)
    }
}

/// A handle to the server for typed sends from outside handlers, and for the
/// cluster-wide questions and commands (room members, whether a client is connected,
/// disconnecting a client by id), which may have to ask other nodes and so are `async`.
/// Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) hub: Arc<dyn Hub>,
    pub(crate) stats: Arc<Stats>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_connections", &self.hub.local_connections())
            .finish()
    }
}

impl ServerHandle {
    /// Send a typed event to clients, rooms or everyone (on every node). Never waits.
    pub fn send<E: Event>(&self, payload: E::Payload) -> Outgoing<'_> {
        Outgoing::new::<E>(&*self.hub, &self.stats, &payload)
    }
    /// The rooms a connection of this node is in, sorted.
    pub fn rooms_of(&self, id: &ClientId) -> Vec<String> {
        self.hub.rooms_of(id)
    }
    /// How many connections this node holds.
    pub fn local_connections(&self) -> usize {
        self.hub.local_connections()
    }
    /// The members of `room` on every node, sorted.
    pub async fn members(&self, room: &str) -> Result<Vec<ClientId>, HubError> {
        self.hub.members(room).await
    }
    /// How many members `room` has on every node.
    pub async fn member_count(&self, room: &str) -> Result<usize, HubError> {
        self.hub.member_count(room).await
    }
    /// Whether `id` is connected to any node.
    pub async fn is_connected(&self, id: &ClientId) -> Result<bool, HubError> {
        self.hub.is_connected(id).await
    }
    /// Close the connection `id`, on whichever node holds it, with this close code
    /// (1000, 1001, 1008, 1011 or 3000–4999) and reason (at most 123 bytes); its
    /// disconnect hook sees [`CloseReason::Closed`]. `Ok(false)`: no node holds it.
    ///
    /// ```
    /// # use zocket_core::{ServerHandle, ClientId};
    /// # async fn kick(server: ServerHandle, id: ClientId) -> Result<(), zocket_core::HubError> {
    /// if !server.disconnect(&id, 4001, "kicked by a moderator").await? {
    ///     tracing::info!(%id, "not connected");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(
        &self,
        id: &ClientId,
        code: u16,
        reason: &str,
    ) -> Result<bool, HubError> {
        self.hub.disconnect(id, code, reason).await
    }
    /// The hub.
    pub fn hub(&self) -> &Arc<dyn Hub> {
        &self.hub
    }
}

/// An encoded event waiting for its recipients. Pick one of [`to`](Outgoing::to),
/// [`to_room`](Outgoing::to_room) or [`broadcast`](Outgoing::broadcast).
#[must_use = "an event goes nowhere until `.to(..)`, `.to_room(..)` or `.broadcast()` is called"]
pub struct Outgoing<'a> {
    hub: &'a dyn Hub,
    frame: Option<Text>,
    /// Set for sends from a handler (client-controlled targets).
    limits: Option<Limits>,
    stats: Option<&'a Stats>,
}

impl fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("frame", &self.frame)
            .finish()
    }
}

impl<'a> Outgoing<'a> {
    fn new<E: Event>(hub: &'a dyn Hub, stats: &Stats, payload: &E::Payload) -> Self {
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

    fn deliver(self, target: Target) -> Delivery {
        if let Some(Err(refused)) = self.limits.map(|l| l.check_target(&target)) {
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
            Some(frame) => self.hub.deliver(&target, &frame),
            None => Delivery {
                encode_failed: true,
                ..Delivery::default()
            },
        }
    }

    /// To one or more clients by id: `.to(&id)`, `.to([a, b])`, `.to(vec_of_ids)`.
    pub fn to(self, ids: impl IntoClientIds) -> Delivery {
        self.deliver(Target::Clients(ids.into_client_ids()))
    }
    /// To every member of one or more rooms (each member once): `.to_room("lobby")`.
    pub fn to_room(self, rooms: impl IntoRoomNames) -> Delivery {
        self.deliver(Target::Rooms(rooms.into_room_names()))
    }
    /// To every connected client.
    pub fn broadcast(self) -> Delivery {
        self.deliver(Target::All)
    }
}

/// One or several client ids: `ClientId`, `&ClientId`, `&str`, `String`, or an array,
/// `Vec` or slice of any of those.
pub trait IntoClientIds {
    /// The ids.
    fn into_client_ids(self) -> Vec<ClientId>;
}
/// One or several room names: `&str`, `String`, or an array, `Vec` or slice of them.
pub trait IntoRoomNames {
    /// The names.
    fn into_room_names(self) -> Vec<String>;
}

macro_rules! single {
    ($($t:ty),*) => {$(
        impl IntoClientIds for $t { fn into_client_ids(self) -> Vec<ClientId> { vec![ClientId::from(self)] } }
    )*};
}
single!(ClientId, &ClientId, &str, String, &String);

impl<T: Into<ClientId>, const N: usize> IntoClientIds for [T; N] {
    fn into_client_ids(self) -> Vec<ClientId> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<T: Into<ClientId>> IntoClientIds for Vec<T> {
    fn into_client_ids(self) -> Vec<ClientId> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<T> IntoClientIds for &[T]
where
    for<'x> &'x T: Into<ClientId>,
{
    fn into_client_ids(self) -> Vec<ClientId> {
        self.iter().map(Into::into).collect()
    }
}

impl IntoRoomNames for &str {
    fn into_room_names(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl IntoRoomNames for String {
    fn into_room_names(self) -> Vec<String> {
        vec![self]
    }
}
impl IntoRoomNames for &String {
    fn into_room_names(self) -> Vec<String> {
        vec![self.clone()]
    }
}
impl<T: AsRef<str>, const N: usize> IntoRoomNames for [T; N] {
    fn into_room_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<T: AsRef<str>> IntoRoomNames for Vec<T> {
    fn into_room_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<T: AsRef<str>> IntoRoomNames for &[T] {
    fn into_room_names(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
