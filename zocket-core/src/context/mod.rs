//! The connection context: the application's own type, built once per connection by
//! its connect hook, and the hooks' arguments ([`Connect`], [`Disconnect`]); what is
//! known about a connection ([`ConnInfo`], [`DisconnectInfo`]) and why it ended
//! ([`CloseReason`]).

mod close_reason;
mod info;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub use close_reason::CloseReason;
pub use info::{ConnInfo, DisconnectInfo};

use crate::cx::ServerHandle;
use crate::error::Reject;

/// The application's per-connection context (v1: `zocket.create({ headers, onConnect,
/// onDisconnect })`).
///
/// `Headers` is deserialised from the handshake's string map **before** the upgrade: HTTP
/// headers, then query parameters, which win over headers of the same name. Names are
/// matched case-insensitively against the headers type's field names (HTTP names arrive
/// lower-cased, so an HTTP header `username` fills a field renamed `userName`). A mismatch
/// is answered with HTTP 400 `INVALID_HEADERS`. Header values are strings: use `String`,
/// `Option<String>` or string enums (plus `#[serde(default)]`) in the headers type. Unknown
/// keys must be allowed (every HTTP header is in the map), so do not use
/// `deny_unknown_fields`.
///
/// `State` is the application's shared state (a token table, a database pool, ...), set
/// once with [`ServerBuilder::state`](crate::ServerBuilder::state) and reachable in
/// `connect` and `disconnect` ([`Connect::state`], [`Disconnect::state`]), in every
/// middleware and handler ([`Cx::state`](crate::Cx::state)). Use `()` when there is none.
///
/// ```
/// use std::collections::HashMap;
/// use serde::Deserialize;
/// use zocket_core::{Connect, Context, Reject};
///
/// #[derive(Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Headers { #[serde(default)] token: Option<String> }
///
/// /// The application state: who each token belongs to.
/// struct App { tokens: HashMap<String, String> }
///
/// struct User { name: String }
///
/// impl Context for User {
///     type Headers = Headers;
///     type State = App;
///     async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
///         let token = conn.headers.token.unwrap_or_default();
///         match conn.state.tokens.get(&token) {
///             Some(name) => Ok(User { name: name.clone() }),
///             None => Err(Reject::unauthorized("a valid token is required")),
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

    /// The application state shared by every connection (`()` for none). The server
    /// holds it in an `Arc`.
    type State: Send + Sync + 'static;

    /// Build the context, or refuse the connection: a [`Reject`] with code
    /// `UNAUTHORIZED` is answered with HTTP 401, `INTERNAL` (e.g. an error turned into a
    /// `Reject` by `?`) with 500, any other code with HTTP 403.
    fn connect(conn: Connect<'_, Self>) -> impl Future<Output = Result<Self, Reject>> + Send;

    /// Runs exactly once when the connection ends, whatever the cause, while its rooms
    /// are still known (`end.info.rooms`). The default does nothing.
    fn disconnect(&self, end: Disconnect<'_, Self>) -> impl Future<Output = ()> + Send {
        let _ = end;
        async {}
    }
}

/// What [`Context::connect`] receives: the deserialised headers, what is known about the
/// connection, the application state and a handle to the server. More fields may be
/// added; they will not change the hook's signature.
#[non_exhaustive]
pub struct Connect<'a, C: Context> {
    /// The handshake headers.
    pub headers: C::Headers,
    /// The connection's id, peer address, path and raw header map.
    pub info: &'a ConnInfo,
    /// The application state.
    pub state: &'a Arc<C::State>,
    /// A handle to the server (typed sends, rooms of other clients); clone it to keep it
    /// in the context.
    pub server: &'a ServerHandle,
}

impl<C: Context> fmt::Debug for Connect<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("info", self.info)
            .field("server", self.server)
            .finish_non_exhaustive()
    }
}

/// What [`Context::disconnect`] receives: why and how the connection ended, the
/// application state and a handle to the server. More fields may be added; they will
/// not change the hook's signature.
#[non_exhaustive]
pub struct Disconnect<'a, C: Context> {
    /// The connection's id, its rooms at the end and why it ended.
    pub info: &'a DisconnectInfo,
    /// The application state.
    pub state: &'a Arc<C::State>,
    /// A handle to the server (e.g. to tell a room that someone left).
    pub server: &'a ServerHandle,
}

impl<C: Context> fmt::Debug for Disconnect<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disconnect")
            .field("info", self.info)
            .field("server", self.server)
            .finish_non_exhaustive()
    }
}
