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
