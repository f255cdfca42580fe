//! The decoded frames: client → server ([`ClientFrame`], or why not: [`FrameError`]) and
//! server → client ([`ServerFrame`], with its [`WireError`]); and the issues of an
//! `INVALID_HEADERS` handshake refusal ([`HeaderIssue`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A decoded client → server frame, borrowing from the frame text.
#[derive(Debug)]
#[non_exhaustive]
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
#[non_exhaustive]
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

/// The `error` object of `__rpc_err` / `__error` frames, as a client decodes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
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

impl WireError {
    /// An error with this code and message, without a message type or data.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            kind: None,
            data: None,
        }
    }
}

/// A decoded server → client frame, borrowing from the frame text (for clients).
#[derive(Debug, Deserialize)]
#[non_exhaustive]
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

/// One entry of an `INVALID_HEADERS` answer: the server sends it, `zocket-client`
/// decodes it (`HandshakeRejection::issues`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderIssue {
    /// The header name, e.g. `userRole`.
    #[serde(default)]
    pub path: String,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}
