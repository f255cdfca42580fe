//! The `handshake` check, shared by the fuzz target (`fuzz_targets/handshake.rs`) and
//! the regression test of the normal suite (`examples/tests/fuzz_regressions.rs`), which
//! replays `fuzz/regressions/handshake/`.
//!
//! Input: the first byte holds flags (bits 0-2: the HTTP version, `% 5`; bit 3: start
//! from a valid upgrade request, so that the fuzzer reaches the header mapping; bit 4:
//! a remote address 10.0.0.N, N from bits 5-7); the rest is text, one item per line:
//! the method, the path, the query (empty: none), then headers `name: value`. So seeds
//! and regressions are readable. Admission (RFC 6455 validation) and then
//! `Server::handshake` with the reference app's headers type run on it. Invariants: no
//! panic; a refusal has a status in 400/401/403/426/503, a JSON body
//! `{"error": <string>, "message": <string>, ...}` and the headers the protocol requires
//! (426: `Sec-WebSocket-Version: 13`, 503: `Retry-After`); a dropped handshake frees its
//! admission slot.
#![allow(dead_code)]

use zocket_core::{HandshakeError, HandshakeRequest, Server};
use zocket_core::{HttpVersion, UpgradeRequest, validate_upgrade as validate};
use zocket_examples::reference::{self, RefCtx};

/// Built once per process.
pub struct World {
    rt: tokio::runtime::Runtime,
    server: Server<RefCtx>,
}

impl World {
    /// A current-thread runtime and the reference server.
    pub fn new() -> World {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(async { Server::new(reference::router()) });
        World { rt, server }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

fn check_refusal(e: &HandshakeError) {
    let status = e.status();
    assert!(matches!(status, 400 | 401 | 403 | 426 | 503), "{status}");
    let body: serde_json::Value = serde_json::from_str(&e.body()).expect("JSON body");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    let headers = e.response_headers();
    if status == 426 {
        assert!(headers.contains(&("sec-websocket-version", "13".to_owned())));
    }
    if status == 503 {
        assert!(headers.iter().any(|(n, _)| *n == "retry-after"));
    }
}

/// Run one input; panics when an invariant does not hold.
pub fn run(world: &World, data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let version = match (flags & 0b111) % 5 {
        0 => HttpVersion::Http09,
        1 => HttpVersion::Http10,
        2 => HttpVersion::Http11,
        3 => HttpVersion::H2,
        _ => HttpVersion::H3,
    };
    let valid_base = flags & 0b1000 != 0;
    let remote = (flags & 0b1_0000 != 0).then(|| ([10, 0, 0, flags >> 5], 4000).into());
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default().to_owned();
    let query = lines.next().filter(|q| !q.is_empty()).map(str::to_owned);
    let mut headers: Vec<(String, String)> = Vec::new();
    if valid_base {
        for (k, v) in [
            ("host", "localhost"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ] {
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        headers.push((name.to_owned(), value.trim_start().to_owned()));
    }
    let method = if valid_base { "GET" } else { method };
    let req = UpgradeRequest {
        method,
        version,
        headers: &headers,
    };
    if let Err(e) = validate(&req) {
        check_refusal(&e);
        return;
    }
    let request = HandshakeRequest::new(path)
        .query(query)
        .headers(headers)
        .remote_addr(remote);
    world.rt.block_on(async {
        match world.server.handshake(request).await {
            Ok(accepted) => drop(accepted),
            Err(e) => check_refusal(&e),
        }
    });
    assert_eq!(
        world.server.admitted(),
        (0, 0),
        "a dropped handshake frees its slot"
    );
}
