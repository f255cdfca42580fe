//! The [hyper 1](https://docs.rs/hyper/1) adapter of Zocket for Rust, with its own
//! lean WebSocket transport ([`socket`]).
//!
//! - [`ZocketService`]: a service that checks the WebSocket upgrade request and the
//!   Zocket handshake **before** upgrading (origin allow-list, handshake headers from the
//!   HTTP headers and the query string, the context's connect hook), answers
//!   `101 Switching Protocols` and drives the socket with the core's connection driver.
//!   A refused handshake is answered with the protocol's status and JSON body (`400`
//!   `INVALID_HEADERS` with its `issues`, `401`, `403`, `503` while shutting down) and no
//!   upgrade. It implements both [`hyper::service::Service`] and
//!   [`tower_service::Service`], so it is served by hyper directly or mounted in a tower
//!   based framework (e.g. axum's `Router::route_service("/ws", service)`).
//! - [`serve`] (and [`serve_tls`]): a ready-made accept loop on a
//!   [`TcpListener`](tokio::net::TcpListener) (HTTP/1.1 with upgrades, the handshake
//!   timeout) that stops accepting when
//!   [`Server::shutdown`](zocket_core::Server::shutdown) begins; [`serve_with`] runs the
//!   same loop with any hyper service (the warp adapter serves its filters with it).
//!
//! The WebSocket's maximum message size comes from
//! [`ServerConfig::max_message_bytes`](zocket_core::ServerConfig::max_message_bytes); a
//! larger message closes the connection with `1009`.
//!
//! # The socket: buffers, memory, closing
//!
//! After the upgrade, the connection is driven by this crate's own RFC 6455 transport
//! ([`socket`]; `zocket-warp` uses it too), built so that an idle connection holds
//! almost nothing:
//!
//! - **No read buffer while idle.** Reads go into a [`socket::READ_CHUNK`] (16 KiB)
//!   scratch buffer on the stack; only the bytes received are kept, until their frames
//!   are handed to the engine, and the buffer is released when the socket has nothing
//!   more to read. A frame arriving in pieces is collected in a buffer sized for it.
//!   The size limit is checked on the frame header, so an oversize message is never
//!   buffered (it is skipped as it arrives, and the connection closes with `1009`).
//! - **No write buffer while idle.** Frames are encoded as the engine feeds them
//!   (payloads over 1 KiB are written from their own shared bytes, so an event fanned
//!   out to many connections is not copied per recipient), written with vectored
//!   writes, and nothing stays allocated after a flush. At most
//!   [`socket::WRITE_HIGH_WATER`] (64 KiB) is buffered before the writer writes out; the
//!   engine's outbound byte budget bounds the rest.
//! - **Memory per idle connection**, measured with the `reference` binary at 10 000
//!   idle connections (`bench/run.sh --scenarios idle`, see `BENCHMARKS.md`): about
//!   2 300 bytes of server RSS in all (engine, hub and socket included), down from about
//!   137 KiB with tokio-tungstenite's default 128 KiB read buffer. Most of it is the
//!   connection's task, 896 bytes (the engine's state and the transport's reader and
//!   writer, in one future: see [`socket::serve_upgrade`]), and tokio's registration of
//!   the socket (256 B); the rest is the outbound queue, the state the connection's
//!   handlers share, the heartbeat's timer, the context and the hub's entry. Nothing of
//!   the handshake stays: the HTTP connection's task is boxed, so that the handshakes
//!   leave no holes in the heap between the connections that outlive them.
//! - **Pings** are answered by the engine ([`PingReplies::Engine`]) under the same
//!   outbound byte budget as every other frame, so a client that pings and never reads
//!   cannot grow the server's memory.
//! - **Closing.** The engine writes its close frame, keeps reading and discarding until
//!   the client's close frame or its close timeout, then closes the sink: the writer
//!   flushes and shuts down the TCP write side (FIN). The socket is then read (and
//!   discarded) for at most [`socket::LINGER`] (1 s) more, until the client closes its
//!   side, before it is dropped, so that the kernel does not answer late bytes with a
//!   reset: a client that is still sending receives the close code and reason.
//!
//! [`PingReplies::Engine`]: zocket_core::PingReplies::Engine
//!
//! # Example
//!
//! A complete server on a free port and a raw client that reads the `__welcome` frame
//! and makes one call:
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use serde::{Deserialize, Serialize};
//! use tokio_tungstenite::tungstenite::Message as WsMessage;
//! use zocket_core::{Connect, Context, Cx, Message, Reject, Router, Server};
//!
//! #[derive(Serialize, Deserialize)]
//! struct GreetIn { name: String }
//! enum Greet {}
//! impl Message for Greet {
//!     const NAME: &'static str = "greet";
//!     type Input = GreetIn;
//!     type Output = String;
//! }
//!
//! struct User;
//! impl Context for User {
//!     type Headers = serde_json::Value;
//!     type State = ();
//!     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
//! }
//!
//! async fn greet(_cx: Cx<User>, input: GreetIn) -> Result<String, Reject> {
//!     Ok(format!("Hello, {}!", input.name))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = Server::new(Router::<User>::new().on::<Greet>(greet));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let accept_loop = tokio::spawn(zocket_hyper::serve(listener, server.clone()));
//!
//! let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?userName=ada"))
//!     .await
//!     .unwrap();
//! let welcome = ws.next().await.unwrap().unwrap();
//! assert!(welcome.to_text().unwrap().contains("__welcome"));
//! ws.send(WsMessage::text(r#"{"type":"greet","payload":{"name":"Ada"},"rpcId":"1"}"#))
//!     .await
//!     .unwrap();
//! let reply = ws.next().await.unwrap().unwrap();
//! assert_eq!(
//!     reply.to_text().unwrap(),
//!     r#"{"type":"__rpc_res","payload":"Hello, Ada!","rpcId":"1"}"#
//! );
//!
//! # // The client reads on, so it answers the server's close frame at once.
//! # let reading = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
//! // Graceful shutdown: the accept loop stops, open sockets are closed with 1001.
//! server.shutdown().await;
//! accept_loop.await.unwrap();
//! # reading.await.unwrap();
//! # }
//! ```
//!
//! Mounted in axum, next to other routes. Served with
//! `into_make_service_with_connect_info::<SocketAddr>()`, the handshake sees the peer
//! address ([`ConnInfo::remote_addr`]) from axum's `ConnectInfo` (the `axum` feature, on
//! by default; axum 0.8):
//!
//! ```
//! use std::net::SocketAddr;
//! use zocket_core::{Connect, Context, Cx, Message, Reject, Router, Server};
//!
//! /// The context keeps the peer address the handshake saw.
//! struct Peer(Option<SocketAddr>);
//! impl Context for Peer {
//!     type Headers = serde_json::Value;
//!     type State = ();
//!     async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
//!         Ok(Peer(conn.info.remote_addr))
//!     }
//! }
//! enum WhoAmI {}
//! impl Message for WhoAmI {
//!     const NAME: &'static str = "whoami";
//!     type Input = ();
//!     type Output = Option<SocketAddr>;
//! }
//! async fn whoami(cx: Cx<Peer>, _: ()) -> Result<Option<SocketAddr>, Reject> {
//!     Ok(cx.0)
//! }
//!
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(Router::<Peer>::new().on::<WhoAmI>(whoami));
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .route_service("/ws", zocket_hyper::ZocketService::new(server.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! });
//! # use futures::{SinkExt, StreamExt};
//! # // A raw client on a socket whose local address we know.
//! # let stream = tokio::net::TcpStream::connect(addr).await?;
//! # let me = stream.local_addr()?;
//! # let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await?;
//! # let _welcome = ws.next().await.unwrap()?;
//! # ws.send(r#"{"type":"whoami","payload":null,"rpcId":"1"}"#.into()).await?;
//! # let reply = ws.next().await.unwrap()?;
//! // The handler answers the client's own address.
//! # assert_eq!(reply.to_text()?, format!(r#"{{"type":"__rpc_res","payload":"{me}","rpcId":"1"}}"#));
//! # drop(ws);
//! # server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Without the `axum` feature (or with another framework), add the address as a
//! `SocketAddr` request extension, or use
//! [`with_remote_addr`](ZocketService::with_remote_addr) per connection as below.
//!
//! Serving the service with your own hyper connection instead of [`serve`]:
//!
//! ```
//! use hyper_util::rt::TokioIo;
//! use zocket_hyper::ZocketService;
//! # use zocket_core::{Connect, Context, Reject, Router, Server};
//! # struct User;
//! # impl Context for User {
//! #     type Headers = serde_json::Value;
//! #     type State = ();
//! #     async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> { Ok(User) }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let server = Server::new(Router::<User>::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let accept_loop = async move {
//! loop {
//!     let (stream, remote) = listener.accept().await?;
//!     let service = ZocketService::new(server.clone()).with_remote_addr(remote);
//!     tokio::spawn(async move {
//!         let conn = hyper::server::conn::http1::Builder::new()
//!             .serve_connection(TokioIo::new(stream), service)
//!             .with_upgrades(); // required: the WebSocket takes the connection over
//!         let _ = conn.await;
//!     });
//! }
//! # #[allow(unreachable_code)] Ok::<(), std::io::Error>(()) };
//! # tokio::spawn(accept_loop);
//! # use futures::StreamExt;
//! # let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
//! # let welcome = ws.next().await.unwrap().unwrap();
//! # assert!(welcome.to_text().unwrap().contains("__welcome"));
//! # Ok(()) }
//! ```
//!
//! [`ConnInfo::remote_addr`]: zocket_core::ConnInfo::remote_addr
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod listener;
mod response;
mod service;
pub mod socket;

pub use listener::serve;
#[cfg(feature = "tls")]
pub use listener::serve_tls;
pub use listener::{Listener, serve_with};
pub use response::ResponseBody;
pub use service::{ResponseFuture, ZocketService};

/// The rustls version [`serve_tls`] uses.
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;
