//! The one error value of Zocket: [`Reject`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

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
/// `__rpc_err` / `__error` frames, what [`testing`](crate::testing) and `zocket-client`
/// hand back as their `Rejected` error.
///
/// ```
/// use zocket_core::Reject;
/// let r = Reject::new("TEAPOT", "I'm a teapot").with_data(serde_json::json!({"hint": "try coffee"}));
/// assert_eq!(r.code(), "TEAPOT");
/// assert_eq!(r.to_string(), "TEAPOT: I'm a teapot");
/// ```
///
/// # Internal errors and `?`
///
/// Every `std::error::Error + Send + Sync + 'static` converts into a `Reject` with code
/// `INTERNAL`, so `?` works in handlers, middleware and connect hooks on I/O, database or
/// parse errors alike. The client sees only `"Internal server error"`; the error and its
/// source chain stay on the server, logged when the message is answered
/// ([`internal_error`](Reject::internal_error) returns it). For errors that are not
/// `std::error::Error` (`anyhow::Error`, `Box<dyn Error>`, a `String`) use
/// [`Reject::internal_from`].
///
/// ```
/// use zocket_core::Reject;
/// fn read_config() -> Result<String, Reject> {
///     let text = std::fs::read_to_string("/nonexistent/zocket.toml")?;
///     Ok(text)
/// }
/// let err = read_config().unwrap_err();
/// assert_eq!(err.code(), "INTERNAL");
/// assert_eq!(err.message(), "Internal server error");
/// assert!(err.internal_error().is_some());
/// ```
///
/// For that blanket conversion to exist, `Reject` itself does not implement
/// `std::error::Error` (as `anyhow::Error` does not); it is `Display` and `Debug`. To
/// give an application error of your own a public code, convert it explicitly, e.g. with
/// a method `fn reject(self) -> Reject` and `.map_err(MyError::reject)?`.
#[derive(Clone)]
pub struct Reject {
    code: Cow<'static, str>,
    message: String,
    data: Option<Value>,
    internal: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl fmt::Debug for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Reject");
        d.field("code", &self.code)
            .field("message", &self.message)
            .field("data", &self.data);
        if let Some(e) = &self.internal {
            d.field("internal", e);
        }
        d.finish()
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Equal when code, message and data are equal (what the client sees); the server-side
/// internal error is not compared.
impl PartialEq for Reject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.message == other.message && self.data == other.data
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for Reject {
    /// `INTERNAL`, keeping `error` for the server's log; see [`Reject`].
    fn from(error: E) -> Self {
        let mut r = Reject::internal();
        r.internal = Some(Arc::new(error));
        r
    }
}

impl Reject {
    /// A rejection with an application (or protocol) code and a message.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            data: None,
            internal: None,
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
    /// `INVALID_INPUT` naming the offending field, shaped like the router's own answer
    /// to a payload that does not deserialise: message ``invalid payload at `path`:
    /// reason`` (``invalid payload: reason`` for an empty path, the payload as a whole)
    /// and `data` `{"issues":[{"path":..,"message":reason}]}`. Use it in
    /// [`Message::validate`](crate::Message::validate) so that missing fields, wrong
    /// types and rule failures look alike to the client.
    ///
    /// ```
    /// use zocket_core::Reject;
    /// let r = Reject::invalid_field("items[2].id", "must be positive");
    /// assert_eq!(r.code(), "INVALID_INPUT");
    /// assert_eq!(r.message(), "invalid payload at `items[2].id`: must be positive");
    /// assert_eq!(r.data().unwrap()["issues"][0]["path"], "items[2].id");
    /// assert_eq!(r.data().unwrap()["issues"][0]["message"], "must be positive");
    /// ```
    pub fn invalid_field(path: impl Into<String>, reason: impl Into<String>) -> Self {
        let (path, reason) = (path.into(), reason.into());
        let message = if path.is_empty() {
            format!("invalid payload: {reason}")
        } else {
            format!("invalid payload at `{path}`: {reason}")
        };
        let data = serde_json::json!({ "issues": [{ "path": path, "message": reason }] });
        Self::invalid_input(message).with_data(data)
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
    /// `INTERNAL`, keeping `error` (anything that converts into a boxed error:
    /// `anyhow::Error`, `Box<dyn Error + Send + Sync>`, a `String`, ...) for the server's
    /// log. Errors that implement `std::error::Error` convert with `?` already.
    ///
    /// ```
    /// use zocket_core::Reject;
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = "pool exhausted".into();
    /// let r = Reject::internal_from(boxed);
    /// assert_eq!(r.message(), "Internal server error");
    /// assert_eq!(r.internal_error().unwrap().to_string(), "pool exhausted");
    /// ```
    pub fn internal_from(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        let mut r = Reject::internal();
        r.internal = Some(Arc::from(error.into()));
        r
    }
    /// The server-side error behind an `INTERNAL` rejection made from one (by `?` or
    /// [`internal_from`](Self::internal_from)). Never sent to the client.
    pub fn internal_error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.internal.as_deref()
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

/// A decoded `error` object of an `__rpc_err` / `__error` frame, as the client and the
/// test harness receive it.
#[cfg(feature = "protocol")]
impl From<crate::protocol::WireError> for Reject {
    fn from(e: crate::protocol::WireError) -> Self {
        Self {
            code: e.code.into(),
            message: e.message,
            data: e.data,
            internal: None,
        }
    }
}

/// The internal error and its sources, `outer: cause: root`, bounded in length; for logs.
#[cfg(feature = "server")]
pub(crate) struct SourceChain<'a>(pub &'a (dyn StdError + 'static));
#[cfg(feature = "server")]
impl fmt::Display for SourceChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 2048;
        let mut text = String::new();
        let mut next: Option<&(dyn StdError + 'static)> = Some(self.0);
        let mut depth = 0;
        while let Some(e) = next {
            if depth > 0 {
                text.push_str(": ");
            }
            text.push_str(&e.to_string());
            depth += 1;
            if text.len() > MAX || depth == 16 {
                break;
            }
            next = e.source();
        }
        if text.len() > MAX {
            let mut cut = MAX;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        f.write_str(&text)
    }
}

/// Log an `INTERNAL` rejection's server-side error with its source chain (at ERROR: the
/// server failed, the client only learns "Internal server error").
#[cfg(feature = "server")]
pub(crate) fn log_internal(rej: &Reject, what: &str) {
    if let Some(e) = rej.internal_error() {
        tracing::error!(error = %SourceChain(e), "{what} failed; answered INTERNAL");
    }
}

/// Displayed as the code only; used in logs.
#[cfg(feature = "server")]
pub(crate) struct CodeOnly<'a>(pub &'a Reject);
#[cfg(feature = "server")]
impl fmt::Display for CodeOnly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.code)
    }
}
