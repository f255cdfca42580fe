#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod config;
mod envelope;
mod hub;

pub use config::RedisHubConfig;
pub use hub::{RedisHub, RedisHubError};
