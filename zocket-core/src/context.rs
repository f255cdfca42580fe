//! The connection context: the user's own type, built once per connection.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;

use serde::de::DeserializeOwned;

use crate::error::Reject;
use crate::hub::CloseReason;
use crate::ids::ClientId;

/// The application's per-connection context (v1: `zocket.create({ headers, onConnect,
/// onDisconnect })`).
///
/// `Headers` is deserialised from the handshake's string map (HTTP headers with
/// lower-cased names, then query parameters, which override headers of the same name)
/// **before** the upgrade; a mismatch is answered with HTTP 400 `INVALID_HEADERS`. Header
/// values are strings: use `String`, `Option<String>` or string enums (plus
/// `#[serde(default)]`) in the headers type. Unknown keys must be allowed (every HTTP
/// header is in the map), so do not use `deny_unknown_fields`.
///
/// ```
/// use serde::Deserialize;
/// use zocket_core::{ConnInfo, Context, Reject};
///
/// #[derive(Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Headers { #[serde(default)] token: Option<String> }
///
/// struct User { name: String }
///
/// impl Context for User {
///     type Headers = Headers;
///     async fn connect(h: Headers, _info: &ConnInfo) -> Result<Self, Reject> {
///         match h.token.as_deref() {
///             Some("secret") => Ok(User { name: "Ada".into() }),
///             _ => Err(Reject::unauthorized("a valid token is required")),
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Zocket connection context",
    label = "implement `zocket_core::Context` for `{Self}`",
    note = "a router is `Router<C>` where `C: Context`; middleware-narrowed types are only used inside `scope(..)`"
)]
pub trait Context: Sized + Send + Sync + 'static {
    /// The handshake headers, deserialised from the string map.
    type Headers: DeserializeOwned + Send;

    /// Build the context, or refuse the connection: a [`Reject`] with code
    /// `UNAUTHORIZED` is answered with HTTP 401, any other code with HTTP 403.
    fn connect(
        headers: Self::Headers,
        info: &ConnInfo,
    ) -> impl Future<Output = Result<Self, Reject>> + Send;

    /// Runs exactly once when the connection ends, whatever the cause, while its rooms
    /// are still known (`info.rooms`). The default does nothing.
    fn disconnect(&self, info: &DisconnectInfo) -> impl Future<Output = ()> + Send {
        let _ = info;
        async {}
    }
}

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
