//! The chat example: rooms, user names from the handshake, private messages and a
//! typing indicator, plus a single-page browser client ([`PAGE`]) that speaks the
//! Zocket v1 wire protocol with a bare `WebSocket`.
//!
//! Run it with `cargo run -p zocket-example-chat` and open the printed address
//! in two browser tabs.
//!
//! ```
//! use zocket_core::testing::TestServer;
//! use zocket_example_chat::{self as chat, Join, MessagePosted, Post, RoomIn, SendIn};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = TestServer::new(chat::router());
//! let ada = app.connect([("userName", "Ada")]).await.unwrap();
//! let bob = app.connect([("userName", "Bob")]).await.unwrap();
//! ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
//! bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
//! ada.call::<Post>(SendIn { room: "lobby".into(), text: "hi".into() }).await.unwrap();
//! let got = bob.next::<MessagePosted>().await.unwrap();
//! assert_eq!((got.from.user_name.as_str(), got.text.as_str()), ("Ada", "hi"));
//! # });
//! ```

#![warn(missing_docs)]

mod cluster;
pub mod contract;
mod server;

pub use cluster::ChatCluster;
pub use contract::*;
pub use server::{ChatHeaders, ChatState, ChatUser, DEFAULT_USER_NAME, UserName, router};

/// The browser page (HTML with inline JavaScript, no build step, no external
/// resources). It connects to `ws(s)://<same host>/ws?userName=<name>`.
pub const PAGE: &str = include_str!("../static/chat.html");
