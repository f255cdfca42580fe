//! What is known about a connection: at the handshake, and when it ended.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::close_reason::CloseReason;
use crate::ids::ClientId;

/// What is known about a connection at handshake time.
///
/// Its `Debug` output redacts the values of secret headers (`token`, `authorization`,
/// `proxy-authorization`, `cookie` and
/// [`ServerConfig::redact_headers`](crate::ServerConfig::redact_headers)) and truncates
/// long values.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The id the connection will have.
    pub client_id: ClientId,
    /// The peer address, when the transport knows it.
    pub remote_addr: Option<SocketAddr>,
    /// The request path.
    pub path: String,
    /// The merged header map (headers, then query parameters).
    pub headers: HashMap<String, String>,
    pub(crate) redaction: std::sync::Arc<crate::redact::Redaction>,
}

impl std::fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.headers.keys().collect();
        names.sort();
        let headers: Vec<(&str, std::borrow::Cow<'_, str>)> = names
            .into_iter()
            .map(|k| {
                let v = if self.redaction.is_secret(k) {
                    "<redacted>".into()
                } else {
                    crate::redact::truncate(&self.headers[k], 128)
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("ConnInfo")
            .field("client_id", &self.client_id)
            .field("remote_addr", &self.remote_addr)
            .field("path", &crate::redact::truncate(&self.path, 128))
            .field("headers", &headers)
            .finish()
    }
}

/// What the disconnect hook is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DisconnectInfo {
    /// The connection's id.
    pub client_id: ClientId,
    /// Its rooms at the moment it ended, sorted.
    pub rooms: Vec<String>,
    /// Why it ended.
    pub reason: CloseReason,
}
