//! The handle to the whole server: typed sends and cluster-wide questions from outside
//! a handler.

use std::fmt;
use std::sync::Arc;

use super::send::Outgoing;
use crate::contract::Event;
use crate::hub::{Hub, HubError};
use crate::ids::ClientId;
use crate::stats::Stats;

/// A handle to the server for typed sends from outside handlers, and for the
/// cluster-wide questions and commands (room members, whether a client is connected,
/// disconnecting a client by id), which may have to ask other nodes and so are `async`.
/// Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) hub: Arc<dyn Hub>,
    pub(crate) stats: Arc<Stats>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_connections", &self.hub.local_connections())
            .finish()
    }
}

impl ServerHandle {
    /// Send a typed event to clients, rooms or everyone (on every node). Never waits.
    pub fn send<E: Event>(&self, payload: E::Payload) -> Outgoing<'_> {
        Outgoing::new::<E>(&*self.hub, &self.stats, &payload)
    }
    /// The rooms a connection of this node is in, sorted.
    pub fn rooms_of(&self, id: &ClientId) -> Vec<String> {
        self.hub.rooms_of(id)
    }
    /// How many connections this node holds.
    pub fn local_connections(&self) -> usize {
        self.hub.local_connections()
    }
    /// The members of `room` on every node, sorted.
    pub async fn members(&self, room: &str) -> Result<Vec<ClientId>, HubError> {
        self.hub.members(room).await
    }
    /// How many members `room` has on every node.
    pub async fn member_count(&self, room: &str) -> Result<usize, HubError> {
        self.hub.member_count(room).await
    }
    /// Whether `id` is connected to any node.
    pub async fn is_connected(&self, id: &ClientId) -> Result<bool, HubError> {
        self.hub.is_connected(id).await
    }
    /// Close the connection `id`, on whichever node holds it, with this close code
    /// (1000, 1001, 1008, 1011 or 3000–4999) and reason (at most 123 bytes); its
    /// disconnect hook sees [`CloseReason::Closed`](crate::CloseReason::Closed). `Ok(false)`: no node holds it.
    ///
    /// ```
    /// # use zocket_core::{ServerHandle, ClientId};
    /// # async fn kick(server: ServerHandle, id: ClientId) -> Result<(), zocket_core::HubError> {
    /// if !server.disconnect(&id, 4001, "kicked by a moderator").await? {
    ///     tracing::info!(%id, "not connected");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(
        &self,
        id: &ClientId,
        code: u16,
        reason: &str,
    ) -> Result<bool, HubError> {
        self.hub.disconnect(id, code, reason).await
    }
}
