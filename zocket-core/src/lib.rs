//! Zocket core (work in progress).
#![warn(missing_docs)]
pub mod contract;
pub mod error;
pub mod protocol;
pub use contract::{Event, Message};
pub use error::{Reject, codes};
