//! One registered route, its types erased: decoding and validating the payload, the
//! middleware chain, the handler and the reply's encoding.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tracing::Span;

use super::chain::Chain;
use super::dispatch::{Dispatched, Run, answer_now, finish, span};
use super::handler::{Handler, SyncHandler};
use super::middleware::Input;
use crate::contract::Message;
use crate::cx::Cx;
use crate::error::Reject;

/// Runs after decoding: middleware chain, handler, reply encoding.
pub(super) trait ErasedRoute<C, S>: Send + Sync {
    /// Decode and validate the payload (synchronously: the frame text is borrowed), then
    /// return the future of the rest, [`finish`]ed as `run` says, in one allocation (or,
    /// for a plain function without middleware, its answer: [`answer_now`]).
    /// `run.rpc: Some` encodes a reply frame. The payload's text may not be valid JSON
    /// yet (`protocol::scan`): decoding it checks it, and refuses it if it is not.
    fn start(
        &self,
        cx: Cx<C, S>,
        payload: Option<&str>,
        run: Run<'_>,
    ) -> Result<Dispatched, Reject>;
}

/// How a route's handler runs: [`Async`] (a [`Handler`]) or [`Plain`] (a
/// [`SyncHandler`]). Everything else about a route (decoding, validation, the span, the
/// middleware chain) is the same for both, in [`TypedRoute`].
pub(super) trait Kind<M: Message, C, S>: Send + Sync + 'static {
    /// What the handler's work is behind middleware, once the chain has run.
    type Future: Future<Output = Result<M::Output, Reject>> + Send + 'static;
    /// Run the handler behind middleware (inside the message's future).
    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Self::Future;
    /// Run the handler of a route without middleware: the message's future, or (a plain
    /// function) its answer.
    fn direct(&self, cx: Cx<C, S>, input: M::Input, span: Span, run: Run<'_>) -> Dispatched;
}

/// An async handler ([`Router::on`](super::Router::on)).
pub(super) struct Async<H>(pub(super) H);

/// A plain-function handler ([`Router::on_sync`](super::Router::on_sync)).
pub(super) struct Plain<H>(pub(super) H);

impl<M, C, S, H> Kind<M, C, S> for Async<H>
where
    M: Message,
    H: Handler<M, C, S>,
{
    type Future = H::Future;

    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Self::Future {
        self.0.call(cx, input)
    }

    fn direct(&self, cx: Cx<C, S>, input: M::Input, span: Span, run: Run<'_>) -> Dispatched {
        // The handler's future is made here (a panic in making it is raised again inside
        // the message's future, and answered as any other), and the message's future
        // holds no reference to the route.
        let made = catch_unwind(AssertUnwindSafe(|| self.0.call(cx, input)));
        let work = move || async move {
            match made {
                Ok(handled) => handled.await,
                Err(panic) => resume_unwind(panic),
            }
        };
        Dispatched::Started(finish(span, run, work))
    }
}

impl<M, C, S, H> Kind<M, C, S> for Plain<H>
where
    M: Message,
    H: SyncHandler<M, C, S>,
{
    type Future = std::future::Ready<Result<M::Output, Reject>>;

    fn call(&self, cx: Cx<C, S>, input: M::Input) -> Self::Future {
        std::future::ready(self.0.call(cx, input))
    }

    fn direct(&self, cx: Cx<C, S>, input: M::Input, span: Span, run: Run<'_>) -> Dispatched {
        // Answered now, with no future.
        Dispatched::Answered(answer_now(span, run, || self.0.call(cx, input)))
    }
}

pub(super) struct TypedRoute<M, K, Ch> {
    /// The handler and its middleware chain, behind one reference count (the future of
    /// a message that runs middleware holds one).
    parts: Arc<(K, Arc<Ch>)>,
    _m: PhantomData<fn() -> M>,
}

impl<M, K, Ch> TypedRoute<M, K, Ch> {
    pub(super) fn new(handler: K, chain: Arc<Ch>) -> Self {
        Self {
            parts: Arc::new((handler, chain)),
            _m: PhantomData,
        }
    }
}

impl<C, S, M, K, Ch> ErasedRoute<C, S> for TypedRoute<M, K, Ch>
where
    C: Send + Sync + 'static,
    S: Send + Sync + 'static,
    M: Message,
    Ch: Chain<C, S>,
    K: Kind<M, Ch::Out, S>,
{
    fn start(
        &self,
        cx: Cx<C, S>,
        payload: Option<&str>,
        run: Run<'_>,
    ) -> Result<Dispatched, Reject> {
        let input: M::Input = decode_input(payload)?;
        M::validate(&input)?;
        let span = span(&cx.conn().id, &run);
        match Ch::direct(cx) {
            Ok(cx) => Ok(self.parts.0.direct(cx, input, span, run)),
            // Middleware may wait: the message's future runs the chain, then the handler.
            Err(cx) => {
                let parts = self.parts.clone();
                let work = move || async move {
                    let (handler, chain) = &*parts;
                    let narrowed = chain.apply(cx, &Input::of::<M>(&input)).await?;
                    handler.call(narrowed, input).await
                };
                Ok(Dispatched::Started(finish(span, run, work)))
            }
        }
    }
}

/// Deserialise a payload into an input type. An absent payload is `null`; if the type
/// does not accept `null`, `{}` is tried, so all-optional inputs accept no argument.
/// When both fail, the answer names the first missing field if `{}` got that far (an
/// object input: `name: missing field`), else the type's refusal of `null`.
fn decode_input<T: DeserializeOwned>(payload: Option<&str>) -> Result<T, Reject> {
    match payload {
        Some(raw) => parse(raw),
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
    let first = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Err(e) => {
            let path = e.path().to_string();
            let (path, reason) = input_issue(&path, e.inner());
            Err(Reject::invalid_field(path, reason))
        }
        // The value itself reads (the path parse does not look past it): what follows it
        // was refused, e.g. trailing characters.
        Ok(_) => {
            let (path, reason) = input_issue(".", &first);
            Err(Reject::invalid_field(path, reason))
        }
    }
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

/// The routes by message name. The table is fixed once the server is built, and a peer
/// only looks names up in it, so a fast hash that is not collision-resistant cannot be
/// used to slow it down (a fixed table's lookups do not degrade with the keys asked).
pub(super) type Routes<C, S> =
    HashMap<&'static str, Arc<dyn ErasedRoute<C, S>>, foldhash::fast::FixedState>;

pub(super) fn insert<C, S>(
    routes: &mut Routes<C, S>,
    name: &'static str,
    route: Arc<dyn ErasedRoute<C, S>>,
) {
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
