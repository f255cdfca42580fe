//! # zocket-client: the native typed Zocket client
//!
//! A tokio client for Zocket servers (and Zocket v1 servers), typed by the same contract
//! types the server uses ([`Message`] and [`Event`] from `zocket-core`), and resilient by
//! default: it reconnects with jittered exponential backoff, detects dead connections
//! with ping/pong heartbeats, times out RPCs, and buffers (boundedly) what is sent while
//! disconnected.
//!
//! ```
//! use futures::StreamExt;
//! use serde::{Deserialize, Serialize};
//! use zocket_client::{Client, Event, Message};
//!
//! // The contract, usually in a crate shared with the server.
//! #[derive(Serialize, Deserialize)]
//! pub struct GreetIn { pub name: String }
//! pub enum Greet {}
//! impl Message for Greet {
//!     const NAME: &'static str = "greet";
//!     type Input = GreetIn;
//!     type Output = String;
//! }
//! #[derive(Serialize, Deserialize)]
//! pub struct RoomIn { #[serde(rename = "roomId")] pub room_id: String }
//! pub enum Join {}
//! impl Message for Join {
//!     const NAME: &'static str = "rooms.join";
//!     type Input = RoomIn;
//!     type Output = Vec<String>;
//! }
//! #[derive(Serialize, Deserialize)]
//! pub struct SayIn { #[serde(rename = "roomId")] pub room_id: String, pub content: String }
//! pub enum Say {}
//! impl Message for Say {
//!     const NAME: &'static str = "rooms.say";
//!     type Input = SayIn;
//!     type Output = ();
//! }
//! #[derive(Debug, Serialize, Deserialize)]
//! pub struct RoomMsg { #[serde(rename = "roomId")] pub room_id: String, #[serde(rename = "userName")] pub user_name: String, pub content: String }
//! pub enum RoomMessage {}
//! impl Event for RoomMessage {
//!     const NAME: &'static str = "rooms.message";
//!     type Payload = RoomMsg;
//! }
//!
//! # mod doc { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/server.rs")); }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let url = doc::doc_server().await; // a real server on a free port
//! // url: e.g. "ws://127.0.0.1:3000/"
//! let client = Client::builder(url)
//!     .header("userName", "Ada")
//!     // after every (re)connect: re-join the room
//!     .on_connect(|client| async move {
//!         client.call::<Join>(RoomIn { room_id: "lobby".into() }).await?;
//!         Ok(())
//!     })
//!     .connect()
//!     .await?;
//! eprintln!("connected as {:?}", client.client_id());
//!
//! let mut messages = client.subscribe::<RoomMessage>();
//! let hello: String = client.call::<Greet>(GreetIn { name: "Ada".into() }).await?;
//! assert_eq!(hello, "Hello, Ada!");
//! client.call::<Say>(SayIn { room_id: "lobby".into(), content: "hi".into() }).await?;
//!
//! // `None` once the client is closed; a payload that does not decode is an error.
//! if let Some(msg) = messages.next().await {
//!     let msg = msg?;
//!     println!("{} {}: {}", msg.room_id, msg.user_name, msg.content);
//!     assert_eq!((msg.user_name.as_str(), msg.content.as_str()), ("Ada", "hi"));
//! }
//! client.close().await;
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! ## Behaviour
//!
//! - **Handshake**: headers go both into the query string (as Zocket v1 sends them) and
//!   into HTTP headers, plus `x-zocket-version`. A server that refuses the upgrade
//!   (HTTP 400 with `issues`, 401, 403) makes [`ClientBuilder::connect`] fail with
//!   [`ConnectError::Rejected`]; rejections are never retried, also not on reconnects.
//! - **Calls** ([`Client::call`]) carry an `rpcId`; replies are matched by it, so any
//!   number of calls can be in flight at once. They time out after the RPC timeout
//!   (10 s by default). A call whose frame was written when the connection drops fails
//!   with [`ClientError::Disconnected`] at once; nothing is retried behind your back.
//! - **While disconnected**, calls and emits are buffered up to
//!   [`ClientBuilder::outbound_buffer`] and written after the reconnect (after the
//!   after-connect hooks); beyond that they fail with [`ClientError::BufferFull`].
//! - **Subscriptions** ([`Client::subscribe`]) are streams; each gets every event, a
//!   subscriber that falls behind gets [`ClientError::Lagged`] instead of blocking the
//!   connection, and the stream ends (`None`) when the client is closed.
//! - **State**: [`Client::state_watch`] ([`ConnectionState`]), [`Client::client_id`]
//!   (from the server's `__welcome`), [`ClientBuilder::on_connect`] hooks.
//!
//! The reader task only routes frames into channels; it never waits for user code, so a
//! slow subscriber cannot stall replies to calls.
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The public API.
mod client;
mod config;
mod error;
mod state;
mod subscription;
// The machinery behind it.
mod calls;
mod driver;
mod outbound;
mod shared;
#[cfg(feature = "tls")]
mod tls;

pub use client::{Client, ClientBuilder};
pub use config::{ClientConfig, Heartbeat, Reconnect};
pub use error::{ClientError, ConnectError, HandshakeRejection, HeaderIssue, Reject};
/// The rustls version `wss://` uses (for [`ClientBuilder::tls_config`] and
/// [`ClientBuilder::tls_root_certificates`]).
#[cfg(feature = "tls")]
pub use rustls;
pub use state::ConnectionState;
pub use subscription::Subscription;
pub use zocket_core::protocol::WireError;
pub use zocket_core::{ClientId, Event, Message};
