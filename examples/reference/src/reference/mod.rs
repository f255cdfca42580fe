//! The reference app of REFERENCE_APP.md: one fixed router that exercises every
//! feature of Zocket, so that any client (this project's, a Zocket v1 TypeScript client,
//! a browser, a load generator) can be pointed at it.
//!
//! - [`contract`]: the marker types of every incoming message and outgoing event, and
//!   the data they carry (shared with clients).
//! - [`RefCtx`]: the connection context `{ userName, userRole }` built from the
//!   handshake headers ([`RefHeaders`]).
//! - [`RequireStaff`], [`RequireAdmin`], [`ComputeStep1`], [`ComputeStep2`]: the
//!   middleware.
//! - [`router()`]: the complete router; transports serve it unchanged.

pub mod contract;
mod server;

pub use server::{
    Admin, ComputeStep1, ComputeStep2, DEFAULT_USER_NAME, RefCtx, RefHeaders, RequireAdmin,
    RequireStaff, Role, Staff, Step1, Step2, router,
};
