//! The one error value of Zocket: [`Reject`].

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Error codes defined by the protocol (PROTOCOL.md). Applications may use their own
/// upper-snake-case codes as well.
pub mod codes {
    /// Not JSON, not an object, no string `type`, binary frame.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// No incoming message has that `type`.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The payload does not match the input type.
    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    /// Raised by middleware or a handler: who you are is not known.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// Raised by middleware or a handler: you may not do this.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// A server-side deadline for the handler passed.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The handler panicked or failed without a public error.
    pub const INTERNAL: &str = "INTERNAL";
    /// Headers of the handshake did not match the context's headers type.
    pub const INVALID_HEADERS: &str = "INVALID_HEADERS";
    /// A configured limit refused the request (rooms per connection, room-name length,
    /// ids or rooms in one send target); the message names the limit.
    pub const LIMIT: &str = "LIMIT";
}

/// A refusal: a code, a message for the client, and optional JSON data.
///
/// Middleware, handlers and connect hooks all reject with this one type, so stacked
/// middleware never builds nested error types. It is what the client receives in
/// `__rpc_err` / `__error` frames.
///
/// ```
/// use zocket_core::Reject;
/// let r = Reject::new("TEAPOT", "I'm a teapot").with_data(serde_json::json!({"hint": "try coffee"}));
/// assert_eq!(r.code(), "TEAPOT");
/// assert_eq!(r.to_string(), "TEAPOT: I'm a teapot");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Reject {
    code: Cow<'static, str>,
    message: String,
    data: Option<Value>,
}

impl Reject {
    /// A rejection with an application (or protocol) code and a message.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            data: None,
        }
    }
    /// Attach JSON data (sent as `error.data`).
    pub fn with_data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::to_value(data).ok();
        self
    }
    /// `BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_REQUEST, message)
    }
    /// `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND, message)
    }
    /// `INVALID_INPUT`.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_INPUT, message)
    }
    /// `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(codes::UNAUTHORIZED, message)
    }
    /// `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(codes::FORBIDDEN, message)
    }
    /// `TIMEOUT`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(codes::TIMEOUT, message)
    }
    /// `INTERNAL` with the generic message clients see.
    pub fn internal() -> Self {
        Self::new(codes::INTERNAL, "Internal server error")
    }
    /// The code, e.g. `"FORBIDDEN"`.
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The optional data.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }
    /// Whether this code counts toward the protocol-error flood limit
    /// (`BAD_REQUEST`, `NOT_FOUND`, `INVALID_INPUT`).
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            &*self.code,
            codes::BAD_REQUEST | codes::NOT_FOUND | codes::INVALID_INPUT
        )
    }
}

/// Displayed as the code only; used in logs.
pub(crate) struct CodeOnly<'a>(pub &'a Reject);
impl fmt::Display for CodeOnly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.code)
    }
}
