//! The handler's view of its connection: [`Cx`] (context, application state, client
//! id), its [`Rooms`], typed sends ([`Outgoing`]) and the [`ServerHandle`]; and, shared
//! with the engine, the connection's state ([`Conn`]) and the handler limits.

mod conn;
mod into_recipients;
mod limits;
mod rooms;
mod send;
mod server_handle;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

pub(crate) use conn::Conn;
pub use into_recipients::{IntoClientIds, IntoRoomNames};
pub(crate) use limits::{HandlerLimits, limit_reject};
pub use rooms::Rooms;
pub use send::Outgoing;
pub use server_handle::ServerHandle;

use crate::contract::Event;
use crate::hub::Delivery;
use crate::ids::ClientId;

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
    /// One reference count for the three: a handle is cloned for every message.
    inner: Arc<Parts<C, S>>,
}

struct Parts<C, S> {
    ctx: Arc<C>,
    state: Arc<S>,
    conn: Arc<Conn>,
}

impl<C, S> Clone for Cx<C, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: fmt::Debug, S> fmt::Debug for Cx<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx")
            .field("client_id", &self.conn().id)
            .field("ctx", &self.inner.ctx)
            .finish_non_exhaustive()
    }
}

impl<C, S> Deref for Cx<C, S> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.inner.ctx
    }
}

impl<C, S> Cx<C, S> {
    pub(crate) fn new(ctx: Arc<C>, state: Arc<S>, conn: Arc<Conn>) -> Self {
        Self {
            inner: Arc::new(Parts { ctx, state, conn }),
        }
    }

    /// The connection's state, shared with the engine.
    pub(crate) fn conn(&self) -> &Arc<Conn> {
        &self.inner.conn
    }

    /// A handle with the same connection and state and a new context value (what a
    /// middleware's output becomes).
    pub(crate) fn narrow<O>(&self, ctx: O) -> Cx<O, S> {
        Cx::new(
            Arc::new(ctx),
            self.inner.state.clone(),
            self.inner.conn.clone(),
        )
    }

    /// The application state (set with
    /// [`ServerBuilder::state`](crate::ServerBuilder::state)).
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// The application state, shared (e.g. to move into a spawned task).
    pub fn state_arc(&self) -> Arc<S> {
        self.inner.state.clone()
    }

    /// The context value.
    pub fn context(&self) -> &C {
        &self.inner.ctx
    }

    /// The context value, shared.
    pub fn context_arc(&self) -> Arc<C> {
        self.inner.ctx.clone()
    }

    /// The id the server assigned to this connection.
    pub fn client_id(&self) -> &ClientId {
        &self.conn().id
    }

    /// This connection's rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms { conn: self.conn() }
    }

    /// Send a typed event: serialised once here, then `.to(..)`, `.to_room(..)` or
    /// `.broadcast()`. Never waits. The target is checked against
    /// [`ServerConfig::max_send_targets`](crate::ServerConfig::max_send_targets) and
    /// [`max_room_name_bytes`](crate::ServerConfig::max_room_name_bytes): over them
    /// nothing is sent and [`Delivery::check`] returns the `LIMIT` error.
    pub fn send<E: Event>(&self, payload: E::Payload) -> Outgoing<'_> {
        let mut out = Outgoing::new::<E>(&*self.conn().hub, &self.conn().stats, &payload);
        out.limits = Some(self.conn().limits);
        out.stats = Some(&self.conn().stats);
        out
    }

    /// Send a typed event to this connection only.
    pub fn reply_event<E: Event>(&self, payload: E::Payload) -> Delivery {
        self.send::<E>(payload).to(&self.conn().id)
    }

    /// A handle to the whole server (for sends outside this connection's lifetime,
    /// e.g. from a spawned task).
    pub fn server(&self) -> ServerHandle {
        ServerHandle {
            hub: self.conn().hub.clone(),
            stats: self.conn().stats.clone(),
        }
    }
}
