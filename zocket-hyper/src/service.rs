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

use crate::response::{ResponseBody, header_pairs, json_error, refusal, switching_protocols};
use crate::socket;

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

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

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
