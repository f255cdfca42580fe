//! The middleware chain of a scope, typed: [`Root`] (none) or [`Then`] (a chain and one
//! more middleware), from the router's context to the handler's.

use std::future::Future;
use std::sync::Arc;

use super::middleware::{Input, Middleware};
use crate::cx::Cx;
use crate::error::Reject;

/// A chain of middleware from the router's context `C` to the handler's context.
/// Built by [`crate::Router::scope`]; not implemented by users.
pub trait Chain<C, S>: Send + Sync + 'static + sealed::Sealed {
    /// The context after the whole chain.
    type Out: Send + Sync + 'static;
    /// The handler's context without running anything, when the chain is empty
    /// ([`Root`]: `Ok`, the same handle); else the context back (`Err`).
    #[doc(hidden)]
    fn direct(cx: Cx<C, S>) -> Result<Cx<Self::Out, S>, Cx<C, S>>;
    #[doc(hidden)]
    fn apply<'a>(
        &'a self,
        cx: Cx<C, S>,
        input: &'a Input<'a>,
    ) -> impl Future<Output = Result<Cx<Self::Out, S>, Reject>> + Send + 'a;
}

/// The empty chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Root;

/// A chain followed by one more middleware.
#[derive(Debug)]
pub struct Then<P, M>(pub(crate) Arc<P>, pub(crate) M);

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Root {}
    impl<P, M> Sealed for super::Then<P, M> {}
}

impl<C: Send + Sync + 'static, S: Send + Sync + 'static> Chain<C, S> for Root {
    type Out = C;
    fn direct(cx: Cx<C, S>) -> Result<Cx<C, S>, Cx<C, S>> {
        Ok(cx)
    }
    #[allow(clippy::manual_async_fn)]
    fn apply<'a>(
        &'a self,
        cx: Cx<C, S>,
        _: &'a Input<'a>,
    ) -> impl Future<Output = Result<Cx<C, S>, Reject>> + Send + 'a {
        async move { Ok(cx) }
    }
}

impl<C, S, P, M> Chain<C, S> for Then<P, M>
where
    C: Send + Sync + 'static,
    S: Send + Sync + 'static,
    P: Chain<C, S>,
    M: Middleware<P::Out, S>,
{
    type Out = M::Out;
    fn direct(cx: Cx<C, S>) -> Result<Cx<M::Out, S>, Cx<C, S>> {
        Err(cx)
    }
    #[allow(clippy::manual_async_fn)]
    fn apply<'a>(
        &'a self,
        cx: Cx<C, S>,
        input: &'a Input<'a>,
    ) -> impl Future<Output = Result<Cx<M::Out, S>, Reject>> + Send + 'a {
        async move {
            let prev = self.0.apply(cx, input).await?;
            let out = self.1.run(&prev, input).await?;
            Ok(prev.narrow(out))
        }
    }
}
