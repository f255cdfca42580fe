//! The end-to-end tests, one module per feature, linked into one test binary (one link
//! instead of one per file: the workspace's cold `cargo test` builds faster). The
//! heartbeat tests stay a binary of their own: they install the process-wide log
//! capture.

mod admission;
mod chat;
mod client;
mod contract;
mod engine;
mod errors;
mod fuzz_regressions;
mod handshake;
mod lifecycle;
mod messages;
mod ordering;
mod rooms;
mod tls;
