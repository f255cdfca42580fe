//! The [`Handler`]: what a message's handler is, an async function of `(Cx, input)`;
//! and the [`SyncHandler`], a plain function of the same.

use std::future::Future;

use crate::contract::Message;
use crate::cx::Cx;
use crate::error::Reject;

/// An async function (or closure) handling message `M` with context `C` and application
/// state `S`: `async fn(Cx<C, S>, M::Input) -> Result<M::Output, Reject>`.
///
/// There is one fixed signature, so there are no extractor puzzles: the context type
/// is the router's, or inside a [`Router::scope`](crate::Router::scope) the last middleware's `Out`. The error
/// type is always [`Reject`], so `?` works on any `std::error::Error` (answered
/// `INTERNAL`, logged on the server) and an inline closure needs no type hint:
///
/// ```
/// # use zocket_core::{Connect, Context, Message, Reject, Router};
/// # struct User;
/// # impl Context for User {
/// #     type Headers = serde_json::Value;
/// #     type State = ();
/// #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
/// # }
/// pub enum Parse {}
/// impl Message for Parse { const NAME: &'static str = "parse"; type Input = String; type Output = i64; }
///
/// let router = Router::<User>::new().on::<Parse>(|_cx, text: String| async move {
///     let n: i64 = text.trim().parse()?; // a ParseIntError becomes INTERNAL
///     Ok(n)
/// });
/// # let _ = router;
/// ```
///
/// The closure's input needs its type (`text: String`) when its body calls methods on
/// it; the context argument `_cx` / `cx: Cx<User>` likewise when it is used.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler for message `{M}` with context `Cx<{C}, {S}>`",
    label = "expected `async fn(Cx<{C}, {S}>, <{M} as Message>::Input) -> Result<<{M} as Message>::Output, Reject>`",
    note = "the input type must be `<{M} as Message>::Input`, the output `<{M} as Message>::Output`, and the error `Reject` (`?` converts any `std::error::Error`)",
    note = "inside `scope(middleware, ..)` the handler receives the middleware's `Out` context, not the router's"
)]
pub trait Handler<M: Message, C, S = ()>: Send + Sync + 'static {
    /// The handler's future.
    type Future: Future<Output = Result<M::Output, Reject>> + Send + 'static;
    /// Run the handler.
    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Self::Future;
}

impl<M, C, S, F, Fut> Handler<M, C, S> for F
where
    M: Message,
    F: Fn(Cx<C, S>, M::Input) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Output, Reject>> + Send + 'static,
{
    type Future = Fut;
    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Self::Future {
        (self)(cx, input)
    }
}

/// A plain (not async) function or closure handling message `M`:
/// `fn(Cx<C, S>, M::Input) -> Result<M::Output, Reject>`, registered with
/// [`Router::on_sync`](crate::Router::on_sync) (or [`Scope::on_sync`](crate::Scope::on_sync)).
///
/// For a handler that has nothing to wait for (it computes, reads state, sends to
/// clients or rooms, all of which `Cx` does without waiting): it is called on the
/// connection's task as soon as its message is read, and its reply is queued at once.
/// Without middleware there is no future to allocate and poll, which is most of the
/// framework's own work per message. Middleware, when the route has any, runs first,
/// as for an async handler.
///
/// It must not block: a call cannot be interrupted, so the server's handler timeout
/// does not apply, and the connection reads nothing else while it runs. Anything that
/// waits (IO, a lock held across work, a timer) belongs in an async [`Handler`].
/// Panics, errors and `?` are answered as for an async handler.
///
/// ```
/// # use zocket_core::{Connect, Context, Cx, Message, Reject, Router};
/// # struct User;
/// # impl Context for User {
/// #     type Headers = serde_json::Value;
/// #     type State = ();
/// #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
/// # }
/// pub enum Add {}
/// impl Message for Add { const NAME: &'static str = "add"; type Input = (i64, i64); type Output = i64; }
///
/// let router = Router::<User>::new().on_sync::<Add>(|_cx, (a, b): (i64, i64)| {
///     a.checked_add(b).ok_or_else(|| Reject::bad_request("overflow"))
/// });
/// # let _ = router;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a plain handler for message `{M}` with context `Cx<{C}, {S}>`",
    label = "expected `fn(Cx<{C}, {S}>, <{M} as Message>::Input) -> Result<<{M} as Message>::Output, Reject>` (not async: an async handler goes to `on`)",
    note = "inside `scope(middleware, ..)` the handler receives the middleware's `Out` context, not the router's"
)]
pub trait SyncHandler<M: Message, C, S = ()>: Send + Sync + 'static {
    /// Run the handler.
    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Result<M::Output, Reject>;
}

impl<M, C, S, F> SyncHandler<M, C, S> for F
where
    M: Message,
    F: Fn(Cx<C, S>, M::Input) -> Result<M::Output, Reject> + Send + Sync + 'static,
{
    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Result<M::Output, Reject> {
        (self)(cx, input)
    }
}
