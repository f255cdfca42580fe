//! Examples of Zocket for Rust.
//!
//! - [`reference`]: the reference app of REFERENCE_APP.md (contract, context,
//!   middleware and the complete router), served by the `reference` binary and used by
//!   the client tests.
//! - [`chat`]: the chat example with its browser page.
#![warn(missing_docs)]

pub mod chat;
pub mod reference;
