//! One registered route, its types erased: decoding and validating the payload, the
//! middleware chain, the handler and the reply's encoding.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use serde::de::DeserializeOwned;

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

pub(super) struct TypedRoute<M, H, Ch> {
    /// The handler and its middleware chain, behind one reference count (each message's
    /// future holds one).
    parts: Arc<(H, Arc<Ch>)>,
    _m: PhantomData<fn() -> M>,
}

impl<M, H, Ch> TypedRoute<M, H, Ch> {
    pub(super) fn new(handler: H, chain: Arc<Ch>) -> Self {
        Self {
            parts: Arc::new((handler, chain)),
            _m: PhantomData,
        }
    }
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
        payload: Option<&str>,
        run: Run<'_>,
    ) -> Result<Dispatched, Reject> {
        let input: M::Input = decode_input(payload)?;
        M::validate(&input)?;
        let span = span(&cx.conn().id, &run);
        match Ch::direct(cx) {
            // No middleware: the handler's future is made here (a panic in making it is
            // raised again inside the message's future, and answered as any other), and
            // the message's future holds no reference to the route.
            Ok(cx) => {
                let handler = &self.parts.0;
                let made = catch_unwind(AssertUnwindSafe(|| handler.call(cx, input)));
                let work = move || async move {
                    match made {
                        Ok(handled) => handled.await,
                        Err(panic) => resume_unwind(panic),
                    }
                };
                Ok(Dispatched::Started(finish(span, run, work)))
            }
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

/// A route whose handler is a plain function ([`SyncHandler`]).
pub(super) struct TypedSyncRoute<M, H, Ch> {
    /// The handler and its middleware chain, behind one reference count (the future of
    /// a message that runs middleware holds one).
    parts: Arc<(H, Arc<Ch>)>,
    _m: PhantomData<fn() -> M>,
}

impl<M, H, Ch> TypedSyncRoute<M, H, Ch> {
    pub(super) fn new(handler: H, chain: Arc<Ch>) -> Self {
        Self {
            parts: Arc::new((handler, chain)),
            _m: PhantomData,
        }
    }
}

impl<C, S, M, H, Ch> ErasedRoute<C, S> for TypedSyncRoute<M, H, Ch>
where
    C: Send + Sync + 'static,
    S: Send + Sync + 'static,
    M: Message,
    Ch: Chain<C, S>,
    H: SyncHandler<M, Ch::Out, S>,
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
            // No middleware: answered now, with no future.
            Ok(cx) => {
                let handler = &self.parts.0;
                Ok(Dispatched::Answered(answer_now(span, run, || {
                    handler.call(cx, input)
                })))
            }
            // Middleware may wait: the message's future runs the chain, then the call.
            Err(cx) => {
                let parts = self.parts.clone();
                let work = move || async move {
                    let (handler, chain) = &*parts;
                    let narrowed = chain.apply(cx, &Input::of::<M>(&input)).await?;
                    handler.call(narrowed, input)
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
