//! The [warp](https://docs.rs/warp/0.4) adapter of Zocket for Rust.
//!
//! [`upgrade`] turns a [`zocket_core::Server`] into a warp [`Filter`] that checks the
//! handshake **before** upgrading (origin allow-list, handshake headers from the HTTP
//! headers and the query string, the context's connect hook) and then hands the socket
//! to the core's connection driver. A refused handshake is answered with the status
//! and JSON body of the protocol (`400` `BAD_REQUEST` for an invalid RFC 6455 upgrade,
//! `426` for another WebSocket version, `400` `INVALID_HEADERS` with its `issues`,
//! `401`, `403`, `503` with `Retry-After` over the connection limits or while shutting
//! down) and no upgrade: the same status, headers and body as the hyper adapter's.
//!
//! Mount it under a path with `warp::path("ws").and(zocket_warp::upgrade(server))`, or
//! at the root with `zocket_warp::upgrade(server)` alone. The filter matches only the
//! exact path it is mounted at, so it combines with other routes through `.or(...)`;
//! it takes every request at that path (one that is not a WebSocket upgrade gets the
//! JSON `400`).
//!
//! Serve it with [`serve`] (or [`serve_tls`]): it applies the handshake timeout
//! ([`ServerConfig::handshake_timeout`](zocket_core::ServerConfig::handshake_timeout)),
//! refuses HTTP/1.0 upgrades and logs client-caused connection errors at DEBUG.
//! `warp::serve` works too, without those three; it logs one ERROR per aborted
//! handshake from its own `warp::server` target, which the tracing directive
//! `warp::server=off` silences.
//!
//! The WebSocket's maximum message size comes from
//! [`ServerConfig::max_message_bytes`](zocket_core::ServerConfig::max_message_bytes); a
//! larger message closes the connection with `1009`.
//!
//! # The socket: buffers, memory, closing
//!
//! `warp::ws()` checks the upgrade request, but the socket is not warp's `WebSocket`:
//! warp's `Ws` cannot size tokio-tungstenite's buffers (its 128 KiB read buffer per
//! connection would be allocated for every idle client). The filter takes hyper's
//! upgrade handle (warp 0.4 is built on hyper 1), answers `101 Switching Protocols`
//! itself, and drives the upgraded connection with the transport of `zocket-hyper`
//! ([`zocket_hyper::socket`]), exactly as `zocket-hyper` does:
//!
//! - no read or write buffer is held while a connection is idle (reads go into a 16 KiB
//!   scratch buffer on the stack; writes are encoded as fed, large payloads written from
//!   their own shared bytes, at most 64 KiB buffered before writing out); an oversize
//!   message is detected from its frame header and never buffered;
//! - about 2 300 bytes of server RSS per idle connection at 10 000 connections, everything
//!   included (down from about 137 KiB with warp's `WebSocket`); see `BENCHMARKS.md`;
//! - pings are answered by the engine, under the connection's outbound byte budget;
//! - closing: the engine writes its close frame and drains the socket until the
//!   client's close frame or its close timeout; then the TCP write side is shut down
//!   (FIN) and the socket is read for at most 1 s more before it is dropped, so a client
//!   that is still sending receives the close code instead of a reset.
//!
//! # Example
//!
//! A complete server on a free port and a raw client that reads the `__welcome` frame
//! and makes one call:
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use serde::{Deserialize, Serialize};
//! use tokio_tungstenite::tungstenite::Message as WsMessage;
//! use warp::Filter;
//! use zocket_core::{Connect, Context, Cx, Message, Reject, Router, Server};
//!
//! #[derive(Serialize, Deserialize)]
//! struct GreetIn { name: String }
//! enum Greet {}
//! impl Message for Greet {
//!     const NAME: &'static str = "greet";
//!     type Input = GreetIn;
//!     type Output = String;
//! }
//!
//! struct User;
//! impl Context for User {
//!     type Headers = serde_json::Value;
//!     type State = ();
//!     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
//! }
//!
//! async fn greet(_cx: Cx<User>, input: GreetIn) -> Result<String, Reject> {
//!     Ok(format!("Hello, {}!", input.name))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = Server::new(Router::<User>::new().on::<Greet>(greet));
//! let routes = warp::path("ws").and(zocket_warp::upgrade(server.clone()));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let http = tokio::spawn(
//!     warp::serve(routes)
//!         .incoming(listener)
//!         .graceful(async { let _ = stopped.await; })
//!         .run(),
//! );
//!
//! let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?userName=ada"))
//!     .await
//!     .unwrap();
//! let welcome = ws.next().await.unwrap().unwrap();
//! assert!(welcome.to_text().unwrap().contains("__welcome"));
//! ws.send(WsMessage::text(r#"{"type":"greet","payload":{"name":"Ada"},"rpcId":"1"}"#))
//!     .await
//!     .unwrap();
//! let reply = ws.next().await.unwrap().unwrap();
//! assert_eq!(
//!     reply.to_text().unwrap(),
//!     r#"{"type":"__rpc_res","payload":"Hello, Ada!","rpcId":"1"}"#
//! );
//!
//! # // The client reads on, so it answers the server's close frame at once.
//! # let reading = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
//! // Graceful shutdown: open sockets are closed with 1001, then HTTP stops.
//! server.shutdown().await;
//! # reading.await.unwrap();
//! let _ = stop.send(());
//! http.await.unwrap();
//! # }
//! ```
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::net::SocketAddr;

use hyper::upgrade::OnUpgrade;
use warp::filters::path::FullPath;
use warp::http::header::{self, HeaderValue};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::ws::Ws;
use warp::{Filter, Rejection, Reply};
use zocket_core::{
    Context, HandshakeError, HandshakeRequest, HttpVersion, Server, UpgradeRequest,
    validate_upgrade,
};

mod serve;
pub use serve::serve;
#[cfg(feature = "tls")]
pub use serve::serve_tls;
/// The rustls version [`serve_tls`] uses.
#[cfg(feature = "tls")]
pub use zocket_hyper::rustls;

/// A warp filter that serves Zocket WebSocket connections with `server`.
///
/// It takes every request whose remaining path is empty, checks it with
/// [`validate_upgrade`] (RFC 6455: `GET`, `Host`,
/// `Upgrade: websocket`, `Connection: upgrade`, a 16-byte `Sec-WebSocket-Key`, version
/// 13; HTTP/1.1 or later when served by [`serve`]), runs the handshake
/// ([`Server::handshake`]) and answers either `101 Switching Protocols` (the connection
/// is then driven by [`zocket_core::Accepted::serve`] until it ends) or the refusal's status, headers
/// and JSON body (`content-type: application/json`), the same as the hyper adapter's.
///
/// ```
/// # use warp::Filter;
/// # use zocket_core::{Connect, Context, Reject, Router, Server};
/// # struct User;
/// # impl Context for User {
/// #     type Headers = serde_json::Value;
/// #     type State = ();
/// #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = Server::new(Router::<User>::new());
/// // at /ws, next to another route
/// let ws = warp::path("ws").and(zocket_warp::upgrade(server.clone()));
/// let health = warp::path("health").map(|| "ok");
/// // or at the root: zocket_warp::upgrade(server)
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// let serving = tokio::spawn(zocket_warp::serve(listener, ws.or(health), server.clone()));
/// # use futures::StreamExt;
/// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
/// # let welcome = client.next().await.unwrap()?;
/// # assert!(welcome.to_text()?.contains("__welcome"));
/// # drop(client);
/// // `serve` returns once the shutdown begins.
/// server.shutdown().await;
/// serving.await?;
/// # Ok(()) }
/// ```
pub fn upgrade<C: Context>(
    server: Server<C>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path::end()
        // A handle on the upgrade, taken before `warp::ws()` removes it from the request.
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ws().map(Some).or(warp::any().map(|| None)).unify())
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::ext::optional::<Peer>())
        .and(warp::any().map(move || server.clone()))
        .then(handle::<C>)
}

/// What [`serve`] knows about a request's connection, for [`upgrade`] (a request
/// extension; warp itself exposes neither for a custom accept loop).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The peer address.
    pub remote_addr: SocketAddr,
    /// The request's HTTP version.
    pub version: warp::http::Version,
}

/// The raw query string, `None` when the request has none.
fn raw_query() -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone
{
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

#[allow(clippy::too_many_arguments)]
async fn handle<C: Context>(
    on_upgrade: Option<OnUpgrade>,
    ws: Option<Ws>,
    method: warp::http::Method,
    path: FullPath,
    query: Option<String>,
    headers: HeaderMap,
    remote_addr: Option<SocketAddr>,
    peer: Option<Peer>,
    server: Server<C>,
) -> Response {
    let pairs = header_pairs(&headers);
    let remote_addr = remote_addr.or(peer.map(|p| p.remote_addr));
    let version = match peer.map(|p| p.version) {
        Some(warp::http::Version::HTTP_09) => HttpVersion::Http09,
        Some(warp::http::Version::HTTP_10) => HttpVersion::Http10,
        Some(warp::http::Version::HTTP_2) => HttpVersion::H2,
        Some(warp::http::Version::HTTP_3) => HttpVersion::H3,
        // Under `warp::serve` the version is not visible to a filter: HTTP/1.1 (the
        // only version warp upgrades).
        _ => HttpVersion::Http11,
    };
    let upgrade = UpgradeRequest {
        method: method.as_str(),
        version,
        headers: &pairs,
    };
    if let Err(refused) = validate_upgrade(&upgrade) {
        tracing::debug!(error = %refused, remote = ?remote_addr, "not a valid WebSocket upgrade");
        return refusal(&refused);
    }
    let Some(ws) = ws else {
        // `validate` accepted what warp's own upgrade filter did not.
        return refusal(&HandshakeError::BadRequest(
            "not a WebSocket upgrade request",
        ));
    };
    let Some(on_upgrade) = on_upgrade else {
        // hyper offers no upgrade for an HTTP/1.0 request (which `warp::serve` does not
        // let a filter see): client-caused, refused like the version check.
        tracing::debug!(remote = ?remote_addr, "request on a connection that cannot be upgraded");
        return refusal(&HandshakeError::BadRequest(
            "a WebSocket upgrade needs HTTP/1.1 or later",
        ));
    };
    let request = HandshakeRequest::new(path.as_str())
        .query(query)
        .headers(pairs)
        .remote_addr(remote_addr);
    match server.handshake(request).await {
        Err(refused) => refusal(&refused),
        Ok(accepted) => {
            // `warp::ws()` checked the upgrade request; the socket is taken over here, with
            // the transport of zocket-hyper (warp's `Ws` cannot size its buffers).
            drop(ws);
            let max = server.config().max_message_bytes;
            tokio::spawn(zocket_hyper::socket::serve_upgrade(
                accepted, on_upgrade, max,
            ));
            switching_protocols(&headers)
        }
    }
}

/// Every header as a `(name, value)` pair; a value that is not UTF-8 is decoded lossily.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The response to a refused handshake: the status, the JSON body and the headers of
/// [`HandshakeError`] (the same in every adapter).
fn refusal(error: &HandshakeError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = warp::reply::with_status(
        warp::reply::with_header(error.body(), "content-type", "application/json"),
        status,
    )
    .into_response();
    for (name, value) in error.response_headers() {
        if let Ok(value) = warp::http::HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

/// `101 Switching Protocols` for a request whose upgrade headers `warp::ws()` checked.
fn switching_protocols(headers: &HeaderMap) -> Response {
    let mut res = Response::default();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    // The accept key is base64, always a valid header value.
    if let Ok(accept) = HeaderValue::from_str(&zocket_hyper::socket::accept_key(key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_that_are_not_utf8_are_kept_lossily() {
        let mut headers = HeaderMap::new();
        headers.insert("x-name", "ada".parse().unwrap());
        headers.insert(
            "x-raw",
            warp::http::HeaderValue::from_bytes(&[b'a', 0xff]).unwrap(),
        );
        let mut pairs = header_pairs(&headers);
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                ("x-name".to_owned(), "ada".to_owned()),
                ("x-raw".to_owned(), "a\u{fffd}".to_owned())
            ]
        );
    }

    #[test]
    fn refusals_are_json_with_the_status_of_the_error() {
        let res = refusal(&HandshakeError::Unauthorized("invalid token".into()));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/json"
        );
    }
}
