//! [`ZocketService`]: the hyper / tower service that validates a WebSocket upgrade, runs
//! the handshake and hands the upgraded socket to the engine.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures::future;
use http::header;
use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use zocket_core::{
    Context, HandshakeError, HandshakeRequest, HttpVersion, Server, UpgradeRequest,
    validate_upgrade,
};

use crate::response::{header_pairs, json_error, refusal, switching_protocols};
use crate::socket;

/// The body of every response [`ZocketService`] produces (empty for `101`, JSON for
/// refusals).
pub type ResponseBody = http_body_util::Full<bytes::Bytes>;

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
/// [`with_path`](Self::with_path), as [`serve`](crate::serve) does with `/`, other paths get `404`.
///
/// The connection must be served with upgrades enabled (`with_upgrades()` on hyper's
/// HTTP/1 connection, as [`serve`](crate::serve) and axum do); otherwise requests are answered `500`.
///
/// The peer address passed to the handshake ([`ConnInfo::remote_addr`]) is the one set
/// with [`with_remote_addr`](Self::with_remote_addr) (as [`serve`](crate::serve) does), else a
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
    /// with `{"error":"NOT_FOUND",...}`. [`serve`](crate::serve) uses `/`. Without it (mounted in a
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
