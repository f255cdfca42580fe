//! The harness every reference-app scenario is written against, once: start a server,
//! connect raw clients (send a raw frame or a call, receive), read a refused
//! handshake. Three implementations: [`InProcess`] (the virtual connections of
//! `zocket_core::testing`, no socket), [`Warp`] and [`Hyper`] (real sockets on
//! 127.0.0.1). [`scenarios!`](crate::scenarios) turns each scenario into one test per
//! implementation.

use std::future::Future;
use std::net::SocketAddr;

use serde_json::Value;
use zocket_core::testing::TestServer;
use zocket_core::{Context, Server, StatsSnapshot};

use super::WAIT;
use super::http::{self, HttpAnswer};
use super::server::{Adapter, AppServer};
use super::ws::RawClient;

/// A handshake the server refused.
#[derive(Debug)]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`{error, message, issues?}`).
    pub body: Value,
    /// The whole HTTP answer, over a socket (`None` in-process).
    pub http: Option<HttpAnswer>,
}

/// How a scenario reaches the server under test.
pub trait Harness: Sized {
    /// The router's connection context.
    type Ctx: Context;

    /// Serve `server`.
    fn start(server: Server<Self::Ctx>) -> impl Future<Output = Self>;

    /// The server under test (stats, event waits, shutdown).
    fn server(&self) -> &Server<Self::Ctx>;

    /// Whether clients are real sockets (some scenarios are about sockets only).
    fn sockets(&self) -> bool;

    /// Connect with these handshake query parameters (`userName=ada&userRole=admin`);
    /// the handshake must be accepted.
    fn client(&self, query: &str) -> impl Future<Output = RawClient>;

    /// Connect with these handshake query parameters; the handshake must be refused.
    fn refused(&self, query: &str) -> impl Future<Output = Refused>;

    /// Where the server listens, over sockets.
    fn addr(&self) -> Option<SocketAddr>;

    /// The server's counters.
    fn stats(&self) -> StatsSnapshot {
        self.server().stats()
    }

    /// Wait until `cond` holds for the stats (an event wait, bounded by [`WAIT`]).
    fn wait_stats(
        &self,
        what: &str,
        mut cond: impl FnMut(&StatsSnapshot) -> bool,
    ) -> impl Future<Output = ()> {
        async move {
            let wait = self.server().wait_until(|s| cond(&s.stats()));
            if tokio::time::timeout(WAIT, wait).await.is_err() {
                panic!("stats never showed {what}: {:?}", self.stats());
            }
        }
    }
}

/// The virtual connections of `zocket_core::testing`: the real handshake and
/// connection driver, without sockets.
pub struct InProcess<C: Context>(TestServer<C>);

impl<C: Context> Harness for InProcess<C> {
    type Ctx = C;

    async fn start(server: Server<C>) -> Self {
        InProcess(TestServer::from_server(server))
    }

    fn server(&self) -> &Server<C> {
        self.0.server()
    }

    fn sockets(&self) -> bool {
        false
    }

    async fn client(&self, query: &str) -> RawClient {
        match self.0.connect(form_pairs(query)).await {
            Ok(c) => RawClient::in_process(c).await,
            Err(e) => panic!("`{query}` was refused: {e:?}"),
        }
    }

    async fn refused(&self, query: &str) -> Refused {
        match self.0.connect(form_pairs(query)).await {
            Ok(c) => panic!("`{query}` was accepted as {}", c.client_id()),
            Err(e) => Refused {
                status: e.status(),
                body: serde_json::from_str(&e.body())
                    .unwrap_or_else(|err| panic!("refusal body is not JSON ({err}): {}", e.body())),
                http: None,
            },
        }
    }

    fn addr(&self) -> Option<SocketAddr> {
        None
    }
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

macro_rules! socket_harness {
    ($name:ident, $adapter:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $name<C: Context>(pub AppServer<C>);

        impl<C: Context> Harness for $name<C> {
            type Ctx = C;

            async fn start(server: Server<C>) -> Self {
                $name(AppServer::start($adapter, server).await)
            }

            fn server(&self) -> &Server<C> {
                &self.0.server
            }

            fn sockets(&self) -> bool {
                true
            }

            async fn client(&self, query: &str) -> RawClient {
                self.0.client(query).await
            }

            async fn refused(&self, query: &str) -> Refused {
                refused_over_http(self.0.addr, query).await
            }

            fn addr(&self) -> Option<SocketAddr> {
                Some(self.0.addr)
            }
        }
    };
}

socket_harness!(
    Warp,
    Adapter::Warp,
    "`zocket-warp` on a real socket (`zocket_warp::serve`)."
);
socket_harness!(Hyper, Adapter::Hyper, "`zocket-hyper` on a real socket.");

/// A raw HTTP upgrade request that must be refused: the status, JSON body and head.
async fn refused_over_http(addr: SocketAddr, query: &str) -> Refused {
    let answer = http::upgrade(addr, &format!("/?{query}")).await;
    assert_ne!(answer.status, 101, "`{query}` was accepted: {answer:?}");
    Refused {
        status: answer.status,
        body: answer.json(),
        http: Some(answer),
    }
}

/// One test per scenario and harness: `in_process::NAME`, `warp::NAME`, `hyper::NAME`
/// for the scenarios after `all:`, only `warp::NAME` and `hyper::NAME` after
/// `sockets:`. A scenario is `async fn NAME<H: Harness<Ctx = CTX>>()`.
#[macro_export]
macro_rules! scenarios {
    ($ctx:ty; all: [$($all:ident),* $(,)?] $(, sockets: [$($sock:ident),* $(,)?])? $(,)?) => {
        mod in_process {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $all() {
                    super::$all::<$crate::support::harness::InProcess<$ctx>>().await;
                }
            )*
        }
        $crate::scenarios!(@socket warp, Warp, $ctx; $($all,)* $($($sock,)*)?);
        $crate::scenarios!(@socket hyper, Hyper, $ctx; $($all,)* $($($sock,)*)?);
    };
    (@socket $module:ident, $harness:ident, $ctx:ty; $($name:ident,)*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<$crate::support::harness::$harness<$ctx>>().await;
                }
            )*
        }
    };
}
