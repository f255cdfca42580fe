//! Contracts: the types that server and client share.
//!
//! A contract is a set of *marker types* (usually empty enums), each implementing
//! [`Message`] (client → server) or [`Event`] (server → client). The marker names the
//! route and fixes its types, so both ends are checked by the compiler:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use zocket_core::{Event, Message};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! pub struct GreetIn { pub name: String }
//!
//! /// `greet`: answers "Hello, <name>!".
//! pub enum Greet {}
//! impl Message for Greet {
//!     const NAME: &'static str = "greet";
//!     type Input = GreetIn;
//!     type Output = String;
//! }
//!
//! /// `message`: a bare string broadcast to everyone.
//! pub enum Broadcast {}
//! impl Event for Broadcast {
//!     const NAME: &'static str = "message";
//!     type Payload = String;
//! }
//! # assert_eq!(<Greet as Message>::NAME, "greet");
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Reject;

/// A message the client sends to the server (v1: an *incoming* route).
///
/// `NAME` is the dotted v1 route name (`"chat.post"`). `Input` travels as the frame's
/// `payload` (so `type Input = String` is a bare JSON string, as in v1); `Output` is the
/// RPC result, and `()` means "no `payload` key" in the `__rpc_res` frame.
///
/// Rules serde cannot express (lengths, ranges) go in [`Message::validate`]; a failure
/// there is answered with `INVALID_INPUT` before any middleware runs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Zocket message",
    label = "this type must implement `zocket_core::Message`",
    note = "declare it as a marker type: `pub enum {Self} {{}}` with `impl Message for {Self} {{ const NAME: &'static str = \"...\"; type Input = ...; type Output = ...; }}`"
)]
pub trait Message: 'static {
    /// The route name, e.g. `"rooms.join"`. Must not start with `__` (reserved).
    const NAME: &'static str;
    /// What the client sends; deserialised from the frame's `payload`.
    type Input: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What an RPC call returns. `()` replies without a `payload` key.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Extra validation after deserialisation. The default accepts every input.
    ///
    /// Return a [`Reject`] (usually [`Reject::invalid_input`]) to refuse the call.
    fn validate(input: &Self::Input) -> Result<(), Reject> {
        let _ = input;
        Ok(())
    }
}

/// An event the server sends to clients (v1: an *outgoing* route).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Zocket event",
    label = "this type must implement `zocket_core::Event`",
    note = "declare it as a marker type: `pub enum {Self} {{}}` with `impl Event for {Self} {{ const NAME: &'static str = \"...\"; type Payload = ...; }}`"
)]
pub trait Event: 'static {
    /// The event name, e.g. `"chat.message"`.
    const NAME: &'static str;
    /// The event's payload.
    type Payload: Serialize + DeserializeOwned + Send + 'static;
}
