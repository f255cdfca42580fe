//! The JSON codec: client frames decoded borrowing from the frame text, server frames
//! encoded with one allocation each (and the reverse, for clients).

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::frames::{ClientFrame, FrameError, ServerFrame};
use super::transport::Text;
use super::{ERROR, RPC_ERR, RPC_RES, VERSION, WELCOME};
use crate::error::Reject;

#[derive(Deserialize)]
struct RawClientFrame<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "rpcId", borrow, default)]
    rpc_id: Option<&'a RawValue>,
}

fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    // A string field borrows unless it contains escapes.
    let s: Cow<'_, str> = serde_json::from_str::<CowStr<'_>>(raw.get()).ok()?.0;
    Some(s)
}

#[derive(Deserialize)]
struct CowStr<'a>(#[serde(borrow)] Cow<'a, str>);

/// Decode a client frame (`{"type":..,"payload":..,"rpcId":..}`), borrowing from `text`.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame<'_>, FrameError> {
    // serde's derived struct would also accept a JSON array (`[t, p, id]`): refuse it.
    if !text.trim_start().starts_with('{') {
        return Err(FrameError::NotAnObject("expected a JSON object".into()));
    }
    let raw: RawClientFrame<'_> =
        serde_json::from_str(text).map_err(|e| FrameError::NotAnObject(e.to_string()))?;
    let rpc_id = match raw.rpc_id {
        None => None,
        Some(r) => Some(raw_str(r).ok_or(FrameError::BadRpcId)?),
    };
    let kind = match raw.kind.and_then(raw_str) {
        Some(k) => k,
        None => {
            return Err(FrameError::MissingType {
                rpc_id: rpc_id.map(Cow::into_owned),
            });
        }
    };
    // `"payload": null` and an absent payload mean the same.
    let payload = raw.payload.filter(|p| p.get() != "null");
    Ok(ClientFrame {
        kind,
        payload,
        rpc_id,
    })
}

#[derive(Serialize)]
struct EventOut<'a, P: ?Sized> {
    #[serde(rename = "type")]
    kind: &'a str,
    payload: &'a P,
}

#[derive(Serialize)]
struct RpcResOut<'a, P: ?Sized> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a P>,
    #[serde(rename = "rpcId")]
    rpc_id: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct RpcErrOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "rpcId")]
    rpc_id: &'a str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WelcomePayload<'a> {
    client_id: &'a str,
    version: &'a str,
}

/// A per-thread buffer that frames are serialised into before they are copied out.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Serialise a frame with exactly one heap allocation of exactly its size: into a reused
/// per-thread buffer first, then copied out. (`serde_json::to_string` grows a `Vec` by
/// doubling, and a `Bytes` made from a `Vec` with spare capacity allocates a shared
/// header besides: two or more allocations per reply.) The copy is of the frame only, a
/// memcpy next to the serialisation itself.
fn to_text<T: Serialize + ?Sized>(v: &T) -> Result<Text, serde_json::Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
    }
    SCRATCH.with(|cell| {
        // A `Serialize` impl that itself encodes a frame would re-enter: it gets a
        // buffer of its own.
        let Ok(mut buf) = cell.try_borrow_mut() else {
            return serde_json::to_string(v).map(Text::from);
        };
        buf.clear();
        // serde_json writes UTF-8 only (its own `to_string` relies on that too).
        let result =
            serde_json::to_writer(&mut *buf, v).map(|()| Text(Bytes::copy_from_slice(&buf)));
        if buf.capacity() > SCRATCH_KEEP {
            // Do not keep a large frame's buffer for the life of the thread.
            *buf = Vec::with_capacity(512);
        }
        result
    })
}

/// Encode an event frame `{"type":name,"payload":..}`.
pub fn encode_event<P: Serialize + ?Sized>(
    name: &str,
    payload: &P,
) -> Result<Text, serde_json::Error> {
    to_text(&EventOut {
        kind: name,
        payload,
    })
}

/// Encode an RPC result; `payload: None` omits the key (unit outputs).
pub fn encode_rpc_res<P: Serialize + ?Sized>(
    rpc_id: &str,
    payload: Option<&P>,
) -> Result<Text, serde_json::Error> {
    to_text(&RpcResOut {
        kind: RPC_RES,
        payload,
        rpc_id,
    })
}

/// Encode an `__rpc_err` frame.
pub fn encode_rpc_err(rpc_id: &str, err: &Reject) -> Text {
    let frame = RpcErrOut {
        kind: RPC_ERR,
        rpc_id,
        error: ErrorBody {
            code: err.code(),
            message: err.message(),
            kind: None,
            data: err.data(),
        },
    };
    // Strings and a `Value` always serialise.
    to_text(&frame).unwrap_or_else(|_| Text::from("{\"type\":\"__rpc_err\"}"))
}

/// Encode an `__error` frame; `kind` is the offending message type, if known.
pub fn encode_error(kind: Option<&str>, err: &Reject) -> Text {
    let frame = ErrorOut {
        kind: ERROR,
        error: ErrorBody {
            code: err.code(),
            message: err.message(),
            kind,
            data: err.data(),
        },
    };
    to_text(&frame).unwrap_or_else(|_| Text::from("{\"type\":\"__error\"}"))
}

/// Encode the `__welcome` frame.
pub fn encode_welcome(client_id: &str) -> Text {
    let frame = EventOut {
        kind: WELCOME,
        payload: &WelcomePayload {
            client_id,
            version: VERSION,
        },
    };
    to_text(&frame).unwrap_or_else(|_| Text::from("{\"type\":\"__welcome\"}"))
}

/// Encode a client → server frame (used by clients and tests).
pub fn encode_client_frame<P: Serialize + ?Sized>(
    kind: &str,
    payload: &P,
    rpc_id: Option<&str>,
) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Out<'a, P: ?Sized> {
        #[serde(rename = "type")]
        kind: &'a str,
        payload: &'a P,
        #[serde(rename = "rpcId", skip_serializing_if = "Option::is_none")]
        rpc_id: Option<&'a str>,
    }
    serde_json::to_string(&Out {
        kind,
        payload,
        rpc_id,
    })
}

/// Decode a server → client frame.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_borrowed_from_the_frame() {
        let text = r#"{"type":"a.b","payload":{"x":[1,2]},"rpcId":"7"}"#;
        let f = decode_client_frame(text).unwrap();
        let p = f.payload.unwrap().get();
        let range = text.as_ptr() as usize..text.as_ptr() as usize + text.len();
        assert!(
            range.contains(&(p.as_ptr() as usize)),
            "payload must point into the frame"
        );
        assert!(matches!(f.kind, Cow::Borrowed("a.b")));
    }

    #[test]
    fn malformed_frames() {
        assert!(matches!(
            decode_client_frame("nope"),
            Err(FrameError::NotAnObject(_))
        ));
        assert!(matches!(
            decode_client_frame("[1]"),
            Err(FrameError::NotAnObject(_))
        ));
        assert_eq!(
            decode_client_frame(r#"{"type":3,"rpcId":"9"}"#).unwrap_err(),
            FrameError::MissingType {
                rpc_id: Some("9".into())
            }
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"x","rpcId":9}"#).unwrap_err(),
            FrameError::BadRpcId
        );
        assert_eq!(
            decode_client_frame(r#"{"payload":1}"#).unwrap_err(),
            FrameError::MissingType { rpc_id: None }
        );
        let f = decode_client_frame(r#"{"type":"x","payload":null}"#).unwrap();
        assert!(f.payload.is_none());
        let f = decode_client_frame(r#"{"type":"x\u002ey"}"#).unwrap();
        assert_eq!(f.kind, "x.y");
    }

    #[test]
    fn encodings() {
        assert_eq!(
            encode_rpc_res::<()>("1", None).unwrap().as_str(),
            r#"{"type":"__rpc_res","rpcId":"1"}"#
        );
        assert_eq!(
            encode_rpc_res("1", Some(&serde_json::Value::Null))
                .unwrap()
                .as_str(),
            r#"{"type":"__rpc_res","payload":null,"rpcId":"1"}"#
        );
        let r = Reject::new("TEAPOT", "I'm a teapot")
            .with_data(serde_json::json!({"hint":"try coffee"}));
        assert_eq!(
            encode_rpc_err("2", &r).as_str(),
            r#"{"type":"__rpc_err","rpcId":"2","error":{"code":"TEAPOT","message":"I'm a teapot","data":{"hint":"try coffee"}}}"#
        );
        assert_eq!(
            encode_error(Some("x"), &Reject::not_found("no")).as_str(),
            r#"{"type":"__error","error":{"code":"NOT_FOUND","message":"no","type":"x"}}"#
        );
        assert_eq!(
            encode_welcome("abc").as_str(),
            r#"{"type":"__welcome","payload":{"clientId":"abc","version":"1"}}"#
        );
    }
}
