//! The accept loop: TCP (or TLS) connections served over HTTP/1.1 with upgrades, the
//! handshake timeout, and a graceful stop when the server's shutdown begins. [`serve`]
//! runs it with a [`ZocketService`] at `/`; [`serve_with`] runs it with any hyper
//! service (the warp adapter serves its filters with it).

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use zocket_core::{Context, Server};

use crate::ZocketService;

type BoxError = Box<dyn StdError + Send + Sync>;

/// How accepted TCP connections are read: as they are, or through TLS first.
/// Built with [`Listener::plain`] or (feature `tls`) [`Listener::tls`].
#[derive(Clone)]
pub struct Listener {
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "tls")]
        let tls = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        f.debug_struct("Listener").field("tls", &tls).finish()
    }
}

impl Listener {
    /// Plain TCP (`ws://`).
    pub fn plain() -> Self {
        Self {
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// TLS (`wss://`) with this rustls configuration: each connection completes its TLS
    /// handshake within the handshake timeout, else it is dropped (logged at DEBUG).
    #[cfg(feature = "tls")]
    pub fn tls(config: std::sync::Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        Self {
            tls: Some(tokio_rustls::TlsAcceptor::from(config)),
        }
    }
}

fn root_service<C: Context>(server: Server<C>) -> impl Fn(SocketAddr) -> ZocketService<C> {
    move |remote_addr| {
        ZocketService::new(server.clone())
            .with_remote_addr(remote_addr)
            .with_path("/")
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
    serve_with(
        listener,
        server.clone(),
        Listener::plain(),
        root_service(server),
    )
    .await
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
    tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
) {
    serve_with(
        listener,
        server.clone(),
        Listener::tls(tls),
        root_service(server),
    )
    .await
}

/// The accept loop of [`serve`] with any hyper service: `make_service(remote_addr)` is
/// called once per accepted connection, which is then served over HTTP/1.1 with
/// upgrades, `TCP_NODELAY`, [`ServerConfig::handshake_timeout`] for the request headers
/// (and for the TLS handshake), until [`Server::shutdown`] begins: then the listener is
/// closed and connections that were not upgraded are shut down gracefully. Accept
/// errors (e.g. too many open files) are logged at WARN and retried after 100 ms;
/// client-caused HTTP errors are logged at DEBUG.
///
/// [`ServerConfig::handshake_timeout`]: zocket_core::ServerConfig::handshake_timeout
///
/// ```
/// # use zocket_core::{Connect, Context, Reject, Router, Server};
/// # struct User;
/// # impl Context for User {
/// #     type Headers = serde_json::Value;
/// #     type State = ();
/// #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use zocket_hyper::{Listener, ZocketService};
/// let server = Server::new(Router::<User>::new());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// let for_each = server.clone();
/// tokio::spawn(zocket_hyper::serve_with(listener, server.clone(), Listener::plain(), move |peer| {
///     ZocketService::new(for_each.clone()).with_remote_addr(peer).with_path("/ws")
/// }));
/// # use futures::StreamExt;
/// # let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
/// # assert!(ws.next().await.unwrap().unwrap().to_text().unwrap().contains("__welcome"));
/// # drop(ws);
/// # server.shutdown().await;
/// # Ok(()) }
/// ```
pub async fn serve_with<C, M, S, B>(
    listener: TcpListener,
    server: Server<C>,
    how: Listener,
    make_service: M,
) where
    C: Context,
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
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
        let service = make_service(remote_addr);
        let server = server.clone();
        let http = http.clone();
        #[cfg(feature = "tls")]
        let tls = how.tls.clone();
        // Boxed: the HTTP connection's future (about 5 KiB, hyper's state included) is
        // an ordinary allocation, and the task itself a small one. A tokio task is
        // aligned to 128 bytes, which glibc serves with `memalign`: that needs a larger
        // free block than the one a task of the same size leaves when it ends. Unboxed,
        // the many handshakes' tasks left ~5 KiB holes between the WebSockets that
        // outlive them, never reused: 1.3 KiB of RSS per idle connection at 10 000
        // (200 handshakes at a time), 2.4 KiB when clients connect one at a time.
        tokio::spawn(Box::pin(async move {
            #[cfg(feature = "tls")]
            if let Some(acceptor) = tls {
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        serve_connection(TokioIo::new(stream), service, &http, &server, remote_addr)
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %remote_addr, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%remote_addr, "TLS handshake timed out"),
                }
                return;
            }
            serve_connection(TokioIo::new(stream), service, &http, &server, remote_addr).await
        }));
    }
    tracing::debug!("shutdown started: no longer accepting connections");
}

async fn serve_connection<C, IO, S, B>(
    io: IO,
    service: S,
    http: &hyper::server::conn::http1::Builder,
    server: &Server<C>,
    remote_addr: SocketAddr,
) where
    C: Context,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
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
