//! Scopes: routes registered behind a middleware chain.

use std::fmt;
use std::sync::Arc;

use super::Router;
use super::chain::{Chain, Root, Then};
use super::handler::{Handler, SyncHandler};
use super::middleware::Middleware;
use super::route::{Async, Plain, TypedRoute, insert};
use crate::context::Context;
use crate::contract::Message;

impl<C: Context> Router<C> {
    /// Handlers registered inside `f` run behind `middleware` and receive its `Out`
    /// context. Scopes nest: `s.scope(next, |s| ..)` inside runs both, in order.
    pub fn scope<Mw, F>(self, middleware: Mw, f: F) -> Self
    where
        Mw: Middleware<C, C::State>,
        F: FnOnce(Scope<C, Then<Root, Mw>>) -> Scope<C, Then<Root, Mw>>,
    {
        let scope = Scope {
            router: self,
            chain: Arc::new(Then(Arc::new(Root), middleware)),
        };
        f(scope).router
    }
}

/// Routes registered behind a middleware chain; see [`Router::scope`].
pub struct Scope<C: Context, Ch> {
    router: Router<C>,
    chain: Arc<Ch>,
}

impl<C: Context, Ch> fmt::Debug for Scope<C, Ch> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("router", &self.router)
            .finish()
    }
}

impl<C: Context, Ch: Chain<C, C::State>> Scope<C, Ch> {
    /// Handle message `M` with `handler`, which receives the chain's output context.
    pub fn on<M: Message>(mut self, handler: impl Handler<M, Ch::Out, C::State>) -> Self {
        let route = TypedRoute::<M, _, Ch>::new(Async(handler), self.chain.clone());
        insert(&mut self.router.routes, M::NAME, Arc::new(route));
        self
    }

    /// Handle message `M` with the plain function `handler`, which receives the chain's
    /// output context once the middleware ran; see [`SyncHandler`].
    pub fn on_sync<M: Message>(mut self, handler: impl SyncHandler<M, Ch::Out, C::State>) -> Self {
        let route = TypedRoute::<M, _, Ch>::new(Plain(handler), self.chain.clone());
        insert(&mut self.router.routes, M::NAME, Arc::new(route));
        self
    }

    /// A nested scope: `middleware` runs after this scope's chain.
    pub fn scope<Mw, F>(self, middleware: Mw, f: F) -> Self
    where
        Mw: Middleware<Ch::Out, C::State>,
        F: FnOnce(Scope<C, Then<Ch, Mw>>) -> Scope<C, Then<Ch, Mw>>,
    {
        let chain = self.chain;
        let inner = Scope {
            router: self.router,
            chain: Arc::new(Then(chain.clone(), middleware)),
        };
        Scope {
            router: f(inner).router,
            chain,
        }
    }
}
