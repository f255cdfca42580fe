#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![warn(unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The contract: what a shared contract crate needs (serde only).
mod contract;
mod error;
mod ids;

// The server.
mod connection;
mod context;
mod cx;
pub mod hub;
pub mod protocol;
pub mod redact;
mod router;
mod server;
mod stats;
#[cfg(feature = "test-util")]
pub mod testing;

pub use connection::{PingReplies, RateLimit};
pub use context::{CloseReason, ConnInfo, Connect, Context, Disconnect, DisconnectInfo};
pub use contract::{Event, Message};
pub use cx::{Cx, IntoClientIds, IntoRoomNames, Outgoing, Rooms, ServerHandle};
pub use error::{Reject, codes};
pub use hub::{Delivery, HubError};
pub use ids::ClientId;
pub use router::{Chain, Handler, Input, Middleware, Root, Router, Scope, Then};
pub use server::{
    Accepted, BuilderState, HandshakeError, HandshakeRequest, HeaderIssue, Heartbeat, HttpVersion,
    NoState, ProtocolErrorLimit, Server, ServerBuilder, ServerConfig, SlowConsumerPolicy,
    UpgradeRequest, validate_upgrade,
};
pub use stats::{StatsSnapshot, describe_metrics, names as metric_names};

/// The root README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RootReadme;
