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
//!   idle connections (`idle-probe`, see `BENCHMARKS.md`): about 2.3 KiB of server RSS
//!   in all (engine, hub and socket included), down from about 137 KiB with
//!   tokio-tungstenite's default 128 KiB read buffer. The transport's own share is
//!   under 0.5 KiB (its reader and writer state, the split halves, hyper's upgraded
//!   connection); the rest is the engine's future and queue, the handshake headers the
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
//! # // The client reads on, so it answers the server's close frame at once.
//! # let reading = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
//! // Graceful shutdown: the accept loop stops, open sockets are closed with 1001.
//! server.shutdown().await;
//! accept_loop.await.unwrap();
//! # reading.await.unwrap();
//! # }
//! ```
//!
//! Mounted in axum, next to other routes. Served with
//! `into_make_service_with_connect_info::<SocketAddr>()`, the handshake sees the peer
//! address ([`ConnInfo::remote_addr`]) from axum's `ConnectInfo` (the `axum` feature, on
//! by default; axum 0.8):
//!
//! ```
//! use std::net::SocketAddr;
//! use zocket_core::{Connect, Context, Cx, Message, Reject, Router, Server};
//!
//! /// The context keeps the peer address the handshake saw.
//! struct Peer(Option<SocketAddr>);
//! impl Context for Peer {
//!     type Headers = serde_json::Value;
//!     type State = ();
//!     async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
//!         Ok(Peer(conn.info.remote_addr))
//!     }
//! }
//! enum WhoAmI {}
//! impl Message for WhoAmI {
//!     const NAME: &'static str = "whoami";
//!     type Input = ();
//!     type Output = Option<SocketAddr>;
//! }
//! async fn whoami(cx: Cx<Peer>, _: ()) -> Result<Option<SocketAddr>, Reject> {
//!     Ok(cx.0)
//! }
//!
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(Router::<Peer>::new().on::<WhoAmI>(whoami));
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .route_service("/ws", zocket_hyper::ZocketService::new(server.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! });
//! # use futures::{SinkExt, StreamExt};
//! # // A raw client on a socket whose local address we know.
//! # let stream = tokio::net::TcpStream::connect(addr).await?;
//! # let me = stream.local_addr()?;
//! # let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await?;
//! # let _welcome = ws.next().await.unwrap()?;
//! # ws.send(r#"{"type":"whoami","payload":null,"rpcId":"1"}"#.into()).await?;
//! # let reply = ws.next().await.unwrap()?;
//! // The handler answers the client's own address.
//! # assert_eq!(reply.to_text()?, format!(r#"{{"type":"__rpc_res","payload":"{me}","rpcId":"1"}}"#));
//! # drop(ws);
//! # server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Without the `axum` feature (or with another framework), add the address as a
//! `SocketAddr` request extension, or use
//! [`with_remote_addr`](ZocketService::with_remote_addr) per connection as below.
//!
//! Serving the service with your own hyper connection instead of [`serve`]:
//!
//! ```
//! use hyper_util::rt::TokioIo;
//! use zocket_hyper::ZocketService;
//! # use zocket_core::{Connect, Context, Reject, Router, Server};
//! # struct User;
//! # impl Context for User {
//! #     type Headers = serde_json::Value;
//! #     type State = ();
//! #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let server = Server::new(Router::<User>::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let accept_loop = async move {
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
//! # #[allow(unreachable_code)] Ok::<(), std::io::Error>(()) };
//! # tokio::spawn(accept_loop);
//! # use futures::StreamExt;
//! # let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
//! # let welcome = ws.next().await.unwrap().unwrap();
//! # assert!(welcome.to_text().unwrap().contains("__welcome"));
//! # Ok(()) }
//! ```
//!
//! [`ConnInfo::remote_addr`]: zocket_core::ConnInfo::remote_addr
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
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use zocket_core::{
    Context, HandshakeError, HandshakeRequest, HttpVersion, Server, UpgradeRequest,
    validate_upgrade,
};

pub mod socket;

/// The body of every response [`ZocketService`] produces (empty for `101`, JSON for
/// refusals).
pub type ResponseBody = Full<Bytes>;

/// The future returned by [`ZocketService`]'s `call`.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static>>;

/// A hyper / tower service that serves Zocket WebSocket connections with a [`Server`].
///
/// For each request it checks that it is a valid WebSocket upgrade with
/// [`zocket_core::validate_upgrade`] (RFC 6455: `GET`, HTTP/1.1 or later, `Host`,
/// `Connection: upgrade`, `Upgrade: websocket`, a 16-byte `Sec-WebSocket-Key`; `400`
/// with a JSON body, or `426` with `Sec-WebSocket-Version: 13`), runs
/// [`Server::handshake`] (connection limits: `503` with `Retry-After`), and answers
/// `101` with `Sec-WebSocket-Accept`, after which a spawned task drives the socket until
/// it ends. Every refusal has the same status, headers and JSON body as in the warp
/// adapter. Created with [`new`](Self::new) it serves every path it receives (route it
/// with your framework, e.g. axum's `route_service`, which decides the path); with
/// [`with_path`](Self::with_path), as [`serve`] does with `/`, other paths get `404`.
///
/// The connection must be served with upgrades enabled (`with_upgrades()` on hyper's
/// HTTP/1 connection, as [`serve`] and axum do); otherwise requests are answered `500`.
///
/// The peer address passed to the handshake ([`ConnInfo::remote_addr`]) is the one set
/// with [`with_remote_addr`](Self::with_remote_addr) (as [`serve`] does), else a
/// [`SocketAddr`] request extension, else (with the `axum` feature, on by default) axum's
/// `ConnectInfo<SocketAddr>` or `MockConnectInfo<SocketAddr>` extension, else none.
///
/// [`ConnInfo::remote_addr`]: zocket_core::ConnInfo::remote_addr
pub struct ZocketService<C: Context> {
    server: Server<C>,
    remote_addr: Option<SocketAddr>,
    path: Option<String>,
}

impl<C: Context> Clone for ZocketService<C> {
    fn clone(&self) -> Self {
        Self {
            server: self.server.clone(),
            remote_addr: self.remote_addr,
            path: self.path.clone(),
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
            path: None,
        }
    }

    /// The peer address of the connection this service instance serves.
    pub fn with_remote_addr(mut self, remote_addr: SocketAddr) -> Self {
        self.remote_addr = Some(remote_addr);
        self
    }

    /// Serve only requests for exactly this path; any other path is answered `404`
    /// with `{"error":"NOT_FOUND",...}`. [`serve`] uses `/`. Without it (mounted in a
    /// router, e.g. axum's `route_service("/ws", ..)`) the router decides which paths
    /// reach the service, and the service serves every path it receives.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Handle one request (what both `Service` impls call).
    pub fn handle<B>(&self, mut req: Request<B>) -> ResponseFuture {
        let server = self.server.clone();
        let remote_addr = self.remote_addr.or_else(|| peer_addr(req.extensions()));
        if let Some(path) = &self.path {
            if req.uri().path() != path {
                return Box::pin(future::ready(Ok(json_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "no WebSocket endpoint at this path",
                ))));
            }
        }
        // Everything that needs the request happens now, so the future does not hold the
        // body (which need not be `Send`).
        let headers = header_pairs(req.headers());
        let upgrade = UpgradeRequest {
            method: req.method().as_str(),
            version: http_version(req.version()),
            headers: &headers,
        };
        if let Err(refused) = validate_upgrade(&upgrade) {
            tracing::debug!(error = %refused, remote = ?remote_addr, "not a valid WebSocket upgrade");
            return Box::pin(future::ready(Ok(refusal(&refused))));
        }
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
            // `validate` checked that there is exactly one.
            return Box::pin(future::ready(Ok(refusal(&HandshakeError::BadRequest(
                "missing Sec-WebSocket-Key",
            )))));
        };
        if req.extensions().get::<OnUpgrade>().is_none() {
            // A configuration error of the server (not something a client causes).
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
        let request = HandshakeRequest::new(req.uri().path())
            .query(req.uri().query().map(str::to_owned))
            .headers(headers)
            .remote_addr(remote_addr);
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

/// The peer address a framework left in the request's extensions.
fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    {
        use axum::extract::ConnectInfo;
        use axum::extract::connect_info::MockConnectInfo;
        if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
        if let Some(MockConnectInfo(addr)) = extensions.get::<MockConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
    }
    None
}

fn http_version(v: http::Version) -> HttpVersion {
    match v {
        http::Version::HTTP_09 => HttpVersion::Http09,
        http::Version::HTTP_10 => HttpVersion::Http10,
        http::Version::HTTP_2 => HttpVersion::H2,
        http::Version::HTTP_3 => HttpVersion::H3,
        _ => HttpVersion::Http11,
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

/// Accept connections on `listener` and serve each with a [`ZocketService`] at path `/`
/// over HTTP/1.1 with upgrades, until [`Server::shutdown`] begins: then the listener is
/// closed, HTTP connections that were not upgraded are shut down gracefully, and this
/// returns (open WebSockets are closed by the shutdown itself, with `1001`).
///
/// A client must send its request headers within
/// [`ServerConfig::handshake_timeout`](zocket_core::ServerConfig::handshake_timeout)
/// (default 10 s), else the connection is dropped. Accept errors (e.g. too many open
/// files) are logged and retried after a short pause.
pub async fn serve<C: Context>(listener: TcpListener, server: Server<C>) {
    serve_inner(listener, server, None).await
}

/// [`serve`] over TLS (`wss://`): each accepted connection first completes a TLS
/// handshake with `tls` (within the handshake timeout; a failed or slow one is dropped
/// and logged at DEBUG). Needs the `tls` feature.
///
/// A certificate made at test time, and a raw TLS client (`examples/tests/e2e_tls.rs`
/// does the same with zocket-client):
///
/// ```
/// use std::sync::Arc;
/// use zocket_hyper::rustls;
/// # use zocket_core::{Connect, Context, Reject, Router, Server};
/// # use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
/// # struct User;
/// # impl Context for User {
/// #     type Headers = serde_json::Value;
/// #     type State = ();
/// #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = Server::new(Router::<User>::new());
/// # let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
/// # let (certs, key) = (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())));
/// let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
///     .with_safe_default_protocol_versions()?
///     .with_no_client_auth()
///     .with_single_cert(certs, key)?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// tokio::spawn(zocket_hyper::serve_tls(listener, server.clone(), Arc::new(tls)));
/// # // A raw wss:// client trusting the certificate.
/// # let mut roots = rustls::RootCertStore::empty();
/// # roots.add(cert.der().clone())?;
/// # let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
/// #     .with_safe_default_protocol_versions()?.with_root_certificates(roots).with_no_client_auth();
/// # let tcp = tokio::net::TcpStream::connect(addr).await?;
/// # let stream = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(ServerName::try_from("localhost")?, tcp).await?;
/// # let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/", addr.port()), stream).await?;
/// # use futures::StreamExt;
/// # assert!(ws.next().await.unwrap()?.to_text()?.contains("__welcome"));
/// # drop(ws);
/// # server.shutdown().await;
/// # Ok(()) }
/// ```
#[cfg(feature = "tls")]
pub async fn serve_tls<C: Context>(
    listener: TcpListener,
    server: Server<C>,
    tls: std::sync::Arc<rustls::ServerConfig>,
) {
    serve_inner(listener, server, Some(tokio_rustls::TlsAcceptor::from(tls))).await
}

/// The rustls version [`serve_tls`] uses.
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;

#[cfg(feature = "tls")]
type Acceptor = tokio_rustls::TlsAcceptor;
#[cfg(not(feature = "tls"))]
type Acceptor = std::convert::Infallible;

async fn serve_inner<C: Context>(listener: TcpListener, server: Server<C>, tls: Option<Acceptor>) {
    let timeout = server.config().handshake_timeout;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout);
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
        let service = ZocketService::new(server.clone())
            .with_remote_addr(remote_addr)
            .with_path("/");
        let server = server.clone();
        let http = http.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    serve_connection(TokioIo::new(stream), service, &http, &server, remote_addr)
                        .await
                }
                #[cfg(feature = "tls")]
                Some(acceptor) => {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(
                                TokioIo::new(stream),
                                service,
                                &http,
                                &server,
                                remote_addr,
                            )
                            .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %remote_addr, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote_addr, "TLS handshake timed out"),
                    }
                }
                #[cfg(not(feature = "tls"))]
                Some(never) => match never {},
            }
        });
    }
    tracing::debug!("shutdown started: no longer accepting connections");
}

async fn serve_connection<C, IO>(
    io: IO,
    service: ZocketService<C>,
    http: &hyper::server::conn::http1::Builder,
    server: &Server<C>,
    remote_addr: SocketAddr,
) where
    C: Context,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = http.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = server.shutdown_started() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Client-caused (a closed or slow handshake, a malformed request): DEBUG.
        tracing::debug!(error = %e, %remote_addr, "HTTP connection ended with an error");
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

/// The response to a refused handshake: the status, the JSON body and the headers of
/// [`HandshakeError`] (the same in every adapter).
fn refusal(error: &HandshakeError) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = json_response(status, error.body());
    for (name, value) in error.response_headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request() -> http::request::Builder {
        Request::get("/")
            .header("host", "localhost")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn the_accept_key_is_derived_from_the_request_key() {
        let res = switching_protocols(&HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455's example key and accept value.
        assert_eq!(
            res.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    struct Nobody;
    impl Context for Nobody {
        type Headers = std::collections::HashMap<String, String>;
        type State = ();
        async fn connect(_: zocket_core::Connect<'_, Self>) -> Result<Self, zocket_core::Reject> {
            Ok(Nobody)
        }
    }

    async fn answer(service: &ZocketService<Nobody>, req: Request<()>) -> Response<ResponseBody> {
        service.handle(req).await.unwrap()
    }

    #[tokio::test]
    async fn requests_that_are_not_upgrades_are_refused_with_json() {
        let service = ZocketService::new(Server::new(zocket_core::Router::<Nobody>::new()));
        let post = Request::post("/").body(()).unwrap();
        let res = answer(&service, post).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");

        let mut old = upgrade_request().body(()).unwrap();
        *old.version_mut() = http::Version::HTTP_10;
        assert_eq!(
            answer(&service, old).await.status(),
            StatusCode::BAD_REQUEST
        );

        let mut old = upgrade_request().body(()).unwrap();
        old.headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let res = answer(&service, old).await;
        assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(res.headers()[header::SEC_WEBSOCKET_VERSION], "13");

        let mut short_key = upgrade_request().body(()).unwrap();
        short_key.headers_mut().insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("c2hvcnQ="),
        );
        assert_eq!(
            answer(&service, short_key).await.status(),
            StatusCode::BAD_REQUEST
        );

        // Valid, but the connection was not served with upgrades: a server error.
        let valid = upgrade_request().body(()).unwrap();
        assert_eq!(
            answer(&service, valid).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );

        let at_root = service.clone().with_path("/");
        let elsewhere = Request::get("/other").body(()).unwrap();
        let res = answer(&at_root, elsewhere).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn refusals_carry_the_handshake_status_and_body() {
        let res = refusal(&HandshakeError::Unauthorized("invalid token".into()));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let res = refusal(&HandshakeError::Unavailable {
            reason: "too many connections",
            retry_after: 7,
        });
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
    }
}
