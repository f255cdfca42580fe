//! Everything the end-to-end tests share, written once:
//!
//! - [`harness`]: the harness every reference-app scenario is written against, with
//!   three implementations (in-process, warp, hyper) and [`scenarios!`](crate::scenarios).
//! - [`server`]: a Zocket server on a real socket in this process, with either adapter.
//! - [`ws`]: a raw JSON WebSocket client (the wire protocol as sent).
//! - [`http`]: raw HTTP/1.1 (upgrade refusals, pages, metrics).
//! - [`process`]: child processes (the example binaries, browser scripts).
//! - [`logs`]: log capture with waits on a line.

pub mod harness;
pub mod http;
pub mod logs;
pub mod process;
pub mod server;
pub mod ws;

use std::time::Duration;

use serde_json::Value;

pub use harness::{Harness, Hyper, InProcess, Refused, Warp};
pub use server::{Adapter, AppServer};
pub use ws::{Ended, RawClient};

/// Upper bound of every wait in these tests (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(10);

/// Whether `s` is an RFC 3339 timestamp string.
pub fn is_rfc3339(s: &Value) -> bool {
    s.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

/// The sorted field names of a JSON object.
pub fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}
