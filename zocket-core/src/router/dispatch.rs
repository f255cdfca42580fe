//! The pure dispatcher: one text frame in, effects (an error frame, or a handler's
//! future) out, no IO.

use std::any::TypeId;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use smol_str::SmolStr;
use tokio::time::Instant;
use tracing::Span;

use super::Router;
use crate::context::Context;
use crate::cx::{Conn, Cx};
use crate::error::{CodeOnly, Reject, log_internal};
use crate::ids::ClientId;
use crate::protocol::{self, FrameError, Text};
use crate::stats::{RpcDone, Tally};

/// What one dispatched message leaves for its connection's engine to queue and count:
/// its reply or error frame (the engine writes it without taking the queue's lock), and
/// whether the error counts toward the flood limit or came from a panic.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// The reply (`__rpc_res`) or the error frame (`__rpc_err` / `__error`), if any.
    pub(crate) frame: Option<Text>,
    /// The error is the client's (`BAD_REQUEST`, `NOT_FOUND`, `INVALID_INPUT`): it counts
    /// toward the protocol-error flood limit.
    pub(crate) protocol_error: bool,
    /// The handler panicked (answered `INTERNAL`).
    pub(crate) panicked: bool,
    /// The message was an RPC of a route, answered (for its metrics).
    pub(crate) rpc: Option<RpcDone>,
}

impl Answer {
    /// The error frame of a failed message: `__rpc_err` for an RPC, else `__error`.
    fn error(kind: Option<&str>, rpc_id: Option<&str>, err: &Reject) -> Self {
        let frame = match rpc_id {
            Some(id) => protocol::encode_rpc_err(id, err),
            None => protocol::encode_error(kind, err),
        };
        Self {
            frame: Some(frame),
            protocol_error: err.is_protocol_error(),
            ..Self::default()
        }
    }
}

/// What [`dispatch`] made of a frame.
pub(crate) enum Dispatched {
    /// Answered on the spot (a refusal), or nothing to answer.
    Answered(Answer),
    /// The handler runs: the future answers when it completes.
    Started(BoxFuture<'static, Answer>),
}

/// The pure dispatcher: decode one text frame, look up its route, validate its input
/// and start its handler. Every failure is answered with the right error frame. Returns
/// the handler's future when there is work left to do; it owns no IO, the caller
/// decides how to poll it and queues what it answers. `now` is when the frame was read:
/// an RPC's duration is measured from it. The message is counted in `tally`.
pub(crate) fn dispatch<C: Context>(
    router: &Router<C>,
    cx: &Cx<C, C::State>,
    text: &str,
    now: Instant,
    handler_timeout: Option<Duration>,
    tally: &mut Tally,
) -> Dispatched {
    // The common shape by the fast path, which only starts handlers: a frame it reads
    // but that is not started (no such route, input refused, or a payload that is not
    // one JSON value, see `protocol::scan`) is decoded again by the full decoder, which
    // decides the answer exactly (`BAD_REQUEST` for invalid JSON, not `NOT_FOUND` or
    // `INVALID_INPUT`).
    let mut refused = None;
    if let Some(f) = protocol::scan_client_frame(text) {
        if let Some((&name, route)) = router.routes.get_key_value(f.kind) {
            let run = Run {
                name,
                rpc: f.rpc_id,
                arrived: now,
                handler_timeout,
            };
            match route.start(cx.clone(), f.payload, run) {
                Ok(started) => {
                    tally.message_in(Some(name));
                    return started;
                }
                Err(rej) => {
                    refused = Some(Refused {
                        name,
                        payload: f.payload,
                        rpc_id: f.rpc_id,
                        rej,
                    })
                }
            }
        }
    }
    dispatch_full(router, cx, text, now, handler_timeout, refused, tally)
}

/// The fast path's refusal of a frame's input, as it read the frame.
struct Refused<'a> {
    name: &'static str,
    payload: Option<&'a str>,
    rpc_id: Option<&'a str>,
    rej: Reject,
}

/// [`dispatch`] by the full decoder: every frame the fast path did not start, and the
/// answer to every refusal (out of line: the common path does not run it). When the
/// fast path read the frame exactly as the full decoder does and its input was refused,
/// that refusal is the answer: the input is not decoded again.
#[inline(never)]
fn dispatch_full<C: Context>(
    router: &Router<C>,
    cx: &Cx<C, C::State>,
    text: &str,
    now: Instant,
    handler_timeout: Option<Duration>,
    refused: Option<Refused<'_>>,
    tally: &mut Tally,
) -> Dispatched {
    let conn = cx.conn();
    let f = match protocol::decode_client_frame(text) {
        Ok(f) => f,
        Err(e) => {
            tally.message_in(None);
            return Dispatched::Answered(malformed(conn, &e));
        }
    };
    let (kind, rpc_id) = (&*f.kind, f.rpc_id.as_deref());
    let Some((&name, route)) = router.routes.get_key_value(kind) else {
        tally.message_in(None);
        tracing::debug!(client_id = %conn.id, message = %crate::redact::truncate(kind, 64), "unknown message type");
        return Dispatched::Answered(Answer::error(
            Some(kind),
            rpc_id,
            &Reject::not_found(format!("no message named `{kind}`")),
        ));
    };
    tally.message_in(Some(name));
    let payload = f.payload.map(|p| p.get());
    let started = match refused {
        Some(r) if r.name == name && r.payload == payload && r.rpc_id == rpc_id => Err(r.rej),
        _ => route.start(
            cx.clone(),
            payload,
            Run {
                name,
                rpc: rpc_id,
                arrived: now,
                handler_timeout,
            },
        ),
    };
    match started {
        Ok(started) => started,
        Err(rej) => {
            log_internal(&rej, "validate");
            tracing::debug!(client_id = %conn.id, message = name, code = %CodeOnly(&rej), "input rejected");
            Dispatched::Answered(Answer::error(Some(name), rpc_id, &rej))
        }
    }
}

/// Answer a frame that is not a valid client frame (`BAD_REQUEST`).
fn malformed(conn: &Conn, e: &FrameError) -> Answer {
    let rpc_id = match e {
        FrameError::MissingType { rpc_id } => rpc_id.as_deref(),
        _ => None,
    };
    tracing::debug!(client_id = %conn.id, error = %e, "malformed frame");
    Answer::error(None, rpc_id, &Reject::bad_request(e.to_string()))
}

/// What happens around a route's handler once its input is valid: which message it is,
/// the RPC id to answer (if any, borrowed from the frame), when the frame arrived and the
/// handler's time limit.
pub(super) struct Run<'a> {
    pub(super) name: &'static str,
    pub(super) rpc: Option<&'a str>,
    pub(super) arrived: Instant,
    pub(super) handler_timeout: Option<Duration>,
}

/// The span of one message (made while its connection's id is at hand, before the
/// handle moves into the handler). When no subscriber wants DEBUG anywhere (one load of
/// the global level), none is made, and the span's own code stays out of the way.
#[inline(always)]
pub(super) fn span(id: &ClientId, run: &Run<'_>) -> Span {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        message_span(id, run)
    } else {
        Span::none()
    }
}

#[inline(never)]
fn message_span(id: &ClientId, run: &Run<'_>) -> Span {
    tracing::debug_span!("message", client_id = %id, message = run.name, rpc_id = run.rpc.map(|r| crate::redact::truncate(r, 64)).as_deref())
}

/// The future of one dispatched message, in one allocation with the route's own
/// future (middleware chain, handler), which `work` makes when first polled (in place,
/// rather than moved in): the handler's time limit, its panics, the reply's encoding
/// (with its own copy of the RPC id) or the error frame, and what the RPC's metrics
/// record (its outcome and arrival), inside the message's span (if it has one). It
/// holds no handle of the connection: what it answers is its output, which the
/// connection's engine queues.
pub(super) fn finish<F, W, O>(span: Span, run: Run<'_>, work: F) -> BoxFuture<'static, Answer>
where
    F: FnOnce() -> W + Send + 'static,
    W: Future<Output = Result<O, Reject>> + Send + 'static,
    O: Serialize + 'static,
{
    let Run {
        name,
        rpc,
        arrived,
        handler_timeout,
    } = run;
    // Inline for ids up to 23 bytes: no allocation for the usual short ids.
    let rpc = rpc.map(SmolStr::new);
    // The common path (a reply or nothing) is kept short: what else can happen (an
    // error, a panic, a time limit) is in functions of its own, out of the way of the
    // code every message runs.
    let body = async move {
        let rpc_id = rpc.as_deref();
        let mut guarded = pin!(
            AssertUnwindSafe(async move { reply(name, rpc_id, &work().await?) }).catch_unwind()
        );
        let outcome = match handler_timeout {
            None => guarded.await,
            Some(limit) => within(limit, guarded.as_mut()).await,
        };
        conclude(name, rpc_id, arrived, outcome)
    };
    // Without a span (no subscriber wants DEBUG) the body runs as it is: entering and
    // leaving a disabled span on every poll, and dropping it, is work for nothing.
    if span.is_none() {
        Box::pin(body)
    } else {
        Box::pin(tracing::Instrument::instrument(body, span))
    }
}

/// The answer of a message whose handler is a plain function ([`SyncHandler`]), run
/// now, on the reading task, inside the message's span (if it has one): what [`finish`]
/// does around an async handler, without a future (no allocation, nothing to poll).
/// There is no time limit: a call cannot be interrupted.
///
/// [`SyncHandler`]: super::SyncHandler
pub(super) fn answer_now<O>(
    span: Span,
    run: Run<'_>,
    call: impl FnOnce() -> Result<O, Reject>,
) -> Answer
where
    O: Serialize + 'static,
{
    let _entered = (!span.is_none()).then(|| span.enter());
    let (name, rpc_id) = (run.name, run.rpc);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| reply(name, rpc_id, &call()?)));
    conclude(name, rpc_id, run.arrived, outcome)
}

/// The answer to a message whose handler ran to `outcome`, and its RPC's metrics.
#[inline(always)]
fn conclude(
    name: &'static str,
    rpc_id: Option<&str>,
    arrived: Instant,
    outcome: Outcome,
) -> Answer {
    // The duration ends where the engine queues the answer (see `Tally::settle`).
    let rpc = rpc_id.map(|_| RpcDone {
        name,
        ok: matches!(outcome, Ok(Ok(_))),
        arrived,
    });
    let answer = match outcome {
        Ok(Ok(frame)) => Answer {
            frame,
            ..Answer::default()
        },
        Ok(Err(rej)) => rejected(name, rpc_id, &rej),
        Err(panic) => panicked(name, rpc_id, &*panic),
    };
    Answer { rpc, ..answer }
}

/// What a handler's future yields inside the message's future: the reply frame (if
/// any), the refusal, or the panic.
type Outcome = std::thread::Result<Result<Option<Text>, Reject>>;

/// `guarded` within the handler time limit `limit` (boxed, and polled through a
/// pointer: a server without a limit holds no timer, and its messages do not run this
/// code).
fn within<'a>(
    limit: Duration,
    guarded: std::pin::Pin<&'a mut (dyn Future<Output = Outcome> + Send)>,
) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        tokio::time::timeout(limit, guarded)
            .await
            .unwrap_or_else(|_| {
                Ok(Err(Reject::timeout(format!(
                    "handler did not finish within {limit:?}"
                ))))
            })
    })
}

/// The answer to a message its handler (or middleware) refused.
#[cold]
#[inline(never)]
fn rejected(name: &str, rpc_id: Option<&str>, rej: &Reject) -> Answer {
    log_internal(rej, "message");
    tracing::debug!(code = %CodeOnly(rej), "message rejected");
    Answer::error(Some(name), rpc_id, rej)
}

/// The answer to a message whose handler panicked (`INTERNAL`; the panic's text is
/// logged, never sent).
#[cold]
#[inline(never)]
fn panicked(name: &str, rpc_id: Option<&str>, panic: &(dyn std::any::Any + Send)) -> Answer {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(panic = %text, "handler panicked; answered INTERNAL");
    Answer {
        panicked: true,
        ..Answer::error(Some(name), rpc_id, &Reject::internal())
    }
}

/// The reply frame of an RPC (`rpc_id: Some`) with this output, or none.
fn reply<O: Serialize + 'static>(
    name: &str,
    rpc_id: Option<&str>,
    output: &O,
) -> Result<Option<Text>, Reject> {
    let Some(rpc_id) = rpc_id else {
        return Ok(None);
    };
    let frame = if TypeId::of::<O>() == TypeId::of::<()>() {
        protocol::encode_rpc_res::<()>(rpc_id, None)
    } else {
        protocol::encode_rpc_res(rpc_id, Some(output))
    };
    frame.map(Some).map_err(|e| unserialisable(name, &e))
}

/// An RPC's output that did not serialise: logged, answered `INTERNAL`.
#[cold]
#[inline(never)]
fn unserialisable(name: &str, e: &serde_json::Error) -> Reject {
    tracing::error!(message = name, error = %e, "RPC output failed to serialise");
    Reject::internal()
}
