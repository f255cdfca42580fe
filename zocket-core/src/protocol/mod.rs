//! The Zocket v1 wire protocol (plus the `__rpc_err`, `__error` and `__welcome`
//! extensions), for adapter and client implementors: the transport seam an adapter
//! converts its WebSocket to and from ([`WsFrame`], [`CloseFrame`], [`Text`],
//! [`TransportError`]), the decoded frames ([`ClientFrame`], [`ServerFrame`],
//! [`WireError`]) and the JSON codec between them (`decode_*`, `encode_*`).
//! Applications never need this module: handlers see typed values.
//!
//! Decoding borrows: [`decode_client_frame`] returns the payload as a borrowed
//! [`RawValue`](serde_json::value::RawValue) slice of the frame text, so the payload is never copied before it is
//! deserialised into the message's input type. The server itself reads frames of the
//! usual shape with a one-pass scanner of the envelope, and leaves everything else to
//! [`decode_client_frame`] (as it does to answer any frame the scanner read that is not
//! dispatched), so every frame gets the answer `decode_client_frame` implies.
//!
//! ```
//! use zocket_core::protocol::{decode_client_frame, ClientFrame};
//! let text = r#"{"type":"greet","payload":{"name":"Ada"},"rpcId":"1"}"#;
//! let frame: ClientFrame<'_> = decode_client_frame(text).unwrap();
//! assert_eq!(frame.kind, "greet");
//! assert_eq!(frame.rpc_id.as_deref(), Some("1"));
//! assert_eq!(frame.payload.unwrap().get(), r#"{"name":"Ada"}"#);
//! ```
//!
//! # Limits and close codes
//!
//! | situation | behaviour |
//! |---|---|
//! | a message over [`max_message_bytes`](crate::ServerConfig::max_message_bytes) (default 1 MiB) | close `1009` `message too big` |
//! | more than [`protocol_errors`](crate::ServerConfig::protocol_errors) `BAD_REQUEST` / `NOT_FOUND` / `INVALID_INPUT` answers in its window (default 100 in 10 s) | close `1008` `too many protocol errors` |
//! | more messages than [`message_rate`](crate::ServerConfig::message_rate) (a token bucket; default 10 000/s, bursts of 10 000) | close `1008` `rate limit` |
//! | the replies and self-addressed events of a client's own calls fill its outbound budget | reading from it pauses until the writer drains (backpressure); never a close, nothing dropped |
//! | events pushed by others exceed its outbound budget | close `1013` (or drop them: [`SlowConsumerPolicy`](crate::SlowConsumerPolicy)), counted and logged |
//! | no pong (nor a message; pings do not count) within the [`heartbeat`](crate::ServerConfig::heartbeat) timeout of a ping, or a ping that cannot be written within it | dropped without a close frame; the disconnect hook runs |
//! | server shutdown | close `1001` `server shutting down` after the in-flight calls finished (or [`shutdown_grace`](crate::ServerConfig::shutdown_grace) passed) and their replies were written |
//! | the client's close frame | close `1000` |
//!
//! # Backpressure and the byte budget
//!
//! Each connection has an outbound budget in bytes,
//! [`outbound_budget`](crate::ServerConfig::outbound_budget) (default 1 MiB). Every frame
//! waiting to be written is charged to it (its length plus
//! [`FRAME_OVERHEAD`](crate::hub::FRAME_OVERHEAD)) from the moment it is queued until
//! the flush that writes it completes: RPC results and errors, events, the server's pings,
//! and the pongs owed for the client's pings. Frames caused by the client's own messages
//! (its replies, its error frames, events its handlers send to itself) are never refused:
//! when they fill the budget the server stops reading that socket until the writer drains,
//! so TCP pushes back on the client. In-flight handlers may still finish and reply
//! meanwhile, so the budget is a threshold for reading, not a hard cap on own frames.
//! Events pushed by others are refused beyond the budget (or beyond
//! [`outbound_queue`](crate::ServerConfig::outbound_queue) events): the client is a slow
//! consumer. A client that pings and never reads fills the budget with pongs that cannot
//! leave; reading pauses and the heartbeat drops it.
//!
//! # Closing sequence
//!
//! Whatever the code, the server writes its close frame (after the frames queued before
//! it, except on `1013` and after the client's own close), then keeps reading and
//! discarding, oversize messages included, until the client's close frame arrives or
//! [`close_timeout`](crate::ServerConfig::close_timeout) passes (default 5 s); then it
//! closes the sink (the adapters shut the TCP write side down) and drops the connection
//! (RFC 6455 §7.1.1). A client that is still sending when the server closes therefore
//! receives the code and reason instead of a TCP reset. A heartbeat timeout or a broken
//! transport ends the connection at once, without a close frame.

mod codec;
mod frames;
#[cfg(feature = "server")]
mod scan;
mod transport;

pub use codec::{
    decode_client_frame, decode_server_frame, encode_client_frame, encode_error, encode_event,
    encode_rpc_err, encode_rpc_res, encode_welcome,
};
pub use frames::{ClientFrame, FrameError, HeaderIssue, ServerFrame, WireError};
#[cfg(feature = "server")]
pub(crate) use scan::scan_client_frame;
pub use transport::{CloseFrame, Text, TransportError, WsFrame};

/// Frame type of an RPC result.
pub const RPC_RES: &str = "__rpc_res";
/// Frame type of an RPC error (extension).
pub const RPC_ERR: &str = "__rpc_err";
/// Frame type of a non-RPC error (extension).
pub const ERROR: &str = "__error";
/// Frame type of the first frame after the upgrade (extension).
pub const WELCOME: &str = "__welcome";
/// The protocol version this crate speaks, sent in `__welcome` and `x-zocket-version`.
pub const VERSION: &str = "1";
