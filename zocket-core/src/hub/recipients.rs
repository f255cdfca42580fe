//! Who one send goes to.

use crate::ids::ClientId;

/// Who an event goes to: the recipients of one send, as a hub receives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// These clients (unknown ids receive nothing).
    Clients(Vec<ClientId>),
    /// Every member of these rooms, each once.
    Rooms(Vec<String>),
    /// Every connected client.
    All,
}
