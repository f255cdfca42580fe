#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![warn(unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]
// The crate docs describe the server; without it their links have nothing to point to.
#![cfg_attr(not(feature = "server"), allow(rustdoc::broken_intra_doc_links))]

// The contract: what a shared contract crate needs (serde only).
mod contract;
mod error;
mod ids;

pub use contract::{Event, Message};
pub use error::{Reject, codes};
pub use ids::ClientId;

// The wire format.
#[cfg(feature = "protocol")]
pub mod protocol;

#[cfg(feature = "protocol")]
pub use protocol::HeaderIssue;

// The server.
#[cfg(feature = "server")]
mod connection;
#[cfg(feature = "server")]
mod context;
#[cfg(feature = "server")]
mod cx;
#[cfg(feature = "server")]
pub mod hub;
#[cfg(feature = "server")]
pub mod redact;
#[cfg(feature = "server")]
mod router;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod stats;
#[cfg(feature = "test-util")]
pub mod testing;

#[cfg(feature = "server")]
pub use connection::{PingReplies, RateLimit};
#[cfg(feature = "server")]
pub use context::{CloseReason, ConnInfo, Connect, Context, Disconnect, DisconnectInfo};
#[cfg(feature = "server")]
pub use cx::{Cx, IntoClientIds, IntoRoomNames, Outgoing, Rooms, ServerHandle};
#[cfg(feature = "server")]
pub use hub::{Delivery, HubError};
#[cfg(feature = "server")]
pub use router::{Chain, Handler, Input, Middleware, Root, Router, Scope, SyncHandler, Then};
#[cfg(feature = "server")]
pub use server::{
    Accepted, BuilderState, HandshakeError, HandshakeRequest, Heartbeat, HttpVersion, NoState,
    ProtocolErrorLimit, Server, ServerBuilder, ServerConfig, SlowConsumerPolicy, UpgradeRequest,
    validate_upgrade,
};
#[cfg(feature = "server")]
pub use stats::{StatsSnapshot, describe_metrics, names as metric_names};

/// The root README's example, compiled and run as a doc test.
#[cfg(all(doctest, feature = "test-util"))]
#[doc = include_str!("../../README.md")]
pub struct RootReadme;
