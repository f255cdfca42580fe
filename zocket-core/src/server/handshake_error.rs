//! Why a handshake was refused, and how an adapter answers it: status, headers, body.

use serde::Serialize;

use crate::protocol::HeaderIssue;

/// Why a handshake was refused. Adapters answer with [`status`](Self::status) and
/// [`body`](Self::body), without upgrading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The `Origin` is not in the allow-list (403).
    #[error("origin `{0}` is not allowed")]
    OriginNotAllowed(String),
    /// The headers did not match the context's headers type (400).
    #[error("{message}")]
    InvalidHeaders {
        /// A summary.
        message: String,
        /// One entry per offending header.
        issues: Vec<HeaderIssue>,
    },
    /// The connect hook rejected with `UNAUTHORIZED` (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The connect hook rejected with another code (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The server is shutting down (503).
    #[error("server is shutting down")]
    ShuttingDown,
    /// Not a valid RFC 6455 upgrade request (400 `BAD_REQUEST`); see
    /// [`validate_upgrade`](crate::validate_upgrade).
    #[error("bad upgrade request: {0}")]
    BadRequest(&'static str),
    /// `Sec-WebSocket-Version` is not 13 (426, with `Sec-WebSocket-Version: 13`).
    #[error("unsupported Sec-WebSocket-Version (13 is required)")]
    UnsupportedVersion,
    /// Over a connection limit, or the connect hook took longer than the handshake
    /// timeout (503, with `Retry-After`).
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Which limit.
        reason: &'static str,
        /// Seconds for `Retry-After`.
        retry_after: u64,
    },
    /// The connect hook failed with `INTERNAL` (e.g. `?` on a database error) (500). The
    /// error itself is logged on the server, never sent.
    #[error("internal error in the connect hook")]
    Internal,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::InvalidHeaders { .. } => 400,
            HandshakeError::Unauthorized(_) => 401,
            HandshakeError::OriginNotAllowed(_) | HandshakeError::Forbidden(_) => 403,
            HandshakeError::ShuttingDown | HandshakeError::Unavailable { .. } => 503,
            HandshakeError::Internal => 500,
            HandshakeError::BadRequest(_) => 400,
            HandshakeError::UnsupportedVersion => 426,
        }
    }

    /// Headers the refusal must carry besides `content-type: application/json`:
    /// `Sec-WebSocket-Version: 13` with a 426, `Retry-After` with a 503.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            HandshakeError::UnsupportedVersion => vec![("sec-websocket-version", "13".into())],
            HandshakeError::Unavailable { retry_after, .. } => {
                vec![("retry-after", retry_after.to_string())]
            }
            // While shutting down, come back (to another instance) in 5 s.
            HandshakeError::ShuttingDown => vec![("retry-after", "5".into())],
            _ => Vec::new(),
        }
    }

    /// The JSON body to answer with (PROTOCOL.md).
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            issues: Option<&'a [HeaderIssue]>,
        }
        let (error, message, issues) = match self {
            HandshakeError::OriginNotAllowed(_) => ("FORBIDDEN", "origin not allowed", None),
            HandshakeError::InvalidHeaders { message, issues } => (
                crate::codes::INVALID_HEADERS,
                message.as_str(),
                Some(issues.as_slice()),
            ),
            HandshakeError::Unauthorized(m) => ("UNAUTHORIZED", m.as_str(), None),
            HandshakeError::Forbidden(m) => ("FORBIDDEN", m.as_str(), None),
            HandshakeError::ShuttingDown => ("UNAVAILABLE", "server is shutting down", None),
            HandshakeError::BadRequest(m) => (crate::codes::BAD_REQUEST, *m, None),
            HandshakeError::UnsupportedVersion => (
                crate::codes::BAD_REQUEST,
                "unsupported Sec-WebSocket-Version (13 is required)",
                None,
            ),
            HandshakeError::Unavailable { reason, .. } => ("UNAVAILABLE", *reason, None),
            HandshakeError::Internal => (crate::codes::INTERNAL, "Internal server error", None),
        };
        serde_json::to_string(&Body {
            error,
            message,
            issues,
        })
        .unwrap_or_default()
    }
}
