//! Building a [`Server`]: the router, the application state, the configuration, the hub.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Slots;
use super::config::ServerConfig;
use super::{Inner, Server};
use crate::connection;
use crate::context::Context;
use crate::hub::{Hub, LocalHub};
use crate::redact::Redaction;
use crate::router::Router;
use crate::stats::Stats;

/// Builds a [`Server`]; see [`Server::builder`].
///
/// `St` records whether the application state was given: [`NoState`] until
/// [`state`](Self::state) is called. Without it the state is `Default::default()`
/// (which is how `type State = ()` needs nothing); a state that is not `Default` (a token
/// table loaded at start-up, a database pool) must be given: forgetting it is a compile
/// error, not a panic.
pub struct ServerBuilder<C: Context, St = NoState> {
    router: Router<C>,
    config: ServerConfig,
    hub: Option<Arc<dyn Hub>>,
    state: St,
}

impl<C: Context, St> std::fmt::Debug for ServerBuilder<C, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("router", &self.router)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The application state of a [`ServerBuilder`] before [`ServerBuilder::state`] is called.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoState;

/// What a [`ServerBuilder`] holds as its application state: [`NoState`] (then the
/// state's `Default`) or the state given to [`ServerBuilder::state`].
#[diagnostic::on_unimplemented(
    message = "the server needs its application state `{S}`",
    label = "call `.state(..)` on the builder: `Server::builder(router).state(app).build()`",
    note = "the context's `type State` is `{S}`, which is not `Default`; only a `Default` state (e.g. `()`) is made without `.state(..)`"
)]
pub trait BuilderState<S>: sealed::Sealed {
    #[doc(hidden)]
    fn into_state(self) -> Arc<S>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoState {}
    impl<S> Sealed for std::sync::Arc<S> {}
}

impl<S: Default> BuilderState<S> for NoState {
    fn into_state(self) -> Arc<S> {
        Arc::new(S::default())
    }
}

impl<S> BuilderState<S> for Arc<S> {
    fn into_state(self) -> Arc<S> {
        self
    }
}

impl<C: Context, St> ServerBuilder<C, St> {
    /// Use this configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }
    /// Use this hub instead of a fresh [`LocalHub`].
    pub fn hub(mut self, hub: Arc<dyn Hub>) -> Self {
        self.hub = Some(hub);
        self
    }
    /// The application state ([`Context::State`]), shared by every connection: reachable
    /// in `connect`, `disconnect`, every middleware and handler (`cx.state()`). Takes
    /// the value or an `Arc` of it.
    pub fn state(self, state: impl Into<Arc<C::State>>) -> ServerBuilder<C, Arc<C::State>> {
        ServerBuilder {
            router: self.router,
            config: self.config,
            hub: self.hub,
            state: state.into(),
        }
    }
    /// The server.
    pub fn build(self) -> Server<C>
    where
        St: BuilderState<C::State>,
    {
        let stats = Arc::new(Stats::default());
        let slots = Slots::new(
            self.config.max_connections,
            self.config.max_connections_per_ip,
            stats.clone(),
        );
        let redaction = Arc::new(Redaction::new(&self.config.redact_headers));
        Server {
            inner: Arc::new(Inner {
                router: self.router,
                state: self.state.into_state(),
                engine: Arc::new(connection::Settings::from_config(&self.config)),
                config: self.config,
                hub: self.hub.unwrap_or_else(|| Arc::new(LocalHub::new())),
                stats,
                slots,
                redaction,
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                accepting: AtomicBool::new(true),
            }),
        }
    }
}

impl<C: Context> Server<C> {
    /// A server with the default configuration and an in-memory hub, for a context
    /// whose application state is `Default` (e.g. `type State = ()`), starting from
    /// that default; otherwise use `Server::builder(router).state(app).build()`.
    pub fn new(router: Router<C>) -> Self
    where
        NoState: BuilderState<C::State>,
    {
        Self::builder(router).build()
    }

    /// A builder, to set the application state, the configuration or the hub.
    pub fn builder(router: Router<C>) -> ServerBuilder<C> {
        ServerBuilder {
            router,
            config: ServerConfig::default(),
            hub: None,
            state: NoState,
        }
    }
}
