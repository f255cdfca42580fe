//! The [`Router`]: handlers registered per [`Message`] type ([`Handler`]), with
//! [`Middleware`] [`Scope`]s (a typed [`chain`] of them), each route's types erased
//! ([`route`]), and the pure dispatcher that turns one text frame into effects
//! ([`dispatch`]).

mod chain;
mod dispatch;
mod handler;
mod middleware;
mod route;
mod scope;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use chain::{Chain, Root, Then};
pub(crate) use dispatch::{Answer, Dispatched, dispatch};
pub use handler::{Handler, SyncHandler};
pub use middleware::{Input, Middleware};
pub use scope::Scope;

use crate::context::Context;
use crate::contract::Message;
use route::{Async, Plain, Routes, TypedRoute, insert};

/// Handlers per message type. Build it once at start-up:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use zocket_core::{Connect, Context, Cx, Message, Reject, Router};
///
/// struct User;
/// impl Context for User {
///     type Headers = serde_json::Value;
///     type State = ();
///     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
/// }
///
/// pub enum Add {}
/// impl Message for Add { const NAME: &'static str = "math.add"; type Input = (i64, i64); type Output = i64; }
///
/// async fn add(_cx: Cx<User>, (a, b): (i64, i64)) -> Result<i64, Reject> { Ok(a + b) }
///
/// let router = Router::<User>::new().on::<Add>(add);
/// assert_eq!(router.names().collect::<Vec<_>>(), ["math.add"]);
/// ```
///
/// Registering a name twice, or a name starting with `__` (reserved), panics here, at
/// build time, never later.
pub struct Router<C: Context> {
    routes: Routes<C, C::State>,
}

impl<C: Context> Default for Router<C> {
    fn default() -> Self {
        Self {
            routes: HashMap::default(),
        }
    }
}

impl<C: Context> fmt::Debug for Router<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.routes.keys().collect();
        names.sort();
        f.debug_struct("Router").field("messages", &names).finish()
    }
}

impl<C: Context> Router<C> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handle message `M` with `handler` (receiving `Cx<C, C::State>`).
    pub fn on<M: Message>(mut self, handler: impl Handler<M, C, C::State>) -> Self {
        let route = TypedRoute::<M, _, Root>::new(Async(handler), Arc::new(Root));
        insert(&mut self.routes, M::NAME, Arc::new(route));
        self
    }

    /// Handle message `M` with the plain function `handler` (receiving
    /// `Cx<C, C::State>`): called as soon as the message is read, with no future; see
    /// [`SyncHandler`] (it must not block).
    pub fn on_sync<M: Message>(mut self, handler: impl SyncHandler<M, C, C::State>) -> Self {
        let route = TypedRoute::<M, _, Root>::new(Plain(handler), Arc::new(Root));
        insert(&mut self.routes, M::NAME, Arc::new(route));
        self
    }

    /// Add every route of `other`. Panics on a name registered in both.
    pub fn merge(mut self, other: Router<C>) -> Self {
        for (name, route) in other.routes {
            insert(&mut self.routes, name, route);
        }
        self
    }

    /// The registered message names (in no particular order).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }
}
