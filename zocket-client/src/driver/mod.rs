//! The connection driver: one task per client that connects, runs a [`Session`] per
//! connection, and reconnects by the [`Reconnect`](crate::Reconnect) policy until the
//! client is closed.
//!
//! - [`endpoint`]: the URL and handshake headers of every attempt;
//! - [`connect`]: one attempt (TCP, TLS, WebSocket handshake) and what a refusal means;
//! - [`session`]: one connection (welcome, hooks, reader, writer, heartbeat);
//! - [`hooks`]: the after-connect hooks as the driver sees them;
//! - [`incoming`]: routing of incoming frames into calls, watches and subscriptions.
//!
//! The driver knows nothing of the [`Client`](crate::Client) handle: the handle gives it
//! its after-connect hooks as an [`AfterConnect`].

mod connect;
mod endpoint;
mod hooks;
mod incoming;
mod session;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(crate) use self::endpoint::{Endpoint, is_secret_header};
pub(crate) use self::hooks::{AfterConnect, HookRun};
use self::session::{End, FirstTx, Session};
use crate::calls::lock;
use crate::error::ConnectError;
use crate::outbound::OutboxRx;
use crate::shared::Shared;
use crate::state::ConnectionState;

/// The driver task's state.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    outbox: OutboxRx,
    shutdown: CancellationToken,
    /// The number of the current connection (1 for the first).
    generation: u64,
}

/// What the reconnect loop does next.
enum Step {
    /// Try to connect, as attempt `n` since the last connection (0: the first try).
    Attempt(u32),
    /// Stop: the client is closed, for this reason (`None`: closed by the user, or the
    /// first `connect` was told).
    Stop(Option<ConnectError>),
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        endpoint: Endpoint,
        outbox: OutboxRx,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            shared,
            endpoint,
            outbox,
            shutdown,
            generation: 0,
        }
    }

    /// Connect, run sessions and reconnect until closed. `first` learns how the first
    /// connection went.
    pub(crate) async fn run(mut self, hooks: Box<dyn AfterConnect>, first: FirstTx) {
        let mut first = Some(first);
        let mut step = Step::Attempt(0);
        let mut last_error: Option<ConnectError> = None;
        let close_reason = loop {
            let attempt = match step {
                Step::Stop(reason) => break reason,
                Step::Attempt(attempt) => attempt,
            };
            if attempt > 0 {
                if let Err(stop) = self
                    .before_retry(attempt, &mut last_error, &mut first)
                    .await
                {
                    break stop;
                }
            }
            let opened = tokio::select! {
                _ = self.shutdown.cancelled() => break None,
                r = connect::open(&self.endpoint, &self.shared.config) => r,
            };
            step = match opened {
                Ok(ws) => {
                    last_error = None;
                    self.generation += 1;
                    let session = Session {
                        shared: &self.shared,
                        generation: self.generation,
                        shutdown: &self.shutdown,
                        first: &mut first,
                    };
                    let end = session.run(ws, &mut self.outbox, &*hooks).await;
                    self.after_session();
                    self.after_end(end, &mut first)
                }
                Err(e) => self.after_failed_attempt(attempt, e, &mut last_error, &mut first),
            };
        };
        self.finish(first, close_reason);
    }

    /// Before reconnect attempt `attempt` (1-based): give up when the policy says so,
    /// else say so in the state and wait the backoff. `Err` ends the loop.
    async fn before_retry(
        &self,
        attempt: u32,
        last_error: &mut Option<ConnectError>,
        first: &mut Option<FirstTx>,
    ) -> Result<(), Option<ConnectError>> {
        let policy = &self.shared.config.reconnect;
        if !policy.allows(attempt) {
            let attempts = attempt - 1;
            let last = last_error
                .take()
                .unwrap_or_else(|| ConnectError::Transport("connection lost".into()));
            let error = if attempts > 0 {
                ConnectError::GaveUp {
                    attempts,
                    last: Box::new(last),
                }
            } else {
                last
            };
            warn!(attempts, "giving up reconnecting; the client is closed");
            return Err(tell_first(first, error));
        }
        self.shared
            .state_tx
            .send_replace(ConnectionState::Reconnecting { attempt });
        let delay = policy.jittered_delay(attempt);
        debug!(attempt, ?delay, "waiting before reconnecting");
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(None),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// An attempt failed: retry, or stop (a rejection, or the first connection without
    /// `retry_initial_connect`).
    fn after_failed_attempt(
        &self,
        attempt: u32,
        e: ConnectError,
        last_error: &mut Option<ConnectError>,
        first: &mut Option<FirstTx>,
    ) -> Step {
        let fatal = e.is_fatal();
        if first.is_some() && (fatal || !self.shared.config.retry_initial_connect) {
            return Step::Stop(tell_first(first, e));
        }
        if fatal {
            warn!(error = %e, "not reconnecting; the client is closed");
            return Step::Stop(Some(e));
        }
        debug!(attempt, error = %e, "connection attempt failed");
        *last_error = Some(e);
        Step::Attempt(attempt.saturating_add(1))
    }

    /// A session ended: reconnect, or stop.
    fn after_end(&self, end: End, first: &mut Option<FirstTx>) -> Step {
        let reason = match end {
            End::Shutdown | End::HookFailed => return Step::Stop(None),
            End::Dropped(reason) => reason,
        };
        let config = &self.shared.config;
        if first.is_some() && !(config.retry_initial_connect && config.reconnect.is_enabled()) {
            // The first connection died before it was ready.
            let e = ConnectError::Transport(
                format!("connection lost while connecting: {reason}").into(),
            );
            return Step::Stop(tell_first(first, e));
        }
        if !config.reconnect.is_enabled() {
            info!(%reason, "connection lost; reconnecting is off, the client is closed");
            return Step::Stop(Some(ConnectError::Transport(
                format!("connection lost: {reason}").into(),
            )));
        }
        info!(%reason, "connection lost; reconnecting");
        Step::Attempt(1)
    }

    /// Cleanup after a connection ended: in-flight RPCs fail with `Disconnected`,
    /// messages of the hooks that were not written yet as well.
    fn after_session(&mut self) {
        let shared = &*self.shared;
        shared.client_id_tx.send_replace(None);
        shared.calls.fail_sent_on(self.generation);
        self.outbox.fail_priority(&shared.calls);
    }

    /// The client is closed: fail what is queued, keep the reason, mark it closed.
    fn finish(mut self, first: Option<FirstTx>, close_reason: Option<ConnectError>) {
        if let Some(tx) = first {
            let _ = tx.send(Err(ConnectError::Closed));
        }
        self.outbox.close(&self.shared.calls);
        if let Some(reason) = close_reason {
            *lock(&self.shared.close_reason) = Some(Arc::new(reason));
        }
        self.shared.mark_closed();
        debug!("client closed");
    }
}

/// Tell the first `connect` about `error` if it still waits; otherwise `error` is why
/// the client closed on its own (`Client::close_reason`).
fn tell_first(first: &mut Option<FirstTx>, error: ConnectError) -> Option<ConnectError> {
    match first.take() {
        Some(tx) => {
            let _ = tx.send(Err(error));
            None
        }
        None => Some(error),
    }
}
