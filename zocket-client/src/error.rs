//! Errors of the client: [`ClientError`] for calls, emits and subscriptions, and
//! [`ConnectError`] for establishing the connection.

use std::error::Error as StdError;
use std::time::Duration;

use serde::Deserialize;
pub use zocket_core::{HeaderIssue, Reject};

/// Why a call, an emit or a subscription item failed.
///
/// Each variant says what happened to the message, so callers can decide whether
/// trying again makes sense: nothing is retried behind the caller's back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No reply came within the RPC timeout. The message may or may not have been
    /// handled by the server.
    #[error("`{name}` timed out after {after:?}")]
    Timeout {
        /// The message name.
        name: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The connection dropped after the message was written and before its reply
    /// arrived. The server may or may not have handled it.
    #[error("the connection dropped before the reply to `{name}` arrived")]
    Disconnected {
        /// The message name.
        name: String,
    },
    /// The client is not connected and buffering while disconnected is turned off
    /// (`outbound_buffer(0)`): the message was not sent.
    #[error("not connected: `{name}` was not sent")]
    NotConnected {
        /// The message name.
        name: String,
    },
    /// The client is disconnected and its outbound buffer is full: the message was not
    /// sent.
    #[error("outbound buffer full ({capacity} messages) while disconnected: `{name}` was not sent")]
    BufferFull {
        /// The message name.
        name: String,
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The client was closed (by [`Client::close`](crate::Client::close), by dropping
    /// every handle, or because reconnecting gave up): the message was not sent, or its
    /// reply can no longer arrive.
    #[error("the client is closed")]
    Closed,
    /// The server answered with `__rpc_err` (or `__error`): the same [`Reject`] the
    /// handler returned, with its code (`FORBIDDEN`, `INVALID_INPUT`, an application code
    /// such as `TEAPOT`, ...), message and optional data.
    #[error("rejected by the server: {0}")]
    Rejected(Reject),
    /// A reply or event payload did not match the expected type.
    #[error("could not decode the payload of `{name}`: {source}")]
    Decode {
        /// The message or event name.
        name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The input could not be serialised to JSON.
    #[error("could not encode the input of `{name}`: {source}")]
    Encode {
        /// The message name.
        name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A subscriber did not keep up: its queue was full and `missed` events were
    /// dropped for it (reported in place of the missing events, in order).
    #[error("subscription lagged: {missed} events were dropped")]
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl ClientError {
    /// The server's error code for [`ClientError::Rejected`], `None` otherwise.
    ///
    /// ```
    /// use zocket_client::{ClientError, Reject};
    /// let e = ClientError::Rejected(Reject::forbidden("no"));
    /// assert_eq!(e.code(), Some("FORBIDDEN"));
    /// assert_eq!(e.rejection().map(Reject::message), Some("no"));
    /// assert_eq!(ClientError::Closed.code(), None);
    /// ```
    pub fn code(&self) -> Option<&str> {
        self.rejection().map(Reject::code)
    }

    /// The server's rejection for [`ClientError::Rejected`], `None` otherwise.
    pub fn rejection(&self) -> Option<&Reject> {
        match self {
            Self::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the error is [`ClientError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Whether the error means the connection was lost or absent
    /// ([`Disconnected`](Self::Disconnected), [`NotConnected`](Self::NotConnected),
    /// [`BufferFull`](Self::BufferFull) or [`Closed`](Self::Closed)).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Self::Disconnected { .. }
                | Self::NotConnected { .. }
                | Self::BufferFull { .. }
                | Self::Closed
        )
    }
}

/// The server refused the WebSocket upgrade with an HTTP error status.
///
/// A Zocket server answers `400` (`INVALID_HEADERS`, with `issues`), `401`
/// (`UNAUTHORIZED`) or `403` (`FORBIDDEN`) with a JSON body
/// `{"error":..,"message":..,"issues":[..]}`; its fields are decoded here. For a body that
/// is not such JSON, `code` is derived from the status and `message` holds the body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRejection {
    /// The HTTP status, e.g. `401`.
    pub status: u16,
    /// The error code (`INVALID_HEADERS`, `UNAUTHORIZED`, `FORBIDDEN`, ...).
    pub code: String,
    /// The human-readable message.
    pub message: String,
    /// Per-header problems (for `400 INVALID_HEADERS`).
    pub issues: Vec<HeaderIssue>,
}

impl std::fmt::Display for HandshakeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        for issue in &self.issues {
            write!(f, "; {}: {}", issue.path, issue.message)?;
        }
        Ok(())
    }
}

impl HandshakeRejection {
    /// Build from a status and the (possibly truncated or empty) response body.
    pub(crate) fn from_response(status: u16, body: Option<&[u8]>) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            issues: Vec<HeaderIssue>,
        }
        let default_code = match status {
            400 => "BAD_REQUEST",
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            _ => "HTTP_ERROR",
        };
        let text = body
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        match serde_json::from_str::<Body>(&text) {
            Ok(b) => Self {
                status,
                code: b.error.unwrap_or_else(|| default_code.to_owned()),
                message: b.message.unwrap_or_default(),
                issues: b.issues,
            },
            Err(_) => Self {
                status,
                code: default_code.to_owned(),
                message: text.trim().to_owned(),
                issues: Vec::new(),
            },
        }
    }
}

/// Why the client could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a valid `ws://` URL (or `wss://`, which needs TLS support that this
    /// build does not have).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The server refused the handshake (HTTP 400 / 401 / 403 or another client error).
    /// Never retried: the same request would be refused again.
    #[error("handshake rejected: {0}")]
    Rejected(HandshakeRejection),
    /// The TCP connection or the WebSocket handshake failed (connection refused, reset,
    /// protocol error, server error status, ...).
    #[error("could not connect: {0}")]
    Transport(#[source] Box<dyn StdError + Send + Sync>),
    /// The connection (TCP and WebSocket handshake) took longer than the connect timeout.
    #[error("connecting timed out after {0:?}")]
    Timeout(Duration),
    /// An after-connect hook failed on the first connection.
    #[error("after-connect hook failed: {0}")]
    Hook(#[source] ClientError),
    /// An after-connect hook panicked on the first connection.
    #[error("after-connect hook panicked")]
    HookPanicked,
    /// Reconnecting gave up (with `retry_initial_connect`): the last error is attached.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<ConnectError>,
    },
    /// `connect` was called on a client that was already connected or connecting.
    #[error("connect was already called on this client")]
    AlreadyStarted,
    /// The client was closed while connecting.
    #[error("the client was closed while connecting")]
    Closed,
}

impl ConnectError {
    /// Whether trying again cannot help (the handshake was refused, the URL is bad, or
    /// an after-connect hook failed).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::InvalidUrl(_)
                | Self::Rejected(_)
                | Self::Hook(_)
                | Self::HookPanicked
                | Self::AlreadyStarted
        )
    }

    /// The handshake rejection, if the server refused the upgrade.
    pub fn rejection(&self) -> Option<&HandshakeRejection> {
        match self {
            Self::Rejected(r) => Some(r),
            Self::GaveUp { last, .. } => last.rejection(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_bodies() {
        let r = HandshakeRejection::from_response(
            400,
            Some(br#"{"error":"INVALID_HEADERS","message":"bad","issues":[{"path":"userRole","message":"unknown variant"}]}"#),
        );
        assert_eq!(r.code, "INVALID_HEADERS");
        assert_eq!(r.issues.len(), 1);
        assert_eq!(r.issues[0].path, "userRole");
        let r = HandshakeRejection::from_response(401, Some(b"nope"));
        assert_eq!(
            (r.status, r.code.as_str(), r.message.as_str()),
            (401, "UNAUTHORIZED", "nope")
        );
        let r = HandshakeRejection::from_response(403, None);
        assert_eq!(r.code, "FORBIDDEN");
    }
}
