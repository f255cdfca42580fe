//! The handshake: admission (RFC 6455 validation) and the header mapping of
//! `Server::handshake` with the reference app's headers type, from an arbitrary
//! request line, headers, path and query. Invariants: no panic; a refusal has a status
//! in 400/401/403/426/503, a JSON body `{"error": <string>, "message": <string>, ...}`,
//! and the response headers the protocol requires.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use zocket_core::{
    HandshakeError, HandshakeRequest, HttpVersion, Server, UpgradeRequest, validate_upgrade,
};
use zocket_examples::reference::{self, RefCtx};

#[derive(Debug, Arbitrary)]
struct Input {
    method: String,
    version: u8,
    /// Start from a valid upgrade request, so that the fuzzer reaches the header mapping.
    valid_base: bool,
    headers: Vec<(String, String)>,
    path: String,
    query: Option<String>,
    remote: Option<([u8; 4], u16)>,
}

struct World {
    rt: tokio::runtime::Runtime,
    server: Server<RefCtx>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = Server::new(reference::router());
    World { rt, server }
});

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

fuzz_target!(|input: Input| {
    let version = match input.version % 5 {
        0 => HttpVersion::Http09,
        1 => HttpVersion::Http10,
        2 => HttpVersion::Http11,
        3 => HttpVersion::H2,
        _ => HttpVersion::H3,
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    if input.valid_base {
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
    headers.extend(input.headers);
    let method = if input.valid_base {
        "GET"
    } else {
        input.method.as_str()
    };
    let req = UpgradeRequest {
        method,
        version,
        headers: &headers,
    };
    if let Err(e) = validate_upgrade(&req) {
        check_refusal(&e);
        return;
    }
    let world = &*WORLD;
    let request = HandshakeRequest::new(input.path)
        .query(input.query)
        .headers(headers)
        .remote_addr(input.remote.map(|(ip, port)| (ip, port).into()));
    world.rt.block_on(async {
        match world.server.handshake(request).await {
            Ok(accepted) => drop(accepted),
            Err(e) => check_refusal(&e),
        }
    });
    assert_eq!(
        world.server.admitted().0,
        0,
        "a dropped handshake frees its slot"
    );
});
