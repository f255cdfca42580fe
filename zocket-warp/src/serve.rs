//! An accept loop for warp filters with the handshake timeout, TLS, HTTP-version
//! checks and client-caused errors logged at DEBUG.

use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower_service::Service as _;
use warp::{Filter, Reply};
use zocket_core::{Context, Server};

use crate::Peer;

/// Serve `routes` (which contain [`upgrade`](crate::upgrade)) on `listener` over
/// HTTP/1.1 with upgrades until [`Server::shutdown`] begins; then the listener is
/// closed, HTTP connections that were not upgraded are shut down gracefully, and this
/// returns (open WebSockets are closed by the shutdown itself, with `1001`).
///
/// Compared with `warp::serve(routes)`:
/// - a client must send its request headers within
///   [`ServerConfig::handshake_timeout`](zocket_core::ServerConfig::handshake_timeout)
///   (default 10 s), else the connection is dropped (warp has no such timeout);
/// - an HTTP/1.0 upgrade is refused with `400` (warp answers `101`, then closes);
/// - a connection that ends with an error (e.g. a client that aborts its handshake) is
///   logged at DEBUG, not at ERROR as warp's server does;
/// - a request no route takes is answered `404` with `{"error":"NOT_FOUND",...}`.
///
/// In `routes`, `warp::addr::remote()` yields `None` (warp fills it only in its own
/// server); [`upgrade`](crate::upgrade) reads the peer address from the [`Peer`]
/// request extension this function adds, as can other filters with
/// `warp::ext::optional::<zocket_warp::Peer>()`.
pub async fn serve<F, C>(listener: TcpListener, routes: F, server: Server<C>)
where
    C: Context,
    F: Filter<Error = warp::Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    serve_inner(listener, routes, server, zocket_hyper::Listener::plain()).await
}

/// [`serve`] over TLS (`wss://`): each accepted connection first completes a TLS
/// handshake with `tls` (within the handshake timeout; a failed or slow one is dropped
/// and logged at DEBUG). Needs the `tls` feature (on by default).
///
/// Not run as a doc test (it needs a certificate and a TLS client);
/// `examples/tests/e2e_tls.rs` serves and connects over `wss://` with a certificate made
/// at test time.
///
/// ```no_run
/// use std::sync::Arc;
/// use zocket_warp::rustls;
/// # async fn run(server: zocket_core::Server<impl zocket_core::Context>, certs: Vec<rustls::pki_types::CertificateDer<'static>>, key: rustls::pki_types::PrivateKeyDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
/// let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
///     .with_safe_default_protocol_versions()?
///     .with_no_client_auth()
///     .with_single_cert(certs, key)?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
/// zocket_warp::serve_tls(listener, zocket_warp::upgrade(server.clone()), server, Arc::new(tls)).await;
/// # Ok(()) }
/// ```
#[cfg(feature = "tls")]
pub async fn serve_tls<F, C>(
    listener: TcpListener,
    routes: F,
    server: Server<C>,
    tls: std::sync::Arc<zocket_hyper::rustls::ServerConfig>,
) where
    C: Context,
    F: Filter<Error = warp::Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    serve_inner(listener, routes, server, zocket_hyper::Listener::tls(tls)).await
}

async fn not_found(rejection: warp::Rejection) -> Result<warp::reply::Response, warp::Rejection> {
    if rejection.is_not_found() {
        let body = r#"{"error":"NOT_FOUND","message":"no route for this request"}"#;
        Ok(warp::reply::with_status(
            warp::reply::with_header(body, "content-type", "application/json"),
            warp::http::StatusCode::NOT_FOUND,
        )
        .into_response())
    } else {
        Err(rejection)
    }
}

async fn serve_inner<F, C>(
    listener: TcpListener,
    routes: F,
    server: Server<C>,
    how: zocket_hyper::Listener,
) where
    C: Context,
    F: Filter<Error = warp::Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let service = warp::service(routes.recover(not_found));
    zocket_hyper::serve_with(listener, server, how, move |remote_addr| {
        let service = service.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let peer = Peer {
                remote_addr,
                version: req.version(),
            };
            req.extensions_mut().insert(peer);
            service.clone().call(req)
        })
    })
    .await
}
