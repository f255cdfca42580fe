//! The Zocket v1 wire protocol (plus the `__rpc_err`, `__error` and `__welcome`
//! extensions): decoding of client frames and encoding of server frames, and the
//! reverse for clients.
//!
//! Decoding borrows: [`decode_client_frame`] returns the payload as a borrowed
//! [`RawValue`] slice of the frame text, so the payload is never copied before it is
//! deserialised into the message's input type.
//!
//! ```
//! use zocket_core::protocol::{decode_client_frame, ClientFrame};
//! let text = r#"{"type":"greet","payload":{"name":"Ada"},"rpcId":"1"}"#;
//! let frame: ClientFrame<'_> = decode_client_frame(text).unwrap();
//! assert_eq!(frame.kind, "greet");
//! assert_eq!(frame.rpc_id.as_deref(), Some("1"));
//! assert_eq!(frame.payload.unwrap().get(), r#"{"name":"Ada"}"#);
//! ```
//!
//! # Limits and close codes
//!
//! | situation | behaviour |
//! |---|---|
//! | a message over [`max_message_bytes`](crate::ServerConfig::max_message_bytes) (default 1 MiB) | close `1009` `message too big` |
//! | more than [`max_protocol_errors`](crate::ServerConfig::max_protocol_errors) `BAD_REQUEST` / `NOT_FOUND` / `INVALID_INPUT` answers in [`protocol_error_window`](crate::ServerConfig::protocol_error_window) (default 100 in 10 s) | close `1008` `too many protocol errors` |
//! | more messages than [`message_rate`](crate::ServerConfig::message_rate) (a token bucket; default 10 000/s, bursts of 10 000) | close `1008` `rate limit` |
//! | the replies and self-addressed events of a client's own calls fill its outbound budget | reading from it pauses until the writer drains (backpressure); never a close, nothing dropped |
//! | events pushed by others exceed its outbound budget | close `1013` (or drop them: [`SlowConsumerPolicy`](crate::SlowConsumerPolicy)), counted and logged |
//! | no pong (nor a message; pings do not count) within [`heartbeat_timeout`](crate::ServerConfig::heartbeat_timeout) of a ping, or a ping that cannot be written within it | dropped without a close frame; the disconnect hook runs |
//! | server shutdown | close `1001` `server shutting down` after the in-flight calls finished (or [`shutdown_grace`](crate::ServerConfig::shutdown_grace) passed) and their replies were written |
//! | the client's close frame | close `1000` |
//!
//! # Backpressure and the byte budget
//!
//! Each connection has an outbound budget in bytes,
//! [`outbound_budget`](crate::ServerConfig::outbound_budget) (default 1 MiB). Every frame
//! waiting to be written is charged to it (its length plus
//! [`FRAME_OVERHEAD`](crate::connection::FRAME_OVERHEAD)) from the moment it is queued until
//! the flush that writes it completes: RPC results and errors, events, the server's pings,
//! and the pongs owed for the client's pings. Frames caused by the client's own messages
//! (its replies, its error frames, events its handlers send to itself) are never refused:
//! when they fill the budget the server stops reading that socket until the writer drains,
//! so TCP pushes back on the client. In-flight handlers may still finish and reply
//! meanwhile, so the budget is a threshold for reading, not a hard cap on own frames.
//! Events pushed by others are refused beyond the budget (or beyond
//! [`outbound_queue`](crate::ServerConfig::outbound_queue) events): the client is a slow
//! consumer. A client that pings and never reads fills the budget with pongs that cannot
//! leave; reading pauses and the heartbeat drops it.
//!
//! # Closing sequence
//!
//! Whatever the code, the server writes its close frame (after the frames queued before
//! it, except on `1013` and after the client's own close), then keeps reading and
//! discarding, oversize messages included, until the client's close frame arrives or
//! [`close_timeout`](crate::ServerConfig::close_timeout) passes (default 5 s); then it
//! closes the sink (the adapters shut the TCP write side down) and drops the connection
//! (RFC 6455 §7.1.1). A client that is still sending when the server closes therefore
//! receives the code and reason instead of a TCP reset. A heartbeat timeout or a broken
//! transport ends the connection at once, without a close frame.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Reject;

/// Frame type of an RPC result.
pub const RPC_RES: &str = "__rpc_res";
/// Frame type of an RPC error (extension).
pub const RPC_ERR: &str = "__rpc_err";
/// Frame type of a non-RPC error (extension).
pub const ERROR: &str = "__error";
/// Frame type of the first frame after the upgrade (extension).
pub const WELCOME: &str = "__welcome";
/// The protocol version this crate speaks, sent in `__welcome` and `x-zocket-version`.
pub const VERSION: &str = "1";

/// A complete text frame ready to be written to a socket: always valid UTF-8 JSON.
///
/// Cheap to clone (reference counted), so one encoded event is shared by every
/// recipient's queue.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(Bytes);

impl Text {
    /// The frame's bytes (valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The frame as a string (no check: a `Text` is valid UTF-8 by construction).
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees UTF-8: `From<String>`/`From<&str>` take
        // strings, `TryFrom<Bytes>` checks, and `from_utf8_unchecked`'s caller promises it.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
    /// Adopt bytes that the transport has already checked to be UTF-8 (a WebSocket text
    /// frame as tungstenite delivers it), without copying or checking them again.
    ///
    /// # Safety
    /// `bytes` must be valid UTF-8; [`Text::as_str`] relies on it.
    pub unsafe fn from_utf8_unchecked(bytes: Bytes) -> Self {
        Self(bytes)
    }
    /// The underlying shared bytes (valid UTF-8), for adapters.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}
impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}
/// Adopts bytes that a transport already holds (no copy), after checking they are
/// valid UTF-8.
///
/// ```
/// use bytes::Bytes;
/// use zocket_core::protocol::Text;
/// let text = Text::try_from(Bytes::from_static(b"{\"type\":\"ping\"}")).unwrap();
/// assert_eq!(text.as_str(), "{\"type\":\"ping\"}");
/// assert!(Text::try_from(Bytes::from_static(&[0xff, 0xfe])).is_err());
/// ```
impl TryFrom<Bytes> for Text {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WebSocket frame as the connection driver sees it. Adapters convert their
/// framework's message type to and from this, so no transport type leaks into core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// A text frame.
    Text(Text),
    /// A binary frame (not part of v1: answered with `BAD_REQUEST`).
    Binary(Bytes),
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A close frame with an optional code and reason.
    Close(Option<CloseFrame>),
}

/// A close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code (1000 normal, 1001 going away, 1008 policy, 1009 too big, 1013 try again later).
    pub code: u16,
    /// The reason text (at most 123 bytes on the wire).
    pub reason: Cow<'static, str>,
}

/// A decoded client → server frame, borrowing from the frame text.
#[derive(Debug)]
pub struct ClientFrame<'a> {
    /// The route name (`type`).
    pub kind: Cow<'a, str>,
    /// The raw payload, `None` when absent.
    pub payload: Option<&'a RawValue>,
    /// The RPC id, when the frame is an RPC.
    pub rpc_id: Option<Cow<'a, str>>,
}

/// Why a client frame could not be decoded (answered with `BAD_REQUEST`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON, or not a JSON object.
    #[error("frame is not a JSON object: {0}")]
    NotAnObject(String),
    /// No string `type` field; when the frame had a string `rpcId` it is kept so the
    /// error can be answered as `__rpc_err`.
    #[error("frame has no string `type`")]
    MissingType {
        /// The frame's `rpcId`, if it was a string.
        rpc_id: Option<String>,
    },
    /// `rpcId` is present but not a string.
    #[error("`rpcId` must be a string")]
    BadRpcId,
}

#[derive(Deserialize)]
struct RawClientFrame<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: StrField<'a>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "rpcId", borrow, default)]
    rpc_id: StrField<'a>,
}

/// A field that should be a string, read in one pass: the string (borrowed unless it
/// has escapes), `Other` for any other JSON value (skipped), `Absent` when missing or
/// `null`.
#[derive(Default)]
enum StrField<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for StrField<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = StrField<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(StrField::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(StrField::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StrField::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StrField::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StrField::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StrField::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                // `null` is the same as absent.
                Ok(StrField::Absent)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StrField::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrField::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Decode a client frame (`{"type":..,"payload":..,"rpcId":..}`), borrowing from `text`.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame<'_>, FrameError> {
    // serde's derived struct would also accept a JSON array (`[t, p, id]`): refuse it.
    if !text.trim_start().starts_with('{') {
        return Err(FrameError::NotAnObject("expected a JSON object".into()));
    }
    let raw: RawClientFrame<'_> =
        serde_json::from_str(text).map_err(|e| FrameError::NotAnObject(e.to_string()))?;
    let rpc_id = match raw.rpc_id {
        StrField::Absent => None,
        StrField::Str(r) => Some(r),
        StrField::Other => return Err(FrameError::BadRpcId),
    };
    let kind = match raw.kind {
        StrField::Str(k) => k,
        StrField::Absent | StrField::Other => {
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
    with_scratch(|buf| serde_json::to_writer(buf, v))
}

/// [`to_text`] of whatever `write` puts into the buffer.
fn with_scratch(
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
) -> Result<Text, serde_json::Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
    }
    SCRATCH.with(|cell| {
        // A `Serialize` impl that itself encodes a frame would re-enter: it gets a
        // buffer of its own.
        let Ok(mut buf) = cell.try_borrow_mut() else {
            let mut own = Vec::new();
            write(&mut own)?;
            return Ok(Text(Bytes::from(own)));
        };
        buf.clear();
        // serde_json writes UTF-8 only (its own `to_string` relies on that too), and so
        // does every `write` here.
        let result = write(&mut buf).map(|()| Text(Bytes::copy_from_slice(&buf)));
        if buf.capacity() > SCRATCH_KEEP {
            // Do not keep a large frame's buffer for the life of the thread.
            *buf = Vec::with_capacity(512);
        }
        result
    })
}

/// Write `s` as a JSON string: as it is between quotes when nothing in it needs an
/// escape (what serde_json escapes: `"`, backslash and control characters), else by serde_json.
fn write_str(buf: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(buf, s)
    }
}

/// Encode an event frame `{"type":name,"payload":..}`.
///
/// The envelope is written directly (the bytes a derived `Serialize` would write);
/// serde serialises the payload only. Likewise for [`encode_rpc_res`].
pub fn encode_event<P: Serialize + ?Sized>(
    name: &str,
    payload: &P,
) -> Result<Text, serde_json::Error> {
    with_scratch(|buf| {
        buf.extend_from_slice(br#"{"type":"#);
        write_str(buf, name)?;
        buf.extend_from_slice(br#","payload":"#);
        serde_json::to_writer(&mut *buf, payload)?;
        buf.push(b'}');
        Ok(())
    })
}

/// Encode an RPC result; `payload: None` omits the key (unit outputs).
pub fn encode_rpc_res<P: Serialize + ?Sized>(
    rpc_id: &str,
    payload: Option<&P>,
) -> Result<Text, serde_json::Error> {
    with_scratch(|buf| {
        buf.extend_from_slice(br#"{"type":"__rpc_res""#);
        if let Some(payload) = payload {
            buf.extend_from_slice(br#","payload":"#);
            serde_json::to_writer(&mut *buf, payload)?;
        }
        buf.extend_from_slice(br#","rpcId":"#);
        write_str(buf, rpc_id)?;
        buf.push(b'}');
        Ok(())
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

/// The `error` object of `__rpc_err` / `__error` frames, as a client decodes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WireError {
    /// The error code.
    pub code: String,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// The offending message type (`__error` only).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Optional data.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// A decoded server → client frame, borrowing from the frame text (for clients).
#[derive(Debug, Deserialize)]
pub struct ServerFrame<'a> {
    /// The frame type: an event name or one of `__rpc_res`, `__rpc_err`, `__error`, `__welcome`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The payload, when present.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// The RPC id of `__rpc_res` / `__rpc_err`.
    #[serde(rename = "rpcId", borrow, default)]
    pub rpc_id: Option<Cow<'a, str>>,
    /// The error of `__rpc_err` / `__error`.
    #[serde(default)]
    pub error: Option<WireError>,
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
