//! Why a connection ended.

/// Why a connection ended. Passed to [`crate::Context::disconnect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the connection (with its close code, if any).
    ClientClosed(Option<u16>),
    /// The transport failed or ended without a close frame.
    TransportError(String),
    /// No pong arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// Events pushed by others exceeded the outbound budget (close 1013).
    SlowConsumer,
    /// Too many protocol errors in the window (close 1008).
    ProtocolErrors,
    /// More messages than the configured rate (close 1008, reason `rate limit`).
    RateLimited,
    /// A message exceeded the maximum size (close 1009).
    MessageTooBig,
    /// The server shut down (close 1001).
    ServerShutdown,
    /// The server closed it on request (e.g. [`crate::ServerHandle::disconnect`]).
    Closed {
        /// The close code sent.
        code: u16,
        /// The reason sent.
        reason: String,
    },
}

impl CloseReason {
    /// The close code the server sends for this reason (`None`: no close frame).
    pub fn code(&self) -> Option<u16> {
        match self {
            CloseReason::ClientClosed(_) => Some(1000),
            CloseReason::TransportError(_) | CloseReason::HeartbeatTimeout => None,
            CloseReason::SlowConsumer => Some(1013),
            CloseReason::ProtocolErrors | CloseReason::RateLimited => Some(1008),
            CloseReason::MessageTooBig => Some(1009),
            CloseReason::ServerShutdown => Some(1001),
            CloseReason::Closed { code, .. } => Some(*code),
        }
    }
    /// A short text for the close frame.
    pub fn text(&self) -> &str {
        match self {
            CloseReason::ClientClosed(_) => "",
            CloseReason::TransportError(_) => "transport error",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::SlowConsumer => "slow consumer: outbound queue full",
            CloseReason::ProtocolErrors => "too many protocol errors",
            CloseReason::RateLimited => "rate limit",
            CloseReason::MessageTooBig => "message too big",
            CloseReason::ServerShutdown => "server shutting down",
            CloseReason::Closed { reason, .. } => reason,
        }
    }
}
