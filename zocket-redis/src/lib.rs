#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod envelope;
mod hub;

pub use config::RedisHubConfig;
pub use hub::{RedisHub, RedisHubError};
