//! The [`Router`]: handlers registered per [`Message`] type, with middleware scopes,
//! and the pure dispatcher that turns one text frame into effects.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use smol_str::SmolStr;

use crate::context::Context;
use crate::contract::Message;
use crate::cx::Cx;
use crate::error::{CodeOnly, Reject, log_internal};
use crate::middleware::{Chain, Input, Middleware, Root, Then};
use crate::protocol::{self, FrameError, Text};
use crate::stats::inc;

/// An async function (or closure) handling message `M` with context `C` and application
/// state `S`: `async fn(Cx<C, S>, M::Input) -> Result<M::Output, Reject>`.
///
/// There is one fixed signature, so there are no extractor puzzles: the context type
/// is the router's, or inside a [`Router::scope`] the last middleware's `Out`. The error
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

/// Runs after decoding: middleware chain, handler, reply encoding.
pub(crate) trait ErasedRoute<C, S>: Send + Sync {
    /// Decode and validate the payload (synchronously: the frame text is borrowed), then
    /// return the future of the rest. `rpc_id: Some` encodes a reply frame.
    fn start(
        &self,
        cx: Cx<C, S>,
        payload: Option<&RawValue>,
        rpc_id: Option<SmolStr>,
    ) -> Result<BoxFuture<'static, Result<Option<Text>, Reject>>, Reject>;
}

struct TypedRoute<M, H, Ch> {
    handler: Arc<H>,
    chain: Arc<Ch>,
    _m: PhantomData<fn() -> M>,
}

impl<C, S, M, H, Ch> ErasedRoute<C, S> for TypedRoute<M, H, Ch>
where
    C: Send + Sync + 'static,
    S: Send + Sync + 'static,
    M: Message,
    Ch: Chain<C, S>,
    H: Handler<M, Ch::Out, S>,
{
    fn start(
        &self,
        cx: Cx<C, S>,
        payload: Option<&RawValue>,
        rpc_id: Option<SmolStr>,
    ) -> Result<BoxFuture<'static, Result<Option<Text>, Reject>>, Reject> {
        let input: M::Input = decode_input(payload)?;
        M::validate(&input)?;
        let handler = self.handler.clone();
        let chain = self.chain.clone();
        Ok(Box::pin(async move {
            let narrowed = chain.apply(cx, &Input::of::<M>(&input)).await?;
            let output = handler.call(narrowed, input).await?;
            let Some(rpc_id) = rpc_id else {
                return Ok(None);
            };
            let unit = TypeId::of::<M::Output>() == TypeId::of::<()>();
            let frame = if unit {
                protocol::encode_rpc_res::<()>(&rpc_id, None)
            } else {
                protocol::encode_rpc_res(&rpc_id, Some(&output))
            };
            frame.map(Some).map_err(|e| {
                tracing::error!(message = M::NAME, error = %e, "RPC output failed to serialise");
                Reject::internal()
            })
        }))
    }
}

/// Deserialise a payload into an input type. An absent payload is `null`; if the type
/// does not accept `null`, `{}` is tried, so all-optional inputs accept no argument.
/// When both fail, the answer names the first missing field if `{}` got that far (an
/// object input: `name: missing field`), else the type's refusal of `null`.
fn decode_input<T: DeserializeOwned>(payload: Option<&RawValue>) -> Result<T, Reject> {
    match payload {
        Some(raw) => parse(raw.get()),
        None => parse("null").or_else(|first| {
            parse("{}").map_err(|second| {
                let names_a_field = second
                    .data()
                    .and_then(|d| d["issues"][0]["path"].as_str())
                    .is_some_and(|p| !p.is_empty());
                if names_a_field { second } else { first }
            })
        }),
    }
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Reject> {
    // Without tracking the path first (it costs on every field); only a refusal is
    // parsed again to say where.
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let (path, reason) = input_issue(&path, e.inner());
        Reject::invalid_field(path, reason)
    })
}

/// The field path and the reason of a payload that did not deserialise: serde's message
/// without its " at line 1 column 2" (meaningless to a caller), and for a missing field
/// the path of the field itself (serde reports it at the enclosing object): `name`,
/// `items[2].id`; empty for the payload as a whole.
fn input_issue(path: &str, error: &serde_json::Error) -> (String, String) {
    let full = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let reason = full.strip_suffix(&position).unwrap_or(&full).to_owned();
    let parent = if path == "." { "" } else { path };
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    let path = match missing {
        Some(field) if parent.is_empty() => field.to_owned(),
        Some(field) => format!("{parent}.{field}"),
        None => parent.to_owned(),
    };
    (path, reason)
}

type Routes<C, S> = HashMap<&'static str, Arc<dyn ErasedRoute<C, S>>>;

fn insert<C, S>(routes: &mut Routes<C, S>, name: &'static str, route: Arc<dyn ErasedRoute<C, S>>) {
    assert!(!name.is_empty(), "zocket: a message name must not be empty");
    assert!(
        !name.starts_with("__"),
        "zocket: message name `{name}` starts with `__`, which is reserved for the protocol"
    );
    assert!(
        routes.insert(name, route).is_none(),
        "zocket: message `{name}` is registered twice"
    );
}

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
            routes: HashMap::new(),
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
        let route = TypedRoute::<M, _, Root> {
            handler: Arc::new(handler),
            chain: Arc::new(Root),
            _m: PhantomData,
        };
        insert(&mut self.routes, M::NAME, Arc::new(route));
        self
    }

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
        let route = TypedRoute::<M, _, Ch> {
            handler: Arc::new(handler),
            chain: self.chain.clone(),
            _m: PhantomData,
        };
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

/// The pure dispatcher: decode one text frame, look up its route, validate its input
/// and start its handler. Every failure becomes the right error frame in the
/// connection's queue. Returns the handler's future when there is work left to do; it
/// owns no IO, the caller decides how to poll it.
pub(crate) fn dispatch<C: Context>(
    router: &Router<C>,
    cx: &Cx<C, C::State>,
    text: &str,
    handler_timeout: Option<Duration>,
) -> Option<BoxFuture<'static, ()>> {
    let conn = &cx.conn;
    let arrived = Instant::now();
    let frame = match protocol::decode_client_frame(text) {
        Ok(f) => f,
        Err(e) => {
            conn.stats.message_in(None);
            let rpc_id = match &e {
                FrameError::MissingType { rpc_id } => rpc_id.as_deref(),
                _ => None,
            };
            tracing::debug!(client_id = %conn.id, error = %e, "malformed frame");
            conn.fail(None, rpc_id, &Reject::bad_request(e.to_string()));
            return None;
        }
    };
    let kind = &*frame.kind;
    let rpc_id = frame.rpc_id.as_deref();
    let found = router.routes.get_key_value(kind);
    conn.stats.message_in(found.map(|(&name, _)| name));
    let Some((&name, route)) = found else {
        tracing::debug!(client_id = %conn.id, message = %crate::redact::truncate(kind, 64), "unknown message type");
        conn.fail(
            Some(kind),
            rpc_id,
            &Reject::not_found(format!("no message named `{kind}`")),
        );
        return None;
    };
    // Inline for ids up to 23 bytes: no allocation for the usual short ids.
    let rpc: Option<SmolStr> = rpc_id.map(SmolStr::new);
    let fut = match route.start(cx.clone(), frame.payload, rpc.clone()) {
        Ok(fut) => fut,
        Err(rej) => {
            log_internal(&rej, "validate");
            tracing::debug!(client_id = %conn.id, message = name, code = %CodeOnly(&rej), "input rejected");
            conn.fail(Some(name), rpc_id, &rej);
            return None;
        }
    };
    let conn = conn.clone();
    let span = tracing::debug_span!("message", client_id = %conn.id, message = name, rpc_id = rpc_id.map(|r| crate::redact::truncate(r, 64)).as_deref());
    Some(Box::pin(tracing::Instrument::instrument(
        async move {
            let guarded = AssertUnwindSafe(fut).catch_unwind();
            let outcome = match handler_timeout {
                None => guarded.await,
                Some(limit) => match tokio::time::timeout(limit, guarded).await {
                    Ok(r) => r,
                    Err(_) => Ok(Err(Reject::timeout(format!(
                        "handler did not finish within {limit:?}"
                    )))),
                },
            };
            let ok = matches!(outcome, Ok(Ok(_)));
            match outcome {
                Ok(Ok(Some(reply))) => {
                    conn.out.push_reply(reply).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(rej)) => {
                    log_internal(&rej, "message");
                    tracing::debug!(code = %CodeOnly(&rej), "message rejected");
                    conn.fail(Some(name), rpc.as_deref(), &rej);
                }
                Err(panic) => {
                    inc(&conn.stats.handler_panics);
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".into());
                    tracing::error!(panic = %text, "handler panicked; answered INTERNAL");
                    conn.fail(Some(name), rpc.as_deref(), &Reject::internal());
                }
            }
            if rpc.is_some() {
                crate::stats::record_rpc(name, ok, arrived.elapsed());
            }
        },
        span,
    )))
}
