//! The [warp](https://docs.rs/warp/0.4) adapter of Zocket for Rust.
//!
//! [`upgrade`] turns a [`zocket_core::Server`] into a warp [`Filter`] that checks the
//! handshake **before** upgrading (origin allow-list, handshake headers from the HTTP
//! headers and the query string, the context's connect hook) and then hands the socket
//! to the core's connection driver. A refused handshake is answered with the status
//! and JSON body of the protocol (`400` `INVALID_HEADERS` with its `issues`, `401`,
//! `403`, `503` while shutting down) and no upgrade.
//!
//! Mount it under a path with `warp::path("ws").and(zocket_warp::upgrade(server))`, or
//! at the root with `zocket_warp::upgrade(server)` alone. The filter matches only the
//! exact path it is mounted at, so it combines with other routes through `.or(...)`;
//! a plain HTTP request that is not a WebSocket upgrade is rejected (warp answers it
//! with `400` unless another route takes it).
//!
//! The WebSocket's maximum message and frame size come from
//! [`ServerConfig::max_message_bytes`](zocket_core::ServerConfig::max_message_bytes); a
//! larger message closes the connection with `1009`.
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
//! use warp::Filter;
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
//! let routes = warp::path("ws").and(zocket_warp::upgrade(server.clone()));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let http = tokio::spawn(
//!     warp::serve(routes)
//!         .incoming(listener)
//!         .graceful(async { let _ = stopped.await; })
//!         .run(),
//! );
//!
//! let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?userName=ada"))
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
//! // Graceful shutdown: open sockets are closed with 1001, then HTTP stops.
//! server.shutdown().await;
//! let _ = stop.send(());
//! http.await.unwrap();
//! # }
//! ```
#![warn(missing_docs)]

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt, future};
use warp::filters::path::FullPath;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection, Reply};
use zocket_core::protocol::{CloseFrame, Text, WsFrame};
use zocket_core::{Accepted, Context, HandshakeError, HandshakeRequest, Server, TransportError};

/// A warp filter that serves Zocket WebSocket connections with `server`.
///
/// It matches a WebSocket upgrade request (`GET`, `Connection: upgrade`,
/// `Upgrade: websocket`, version 13) whose remaining path is empty, runs the handshake
/// ([`Server::handshake`]) and answers either with `101 Switching Protocols` (the
/// connection is then driven by [`Accepted::serve`] until it ends) or with the
/// handshake error's status and JSON body (`content-type: application/json`).
///
/// ```no_run
/// # use warp::Filter;
/// # async fn run(server: zocket_core::Server<impl zocket_core::Context>) {
/// // at /ws
/// let ws = warp::path("ws").and(zocket_warp::upgrade(server.clone()));
/// // or at the root: zocket_warp::upgrade(server)
/// warp::serve(ws).run(([127, 0, 0, 1], 3000)).await;
/// # }
/// ```
pub fn upgrade<C: Context>(
    server: Server<C>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path::end()
        .and(warp::ws())
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::any().map(move || server.clone()))
        .then(handle::<C>)
}

/// The raw query string, `None` when the request has none.
fn raw_query() -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone
{
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

async fn handle<C: Context>(
    ws: Ws,
    path: FullPath,
    query: Option<String>,
    headers: HeaderMap,
    remote_addr: Option<SocketAddr>,
    server: Server<C>,
) -> Response {
    let request = HandshakeRequest {
        path: path.as_str().to_owned(),
        query,
        headers: header_pairs(&headers),
        remote_addr,
    };
    match server.handshake(request).await {
        Err(refused) => refusal(&refused),
        Ok(accepted) => {
            let max = server.config().max_message_bytes;
            ws.max_message_size(max)
                .max_frame_size(max)
                .on_upgrade(move |socket| drive(accepted, socket))
                .into_response()
        }
    }
}

/// Every header as a `(name, value)` pair; a value that is not UTF-8 is decoded lossily.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn refusal(error: &HandshakeError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    warp::reply::with_status(
        warp::reply::with_header(error.body(), "content-type", "application/json"),
        status,
    )
    .into_response()
}

async fn drive<C: Context>(accepted: Accepted<C>, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let stream = stream.map(from_warp);
    let sink = sink.with(|frame: WsFrame| future::ready(Ok::<_, warp::Error>(to_warp(frame))));
    let reason = accepted.serve(stream, sink).await;
    tracing::debug!(?reason, "websocket connection ended");
}

fn from_warp(item: Result<Message, warp::Error>) -> Result<WsFrame, TransportError> {
    let message = match item {
        Ok(message) => message,
        Err(e) if is_too_big(&e) => return Err(TransportError::MessageTooBig),
        Err(e) => return Err(TransportError::Other(e.to_string())),
    };
    if message.is_text() {
        // SAFETY: warp's text message is tungstenite's `Message::Text(Utf8Bytes)`, which
        // tungstenite checked on receipt: the bytes are valid UTF-8, adopted without a copy.
        Ok(WsFrame::Text(unsafe {
            Text::from_utf8_unchecked(message.into_bytes())
        }))
    } else if message.is_binary() {
        Ok(WsFrame::Binary(message.into_bytes()))
    } else if message.is_ping() {
        Ok(WsFrame::Ping(message.into_bytes()))
    } else if message.is_pong() {
        Ok(WsFrame::Pong(message.into_bytes()))
    } else if message.is_close() {
        Ok(WsFrame::Close(message.close_frame().map(
            |(code, reason)| CloseFrame {
                code,
                reason: reason.to_owned().into(),
            },
        )))
    } else {
        // Raw frames are only ever produced for writing, never read.
        Err(TransportError::Other("unexpected raw frame".into()))
    }
}

fn to_warp(frame: WsFrame) -> Message {
    match frame {
        WsFrame::Text(text) => Message::text(text.as_str()),
        WsFrame::Binary(bytes) => Message::binary(bytes),
        WsFrame::Ping(bytes) => Message::ping(bytes),
        WsFrame::Pong(bytes) => Message::pong(bytes),
        WsFrame::Close(Some(CloseFrame { code, reason })) => Message::close_with(code, reason),
        WsFrame::Close(None) => Message::close(),
    }
}

/// Whether warp's socket error is tungstenite's "message too long" (over the configured
/// maximum message or frame size).
fn is_too_big(error: &warp::Error) -> bool {
    use std::error::Error as _;
    match error
        .source()
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
    {
        Some(tungstenite::Error::Capacity(_)) => true,
        Some(_) => false,
        // A different tungstenite behind warp: recognise the message instead.
        None => error.to_string().contains("Message too long"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn frames_round_trip_through_warp_messages() {
        let frames = [
            WsFrame::Text(Text::from(r#"{"type":"x"}"#)),
            WsFrame::Binary(Bytes::from_static(&[1, 2, 3])),
            WsFrame::Ping(Bytes::from_static(b"p")),
            WsFrame::Pong(Bytes::from_static(b"q")),
            WsFrame::Close(Some(CloseFrame {
                code: 1009,
                reason: "message too big".into(),
            })),
            WsFrame::Close(None),
        ];
        for frame in frames {
            let back = from_warp(Ok(to_warp(frame.clone()))).unwrap();
            assert_eq!(back, frame);
        }
    }

    #[test]
    fn header_values_that_are_not_utf8_are_kept_lossily() {
        let mut headers = HeaderMap::new();
        headers.insert("x-name", "ada".parse().unwrap());
        headers.insert(
            "x-raw",
            warp::http::HeaderValue::from_bytes(&[b'a', 0xff]).unwrap(),
        );
        let mut pairs = header_pairs(&headers);
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                ("x-name".to_owned(), "ada".to_owned()),
                ("x-raw".to_owned(), "a\u{fffd}".to_owned())
            ]
        );
    }

    #[test]
    fn refusals_are_json_with_the_status_of_the_error() {
        let res = refusal(&HandshakeError::Unauthorized("invalid token".into()));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/json"
        );
    }
}
