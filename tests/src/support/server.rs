//! A Zocket server on a real socket in this process, served by either adapter.

use std::net::SocketAddr;

use tokio::task::JoinHandle;
use warp::Filter;
use zocket_core::{Context, Server, StatsSnapshot};

use super::WAIT;
use super::ws::RawClient;

/// The adapter that serves the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `zocket_warp::upgrade` mounted at `/`, served by `zocket_warp::serve` (as the
    /// `reference` binary does).
    Warp,
    /// `zocket_warp::upgrade` served by warp's own `warp::serve`.
    WarpServe,
    /// `zocket_hyper::serve`.
    Hyper,
}

impl Adapter {
    /// The two adapters every scenario runs on.
    pub const BOTH: [Adapter; 2] = [Adapter::Warp, Adapter::Hyper];
    /// Both adapters, and `zocket_warp::upgrade` under `warp::serve`.
    pub const ALL: [Adapter; 3] = [Adapter::Warp, Adapter::WarpServe, Adapter::Hyper];
}

/// A Zocket server on `127.0.0.1` in this process; the HTTP task is aborted on drop.
pub struct AppServer<C: Context> {
    /// The Zocket server (stats, shutdown, event waits).
    pub server: Server<C>,
    /// Where it listens.
    pub addr: SocketAddr,
    stop_http: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<JoinHandle<()>>,
}

impl<C: Context> AppServer<C> {
    /// Serve `server` on a free port of 127.0.0.1.
    pub async fn start(adapter: Adapter, server: Server<C>) -> Self {
        Self::start_at(adapter, server, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Serve `server` at `addr` (e.g. the port of a server that was shut down).
    pub async fn start_at(adapter: Adapter, server: Server<C>, addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let http = match adapter {
            // Stops accepting by itself when the shutdown begins.
            Adapter::Warp => tokio::spawn(zocket_warp::serve(
                listener,
                zocket_warp::upgrade(server.clone()).with(warp::trace::request()),
                server.clone(),
            )),
            Adapter::WarpServe => tokio::spawn(
                warp::serve(zocket_warp::upgrade(server.clone()))
                    .incoming(listener)
                    .graceful(async {
                        let _ = stopped.await;
                    })
                    .run(),
            ),
            Adapter::Hyper => tokio::spawn(zocket_hyper::serve(listener, server.clone())),
        };
        AppServer {
            server,
            addr,
            stop_http: Some(stop_http),
            http: Some(http),
        }
    }

    /// `ws://ADDR/`
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The server's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.server.stats()
    }

    /// Connect a raw client with these handshake query parameters (e.g. `userName=ada`).
    pub async fn client(&self, query: &str) -> RawClient {
        RawClient::connect(self.addr, query).await
    }

    /// Wait until `cond` holds for the server (its stats, its admitted connections):
    /// [`Server::wait_until`], an event wait, bounded by [`WAIT`].
    pub async fn wait_until(&self, what: &str, cond: impl FnMut(&Server<C>) -> bool) {
        if tokio::time::timeout(WAIT, self.server.wait_until(cond))
            .await
            .is_err()
        {
            panic!(
                "never: {what}; stats {:?}, admitted {:?}",
                self.stats(),
                self.server.admitted()
            );
        }
    }

    /// Wait until `cond` holds for the stats (see [`wait_until`](Self::wait_until)).
    pub async fn wait_stats(&self, what: &str, mut cond: impl FnMut(&StatsSnapshot) -> bool) {
        self.wait_until(what, |s| cond(&s.stats())).await;
    }

    /// Graceful shutdown of the Zocket server (in-flight calls finish, sockets close
    /// with 1001), then of the HTTP server.
    pub async fn shutdown(&mut self) {
        self.server.shutdown().await;
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        if let Some(http) = self.http.take() {
            tokio::time::timeout(WAIT, http)
                .await
                .expect("the HTTP server stops after the shutdown")
                .expect("the HTTP server task does not fail");
        }
    }
}

impl<C: Context> Drop for AppServer<C> {
    fn drop(&mut self) {
        if let Some(http) = &self.http {
            http.abort();
        }
    }
}
