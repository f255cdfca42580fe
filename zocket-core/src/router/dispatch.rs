//! The pure dispatcher: one text frame in, effects (an error frame, or a handler's
//! future) out, no IO.

use std::any::TypeId;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use smol_str::SmolStr;
use tokio::time::Instant;

use super::Router;
use crate::context::Context;
use crate::cx::{Conn, Cx};
use crate::error::{CodeOnly, Reject, log_internal};
use crate::protocol::{self, FrameError, Text};
use crate::stats::inc;

/// The pure dispatcher: decode one text frame, look up its route, validate its input
/// and start its handler. Every failure becomes the right error frame in the
/// connection's queue. Returns the handler's future when there is work left to do; it
/// owns no IO, the caller decides how to poll it. `now` is when the frame was read: an
/// RPC's duration is measured from it.
pub(crate) fn dispatch<C: Context>(
    router: &Router<C>,
    cx: &Cx<C, C::State>,
    text: &str,
    now: Instant,
    handler_timeout: Option<Duration>,
) -> Option<BoxFuture<'static, ()>> {
    let conn = cx.conn();
    // The common shape by the fast path; the rest, and the answer to any frame the
    // fast path read but that is not dispatched, by the full decoder (see
    // `protocol::scan`: it checks the payload's JSON).
    let (kind, payload, rpc_id, checked) = match protocol::scan_client_frame(text) {
        Some(f) => (
            Cow::Borrowed(f.kind),
            f.payload,
            f.rpc_id.map(Cow::Borrowed),
            false,
        ),
        None => match protocol::decode_client_frame(text) {
            Ok(f) => (f.kind, f.payload.map(|p| p.get()), f.rpc_id, true),
            Err(e) => {
                malformed(conn, &e);
                return None;
            }
        },
    };
    // A frame the fast path read is answered as malformed if the full decoder refuses it.
    let refused = |checked: bool| {
        let e = if checked {
            None
        } else {
            protocol::decode_client_frame(text).err()
        };
        if let Some(e) = &e {
            malformed(conn, e);
        }
        e.is_some()
    };
    let rpc_id = rpc_id.as_deref();
    let Some((&name, route)) = router.routes.get_key_value(&*kind) else {
        if refused(checked) {
            return None;
        }
        conn.stats.message_in(None);
        tracing::debug!(client_id = %conn.id, message = %crate::redact::truncate(&kind, 64), "unknown message type");
        conn.fail(
            Some(&kind),
            rpc_id,
            &Reject::not_found(format!("no message named `{kind}`")),
        );
        return None;
    };
    let run = Run {
        name,
        // Inline for ids up to 23 bytes: no allocation for the usual short ids.
        rpc: rpc_id.map(SmolStr::new),
        arrived: now,
        handler_timeout,
    };
    match route.start(cx.clone(), payload, run) {
        Ok(fut) => {
            conn.stats.message_in(Some(name));
            Some(fut)
        }
        Err(rej) => {
            if refused(checked) {
                return None;
            }
            conn.stats.message_in(Some(name));
            log_internal(&rej, "validate");
            tracing::debug!(client_id = %conn.id, message = name, code = %CodeOnly(&rej), "input rejected");
            conn.fail(Some(name), rpc_id, &rej);
            None
        }
    }
}

/// Answer a frame that is not a valid client frame (`BAD_REQUEST`).
fn malformed(conn: &Conn, e: &FrameError) {
    conn.stats.message_in(None);
    let rpc_id = match e {
        FrameError::MissingType { rpc_id } => rpc_id.as_deref(),
        _ => None,
    };
    tracing::debug!(client_id = %conn.id, error = %e, "malformed frame");
    conn.fail(None, rpc_id, &Reject::bad_request(e.to_string()));
}

/// What happens around a route's handler once its input is valid: which message it is,
/// the RPC id to answer (if any), when the frame arrived and the handler's time limit.
pub(super) struct Run {
    pub(super) name: &'static str,
    pub(super) rpc: Option<SmolStr>,
    pub(super) arrived: Instant,
    pub(super) handler_timeout: Option<Duration>,
}

/// The future of one dispatched message, in one allocation with the route's own
/// future (middleware chain, handler), which `work` makes when first polled (in place,
/// rather than moved in): the handler's time limit, its panics, the reply's encoding
/// (with `run.rpc`, the one copy of the RPC id) or the error frame, and the RPC's
/// metrics, inside the message's span.
pub(super) fn finish<F, W, O>(conn: Arc<Conn>, run: Run, work: F) -> BoxFuture<'static, ()>
where
    F: FnOnce() -> W + Send + 'static,
    W: Future<Output = Result<O, Reject>> + Send + 'static,
    O: Serialize + 'static,
{
    let span = tracing::debug_span!("message", client_id = %conn.id, message = run.name, rpc_id = run.rpc.as_deref().map(|r| crate::redact::truncate(r, 64)).as_deref());
    Box::pin(tracing::Instrument::instrument(
        async move {
            let Run {
                name,
                rpc,
                arrived,
                handler_timeout,
            } = run;
            let rpc_id = rpc.as_deref();
            let mut guarded = pin!(
                AssertUnwindSafe(async move { reply(name, rpc_id, &work().await?) }).catch_unwind()
            );
            let outcome = match handler_timeout {
                None => guarded.await,
                // Boxed, so that the future of a server without a handler time limit
                // holds no timer.
                Some(limit) => Box::pin(tokio::time::timeout(limit, guarded.as_mut()))
                    .await
                    .unwrap_or_else(|_| {
                        Ok(Err(Reject::timeout(format!(
                            "handler did not finish within {limit:?}"
                        ))))
                    }),
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
                    conn.fail(Some(name), rpc_id, &rej);
                }
                Err(panic) => {
                    inc(&conn.stats.handler_panics);
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".into());
                    tracing::error!(panic = %text, "handler panicked; answered INTERNAL");
                    conn.fail(Some(name), rpc_id, &Reject::internal());
                }
            }
            if rpc_id.is_some() {
                crate::stats::record_rpc(name, ok, arrived.elapsed());
            }
        },
        span,
    ))
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
    frame.map(Some).map_err(|e| {
        tracing::error!(message = name, error = %e, "RPC output failed to serialise");
        Reject::internal()
    })
}
