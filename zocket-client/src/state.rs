//! [`ConnectionState`]: what [`Client::state_watch`](crate::Client::state_watch) reports.

use std::fmt;

/// The state of the connection, as seen through
/// [`Client::state_watch`](crate::Client::state_watch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The first connection is being made (or
    /// [`Client::connect`](crate::Client::connect) was not called yet).
    Connecting,
    /// Connected: messages are written to the socket.
    Open,
    /// The connection dropped; waiting for (or making) reconnect attempt `attempt`
    /// (1-based). Messages are buffered, up to the outbound buffer.
    Reconnecting {
        /// The number of the attempt, starting at 1 after each drop.
        attempt: u32,
    },
    /// Closed for good: closed by the user, every handle dropped, the handshake was
    /// rejected, or reconnecting gave up. Calls fail with
    /// [`ClientError::Closed`](crate::ClientError::Closed).
    Closed,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Open => f.write_str("open"),
            Self::Reconnecting { attempt } => write!(f, "reconnecting (attempt {attempt})"),
            Self::Closed => f.write_str("closed"),
        }
    }
}
