//! The handshake, before the upgrade: shutdown and the connection limits, the origin,
//! the headers into the context's headers type, and the connect hook.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::Server;
use super::accepted::Accepted;
use super::admission::{Full, Slot};
use super::handshake_error::HandshakeError;
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
