//! Incoming frames: replies to pending calls, `__welcome`, `__error` and events, routed
//! into channels and queues. Nothing here waits: decoding into user types happens in the
//! caller's (or subscriber's) task.

use std::sync::Arc;

use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::{debug, warn};
use zocket_core::ClientId;
use zocket_core::protocol::{
    ERROR, RPC_ERR, RPC_RES, ServerFrame, WELCOME, WireError, decode_server_frame,
};

use crate::calls::Reply;
use crate::shared::Shared;

/// Route one incoming frame; `Some(reason)` when it ends the connection. Never waits.
pub(crate) fn route(shared: &Shared, msg: WsMessage) -> Option<String> {
    match msg {
        WsMessage::Text(text) => route_text(shared, text.as_str()),
        WsMessage::Binary(b) => debug!(len = b.len(), "ignoring a binary frame"),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
        WsMessage::Close(frame) => {
            return Some(match frame {
                Some(f) => format!("closed by the server ({} {})", u16::from(f.code), f.reason),
                None => "closed by the server".to_owned(),
            });
        }
    }
    None
}

fn route_text(shared: &Shared, text: &str) {
    let frame: ServerFrame<'_> = match decode_server_frame(text) {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "ignoring an undecodable frame from the server");
            return;
        }
    };
    match &*frame.kind {
        RPC_RES | RPC_ERR => {
            let Some(id) = frame.rpc_id.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                warn!(kind = %frame.kind, "ignoring a reply without a known rpcId");
                return;
            };
            let reply = if frame.kind == RPC_RES {
                Reply::Ok(frame.payload.map(ToOwned::to_owned))
            } else {
                Reply::Err(frame.error.unwrap_or_else(|| {
                    WireError::new(zocket_core::codes::INTERNAL, "__rpc_err without an error")
                }))
            };
            if !shared.calls.answer(id, reply) {
                debug!(id, "reply to an RPC nobody waits for (timed out?)");
            }
        }
        WELCOME => {
            #[derive(Deserialize)]
            struct Welcome {
                #[serde(rename = "clientId")]
                client_id: ClientId,
            }
            match frame
                .payload
                .map(|p| serde_json::from_str::<Welcome>(p.get()))
            {
                Some(Ok(w)) => {
                    shared.client_id_tx.send_replace(Some(w.client_id));
                }
                _ => warn!("ignoring a __welcome without a clientId"),
            }
        }
        ERROR => {
            if let Some(e) = &frame.error {
                debug!(code = %e.code, message = %e.message, kind = ?e.kind, "__error from the server");
            }
            if shared.registry.has(ERROR) {
                // The subscription decodes the `error` object; take its raw text.
                #[derive(Deserialize)]
                struct Raw<'a> {
                    #[serde(borrow)]
                    error: Option<&'a serde_json::value::RawValue>,
                }
                if let Ok(Raw { error: Some(raw) }) = serde_json::from_str::<Raw<'_>>(text) {
                    shared.registry.deliver(ERROR, &Arc::from(raw.get()));
                }
            }
        }
        name => {
            if shared.registry.has(name) {
                let payload: Arc<str> = Arc::from(frame.payload.map_or("null", |p| p.get()));
                shared.registry.deliver(name, &payload);
            }
        }
    }
}
