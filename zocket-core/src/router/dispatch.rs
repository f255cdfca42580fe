//! The pure dispatcher: one text frame in, effects (an error frame, or a handler's
//! future) out, no IO.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use smol_str::SmolStr;
use tokio::time::Instant;

use super::Router;
use crate::context::Context;
use crate::cx::Cx;
use crate::error::{CodeOnly, Reject, log_internal};
use crate::protocol::{self, FrameError};
use crate::stats::inc;

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
