//! [`Shared`]: the state every handle and the driver task share.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use zocket_core::ClientId;

use crate::calls::Calls;
use crate::config::ClientConfig;
use crate::error::ConnectError;
use crate::outbound::Outbox;
use crate::state::ConnectionState;
use crate::subscription::Registry;

/// State shared by every handle and the driver task.
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    pub(crate) outbox: Outbox,
    pub(crate) calls: Calls,
    pub(crate) registry: Arc<Registry>,
    pub(crate) state_tx: watch::Sender<ConnectionState>,
    pub(crate) client_id_tx: watch::Sender<Option<ClientId>>,
    /// Why the client closed on its own (for `Client::close_reason`).
    pub(crate) close_reason: Mutex<Option<Arc<ConnectError>>>,
}

impl Shared {
    pub(crate) fn new(config: ClientConfig, outbox: Outbox) -> Self {
        Self {
            config,
            outbox,
            calls: Calls::default(),
            registry: Arc::new(Registry::default()),
            state_tx: watch::channel(ConnectionState::Connecting).0,
            client_id_tx: watch::channel(None).0,
            close_reason: Mutex::new(None),
        }
    }

    /// The current connection state.
    pub(crate) fn state(&self) -> ConnectionState {
        *self.state_tx.borrow()
    }

    /// Final state: closed for good. Pending calls fail `Closed`, subscriptions end.
    pub(crate) fn mark_closed(&self) {
        self.state_tx.send_replace(ConnectionState::Closed);
        self.client_id_tx.send_replace(None);
        self.calls.fail_all();
        self.registry.close_all();
    }
}
