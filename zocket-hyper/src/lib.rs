//! The [hyper 1](https://docs.rs/hyper/1) adapter of Zocket for Rust, with its own
//! lean WebSocket transport ([`socket`]).
//!
//! - [`ZocketService`]: a service that checks the WebSocket upgrade request and the
//!   Zocket handshake **before** upgrading (origin allow-list, handshake headers from the
//!   HTTP headers and the query string, the context's connect hook), answers
//!   `101 Switching Protocols` and drives the socket with the core's connection driver.
//!   A refused handshake is answered with the protocol's status and JSON body (`400`
//!   `INVALID_HEADERS` with its `issues`, `401`, `403`, `503` while shutting down) and no
//!   upgrade. It implements both [`hyper::service::Service`] and
//!   [`tower_service::Service`], so it is served by hyper directly or mounted in a tower
//!   based framework (e.g. axum's `Router::route_service("/ws", service)`).
//! - [`serve`]: a ready-made accept loop on a [`TcpListener`] (HTTP/1.1 with upgrades)
//!   that stops accepting when [`Server::shutdown`] begins.
//!
//! The WebSocket's maximum message size comes from
//! [`ServerConfig::max_message_bytes`](zocket_core::ServerConfig::max_message_bytes); a
//! larger message closes the connection with `1009`.
//!
//! # The socket: buffers, memory, closing
//!
//! After the upgrade, the connection is driven by this crate's own RFC 6455 transport
//! ([`socket`]; `zocket-warp` uses it too), built so that an idle connection holds
//! almost nothing:
//!
//! - **No read buffer while idle.** Reads go into a [`socket::READ_CHUNK`] (16 KiB)
//!   scratch buffer on the stack; only the bytes received are kept, until their frames
//!   are handed to the engine, and the buffer is released when the socket has nothing
//!   more to read. A frame arriving in pieces is collected in a buffer sized for it.
//!   The size limit is checked on the frame header, so an oversize message is never
//!   buffered (it is skipped as it arrives, and the connection closes with `1009`).
//! - **No write buffer while idle.** Frames are encoded as the engine feeds them
//!   (payloads over 1 KiB are written from their own shared bytes, so an event fanned
//!   out to many connections is not copied per recipient), written with vectored
//!   writes, and nothing stays allocated after a flush. At most
//!   [`socket::WRITE_HIGH_WATER`] (64 KiB) is buffered before the writer writes out; the
//!   engine's outbound byte budget bounds the rest.
//! - **Memory per idle connection**, measured with the `reference` binary at 10 000
//!   idle connections (`idle-probe`, see `BENCHMARKS.md`): about 5.3 KiB of server RSS
//!   in all (engine, hub and socket included), down from about 137 KiB with
//!   tokio-tungstenite's default 128 KiB read buffer. The transport's own share is
//!   about 0.5 KiB (its reader and writer state, the split halves, hyper's upgraded
//!   connection); the rest is the engine's future, the handshake headers the
//!   connection keeps, the hub's entry and tokio's socket registration.
//! - **Pings** are answered by the engine ([`PingReplies::Engine`]) under the same
//!   outbound byte budget as every other frame, so a client that pings and never reads
//!   cannot grow the server's memory.
//! - **Closing.** The engine writes its close frame, keeps reading and discarding until
//!   the client's close frame or its close timeout, then closes the sink: the writer
//!   flushes and shuts down the TCP write side (FIN). The socket is then read (and
//!   discarded) for at most [`socket::LINGER`] (1 s) more, until the client closes its
//!   side, before it is dropped, so that the kernel does not answer late bytes with a
//!   reset: a client that is still sending receives the close code and reason.
//!
//! [`PingReplies::Engine`]: zocket_core::PingReplies::Engine
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
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let accept_loop = tokio::spawn(zocket_hyper::serve(listener, server.clone()));
//!
//! let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?userName=ada"))
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
//! // Graceful shutdown: the accept loop stops, open sockets are closed with 1001.
//! server.shutdown().await;
//! accept_loop.await.unwrap();
//! # }
//! ```
//!
//! Mounted in axum, next to other routes (axum serves connections with upgrades):
//!
//! ```no_run
//! # async fn run(server: zocket_core::Server<impl zocket_core::Context>) -> std::io::Result<()> {
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .route_service("/ws", zocket_hyper::ZocketService::new(server));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Under axum the handshake sees no peer address unless a `SocketAddr` request
//! extension is added (e.g. by a small middleware reading axum's `ConnectInfo`).
//!
//! Serving the service with your own hyper connection instead of [`serve`]:
//!
//! ```no_run
//! use hyper_util::rt::TokioIo;
//! use zocket_hyper::ZocketService;
//! # async fn run(server: zocket_core::Server<impl zocket_core::Context>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (stream, remote) = listener.accept().await?;
//!     let service = ZocketService::new(server.clone()).with_remote_addr(remote);
//!     tokio::spawn(async move {
//!         let conn = hyper::server::conn::http1::Builder::new()
//!             .serve_connection(TokioIo::new(stream), service)
//!             .with_upgrades(); // required: the WebSocket takes the connection over
//!         let _ = conn.await;
//!     });
//! }
//! # }
//! ```
#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use zocket_core::{Context, HandshakeError, HandshakeRequest, Server};

pub mod socket;

/// The body of every response [`ZocketService`] produces (empty for `101`, JSON for
/// refusals).
pub type ResponseBody = Full<Bytes>;

/// The future returned by [`ZocketService`]'s `call`.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static>>;

/// A hyper / tower service that serves Zocket WebSocket connections with a [`Server`].
///
/// For each request it checks that it is a WebSocket upgrade (`GET`,
/// `Connection: upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`,
/// `Sec-WebSocket-Key`; otherwise `405`, `400` or `426` with a JSON body), runs
/// [`Server::handshake`], and answers `101` with `Sec-WebSocket-Accept`, after which a
/// spawned task drives the socket until it ends. It serves every path it receives;
/// route it with your framework if it shares a port with other routes.
///
/// The connection must be served with upgrades enabled (`with_upgrades()` on hyper's
/// HTTP/1 connection, as [`serve`] and axum do); otherwise requests are answered `500`.
///
/// The peer address passed to the handshake ([`ConnInfo::remote_addr`]) is the one set
/// with [`with_remote_addr`](Self::with_remote_addr), else a [`SocketAddr`] found in the
/// request's extensions, else none.
///
/// [`ConnInfo::remote_addr`]: zocket_core::ConnInfo::remote_addr
pub struct ZocketService<C: Context> {
    server: Server<C>,
    remote_addr: Option<SocketAddr>,
}

impl<C: Context> Clone for ZocketService<C> {
    fn clone(&self) -> Self {
        Self {
            server: self.server.clone(),
            remote_addr: self.remote_addr,
        }
    }
}

impl<C: Context> std::fmt::Debug for ZocketService<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZocketService")
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

impl<C: Context> ZocketService<C> {
    /// A service for `server`.
    pub fn new(server: Server<C>) -> Self {
        Self {
            server,
            remote_addr: None,
        }
    }

    /// The peer address of the connection this service instance serves.
    pub fn with_remote_addr(mut self, remote_addr: SocketAddr) -> Self {
        self.remote_addr = Some(remote_addr);
        self
    }

    /// Handle one request (what both `Service` impls call).
    pub fn handle<B>(&self, mut req: Request<B>) -> ResponseFuture {
        let server = self.server.clone();
        let remote_addr = self
            .remote_addr
            .or_else(|| req.extensions().get::<SocketAddr>().copied());
        // Everything that needs the request happens now, so the future does not hold the
        // body (which need not be `Send`).
        let key = match check_upgrade(&req) {
            Ok(key) => key,
            Err(response) => return Box::pin(future::ready(Ok(response))),
        };
        if req.extensions().get::<OnUpgrade>().is_none() {
            tracing::error!(
                "WebSocket request on a connection served without upgrades (use `with_upgrades()`)"
            );
            return Box::pin(future::ready(Ok(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "this connection cannot be upgraded",
            ))));
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        let request = HandshakeRequest {
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            headers: header_pairs(req.headers()),
            remote_addr,
        };
        drop(req);
        Box::pin(async move {
            let accepted = match server.handshake(request).await {
                Ok(accepted) => accepted,
                Err(refused) => return Ok(refusal(&refused)),
            };
            let max = server.config().max_message_bytes;
            tokio::spawn(socket::serve_upgrade(accepted, on_upgrade, max));
            Ok(switching_protocols(&key))
        })
    }
}

impl<C: Context, B> hyper::service::Service<Request<B>> for ZocketService<C> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<B>) -> Self::Future {
        self.handle(req)
    }
}

impl<C: Context, B> tower_service::Service<Request<B>> for ZocketService<C> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.handle(req)
    }
}

/// Accept connections on `listener` and serve each with a [`ZocketService`] over
/// HTTP/1.1 with upgrades, until [`Server::shutdown`] begins: then the listener is
/// closed, HTTP connections that were not upgraded are shut down gracefully, and this
/// returns (open WebSockets are closed by the shutdown itself, with `1001`).
///
/// Accept errors (e.g. too many open files) are logged and retried after a short pause.
pub async fn serve<C: Context>(listener: TcpListener, server: Server<C>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    loop {
        let (stream, remote_addr) = tokio::select! {
            _ = server.shutdown_started() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = ZocketService::new(server.clone()).with_remote_addr(remote_addr);
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let server = server.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = server.shutdown_started() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %remote_addr, "HTTP connection ended with an error");
            }
        });
    }
    tracing::debug!("shutdown started: no longer accepting connections");
}

/// Checks the upgrade headers; returns the `Sec-WebSocket-Key`.
#[allow(clippy::result_large_err)]
fn check_upgrade<B>(req: &Request<B>) -> Result<HeaderValue, Response<ResponseBody>> {
    if req.method() != Method::GET {
        let mut res = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "a WebSocket upgrade must be a GET request",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return Err(res);
    }
    let headers = req.headers();
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "expected a WebSocket upgrade request (Connection: upgrade, Upgrade: websocket)",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut res = json_error(
            StatusCode::UPGRADE_REQUIRED,
            "BAD_REQUEST",
            "unsupported Sec-WebSocket-Version (13 is required)",
        );
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(res);
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(key.clone()),
        _ => Err(json_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "missing Sec-WebSocket-Key",
        )),
    }
}

/// Whether a comma-separated header (any of its occurrences) holds `token`, ignoring case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
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

fn switching_protocols(key: &HeaderValue) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    // The accept key is base64, always a valid header value.
    if let Ok(accept) = HeaderValue::from_str(&socket::accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

fn json_response(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A JSON error body; `message` is always a fixed text of this crate (no escaping needed).
fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        format!(r#"{{"error":"{code}","message":"{message}"}}"#),
    )
}

fn refusal(error: &HandshakeError) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, error.body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request() -> http::request::Builder {
        Request::get("/")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn a_valid_upgrade_request_yields_its_key() {
        let req = upgrade_request().body(()).unwrap();
        assert_eq!(check_upgrade(&req).unwrap(), "dGhlIHNhbXBsZSBub25jZQ==");
        let res = switching_protocols(&check_upgrade(&req).unwrap());
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455's example key and accept value.
        assert_eq!(
            res.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn requests_that_are_not_upgrades_are_refused_with_json() {
        let post = Request::post("/").body(()).unwrap();
        let res = check_upgrade(&post).unwrap_err();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

        let plain = Request::get("/").body(()).unwrap();
        let res = check_upgrade(&plain).unwrap_err();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");

        let mut old = upgrade_request().body(()).unwrap();
        old.headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let res = check_upgrade(&old).unwrap_err();
        assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(res.headers()[header::SEC_WEBSOCKET_VERSION], "13");

        let mut keyless = upgrade_request().body(()).unwrap();
        keyless.headers_mut().remove(header::SEC_WEBSOCKET_KEY);
        assert_eq!(
            check_upgrade(&keyless).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn refusals_carry_the_handshake_status_and_body() {
        let res = refusal(&HandshakeError::Unauthorized("invalid token".into()));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }
}
