//! The handshake, before the upgrade: shutdown and the connection limits, the origin,
//! the headers into the context's headers type, and the connect hook.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Server;
use super::accepted::Accepted;
use super::admission::{Full, Slot};
use crate::connection::PingReplies;
use crate::context::{ConnInfo, Connect, Context};
use crate::ids::ClientId;
use crate::protocol;

/// The pieces of an HTTP upgrade request the handshake needs; adapters fill it in:
///
/// ```
/// use zocket_core::HandshakeRequest;
/// let req = HandshakeRequest::new("/ws")
///     .query(Some("userName=ada".to_owned()))
///     .headers(vec![("x-zocket-version".to_owned(), "1".to_owned())])
///     .remote_addr("127.0.0.1:4000".parse::<std::net::SocketAddr>().ok());
/// assert_eq!(req.path, "/ws");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HandshakeRequest {
    /// The request path.
    pub path: String,
    /// The raw query string (without `?`).
    pub query: Option<String>,
    /// HTTP headers (names are lower-cased by the handshake).
    pub headers: Vec<(String, String)>,
    /// The peer address.
    pub remote_addr: Option<SocketAddr>,
}

impl HandshakeRequest {
    /// A request for `path`, without query, headers or peer address.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }
    /// Set the raw query string (without `?`).
    pub fn query(mut self, query: impl Into<Option<String>>) -> Self {
        self.query = query.into();
        self
    }
    /// Set the HTTP headers, as `(name, value)` in any case.
    pub fn headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }
    /// Set the peer address.
    pub fn remote_addr(mut self, addr: impl Into<Option<SocketAddr>>) -> Self {
        self.remote_addr = addr.into();
        self
    }
}

/// One entry of an `INVALID_HEADERS` answer: the server sends it, `zocket-client`
/// decodes it (`HandshakeRejection::issues`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HeaderIssue {
    /// The header name, e.g. `userRole`.
    #[serde(default)]
    pub path: String,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}

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

impl<C: Context> Server<C> {
    /// Check a handshake, before the upgrade: shutting down and the connection limits
    /// (`503`), origin, headers, connect hook (within
    /// [`ServerConfig::handshake_timeout`](crate::ServerConfig::handshake_timeout)). The adapters check the HTTP request itself
    /// with [`validate_upgrade`](crate::validate_upgrade) first.
    pub async fn handshake(&self, req: HandshakeRequest) -> Result<Accepted<C>, HandshakeError> {
        let remote = req.remote_addr;
        let result = self.check(req).await;
        if let Err(e) = &result {
            self.inner.stats.handshake_refused(e.status());
            // Client-caused: DEBUG (counted in the stats), and bounded (the message may
            // quote input).
            tracing::debug!(
                status = e.status(),
                error = %crate::redact::truncate(&e.to_string(), 200),
                remote = ?remote,
                "handshake refused"
            );
        }
        result
    }

    async fn check(&self, req: HandshakeRequest) -> Result<Accepted<C>, HandshakeError> {
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Err(HandshakeError::ShuttingDown);
        }
        let cfg = &self.inner.config;
        let retry_after = cfg.retry_after.as_secs().max(1);
        let slot = self
            .inner
            .slots
            .acquire(req.remote_addr.map(|a| a.ip()))
            .map_err(|full| HandshakeError::Unavailable {
                reason: match full {
                    Full::Total => "too many connections",
                    Full::PerIp => "too many connections from this address",
                },
                retry_after,
            })?;
        let timeout = cfg.handshake_timeout;
        match tokio::time::timeout(timeout, self.check_headers(req, slot)).await {
            Ok(result) => result,
            Err(_) => Err(HandshakeError::Unavailable {
                reason: "the handshake timed out",
                retry_after,
            }),
        }
    }

    async fn check_headers(
        &self,
        req: HandshakeRequest,
        slot: Slot,
    ) -> Result<Accepted<C>, HandshakeError> {
        let mut map: HashMap<String, String> = HashMap::with_capacity(req.headers.len() + 4);
        for (k, v) in req.headers {
            map.insert(k.to_ascii_lowercase(), v);
        }
        if let (Some(allowed), Some(origin)) =
            (&self.inner.config.allowed_origins, map.get("origin"))
        {
            if !allowed.iter().any(|a| a == origin) {
                return Err(HandshakeError::OriginNotAllowed(origin.clone()));
            }
        }
        let query: Vec<(String, String)> = req
            .query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let source = super::headers::Source {
            http: &map,
            query: &query,
        };
        if let Some(v) = source.get("x-zocket-version") {
            if v != protocol::VERSION {
                tracing::info!(client_version = %crate::redact::truncate(v, 32), server_version = protocol::VERSION, "protocol version mismatch; accepting");
            }
        }
        let headers: C::Headers = super::headers::deserialize(&source)?;
        map.extend(query);
        let info = ConnInfo {
            client_id: ClientId::random(),
            remote_addr: req.remote_addr,
            path: req.path,
            headers: map,
            redaction: self.inner.redaction.clone(),
        };
        let server = self.handle();
        let conn = Connect {
            headers,
            info: &info,
            state: &self.inner.state,
            server: &server,
        };
        match C::connect(conn).await {
            Ok(ctx) => Ok(Accepted {
                server: self.clone(),
                ctx,
                info,
                slot,
                replies: PingReplies::default(),
            }),
            Err(rej) if rej.code() == crate::codes::UNAUTHORIZED => {
                Err(HandshakeError::Unauthorized(rej.message().to_owned()))
            }
            Err(rej) if rej.code() == crate::codes::INTERNAL => {
                crate::error::log_internal(&rej, "connect hook");
                Err(HandshakeError::Internal)
            }
            Err(rej) => Err(HandshakeError::Forbidden(rej.message().to_owned())),
        }
    }
}
