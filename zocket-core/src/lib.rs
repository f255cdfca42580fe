#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod admission;
pub mod connection;
pub mod context;
pub mod contract;
pub mod cx;
pub mod error;
mod headers;
pub mod hub;
pub mod ids;
pub mod middleware;
pub mod protocol;
pub mod redact;
pub mod router;
pub mod server;
pub mod stats;
#[cfg(feature = "test-util")]
pub mod testing;

pub use connection::{PingReplies, RateLimit};
pub use context::{ConnInfo, Connect, Context, Disconnect, DisconnectInfo};
pub use contract::{Event, Message};
pub use cx::{Cx, IntoClientIds, IntoRoomNames, Outgoing, Rooms, ServerHandle};
pub use error::{Reject, codes};
pub use hub::{
    CloseReason, Delivery, Hub, HubError, HubFuture, LocalHub, Outbound, SlowConsumerPolicy, Target,
};
pub use ids::ClientId;
pub use middleware::{Input, Middleware};
pub use router::{Handler, Router, Scope};
pub use server::{
    Accepted, BuilderState, HandshakeError, HandshakeRequest, HeaderIssue, Heartbeat, NoState,
    ProtocolErrorLimit, Server, ServerBuilder, ServerConfig, TransportError,
};
pub use stats::{HubStats, StatsSnapshot};

/// The root README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RootReadme;
