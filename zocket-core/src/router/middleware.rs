//! Middleware: code that runs before a handler and narrows the context's type.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::contract::Message;
use crate::cx::Cx;
use crate::error::Reject;

/// A step before the handler: sees the context and the already-validated input, and
/// either yields a refined context `Out` or rejects.
///
/// The handler behind it receives `Cx<Out>`, so what the middleware proved ("the user
/// is an admin") is part of the handler's type. Middleware composes with
/// [`crate::Router::scope`] and nested scopes; each sees what the previous produced.
///
/// `S` is the application state ([`Context::State`](crate::Context::State), `()` by
/// default), reachable as [`cx.state()`](Cx::state). A middleware that works with any
/// state is generic over it: `impl<S: Send + Sync + 'static> Middleware<User, S> for ..`.
///
/// ```
/// use zocket_core::{Cx, Input, Middleware, Reject};
///
/// struct User { name: String, admin: bool }
/// struct Admin { name: String }
///
/// struct RequireAdmin;
/// impl Middleware<User> for RequireAdmin {
///     type Out = Admin;
///     async fn run(&self, cx: &Cx<User>, _input: &Input<'_>) -> Result<Admin, Reject> {
///         if cx.admin { Ok(Admin { name: cx.name.clone() }) } else { Err(Reject::forbidden("admins only")) }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a middleware for context `{In}`",
    label = "this middleware does not accept `Cx<{In}>`",
    note = "implement `Middleware<{In}> for {Self}`; inside a scope the context is the previous middleware's `Out`"
)]
pub trait Middleware<In, S = ()>: Send + Sync + 'static {
    /// The refined context the next step receives.
    type Out: Send + Sync + 'static;

    /// Narrow `cx` or reject the message.
    fn run(
        &self,
        cx: &Cx<In, S>,
        input: &Input<'_>,
    ) -> impl Future<Output = Result<Self::Out, Reject>> + Send;
}

impl<In, S, M: Middleware<In, S>> Middleware<In, S> for Arc<M> {
    type Out = M::Out;
    fn run(
        &self,
        cx: &Cx<In, S>,
        input: &Input<'_>,
    ) -> impl Future<Output = Result<Self::Out, Reject>> + Send {
        (**self).run(cx, input)
    }
}

/// The validated input of the message being handled, as a middleware sees it. A
/// middleware shared by many messages can look at it typed ([`Input::get`]) when it
/// knows the message, or as JSON ([`Input::to_json`]) when it does not.
pub struct Input<'a> {
    name: &'static str,
    value: &'a (dyn Any + Send + Sync),
    to_json: fn(&(dyn Any + Send + Sync)) -> Result<Value, serde_json::Error>,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("message", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Input<'a> {
    pub(crate) fn of<M: Message>(value: &'a M::Input) -> Self {
        fn to_json<M: Message>(v: &(dyn Any + Send + Sync)) -> Result<Value, serde_json::Error> {
            match v.downcast_ref::<M::Input>() {
                Some(v) => serde_json::to_value(v),
                None => Ok(Value::Null),
            }
        }
        Self {
            name: M::NAME,
            value,
            to_json: to_json::<M>,
        }
    }

    /// The name of the message being handled.
    pub fn message_name(&self) -> &'static str {
        self.name
    }

    /// The typed input when the message is `M`.
    pub fn get<M: Message>(&self) -> Option<&'a M::Input> {
        if self.name == M::NAME {
            self.value.downcast_ref::<M::Input>()
        } else {
            None
        }
    }

    /// The input downcast to a concrete type.
    pub fn downcast<T: Any>(&self) -> Option<&'a T> {
        self.value.downcast_ref::<T>()
    }

    /// The validated input (defaults filled in) as JSON.
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        (self.to_json)(self.value)
    }
}

/// A chain of middleware from the router's context `C` to the handler's context.
/// Built by [`crate::Router::scope`]; not implemented by users.
pub trait Chain<C, S>: Send + Sync + 'static + sealed::Sealed {
    /// The context after the whole chain.
    type Out: Send + Sync + 'static;
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
