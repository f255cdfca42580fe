//! Errors: handler panics and application errors, unknown types, invalid input, malformed and binary frames, the size limit (1009) and the protocol-error flood limit (1008).
//!
//! Each scenario is written once against [`Harness`] and runs in-process, on
//! `zocket-warp` and on `zocket-hyper` (test names `in_process::*`, `warp::*`,
//! `hyper::*`).

use serde_json::json;
use zocket_core::{Server, ServerConfig};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Ended, Harness};

fn app() -> Server<RefCtx> {
    Server::new(reference::router())
}

async fn fail_panic_leaves_everyone_working<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    b.ok("rooms.join", json!({"roomId": "r"})).await;
    b.event("rooms.joined").await;

    let err = a.err("fail.panic", json!({})).await;
    assert_eq!(err["code"], "INTERNAL");
    let message = err["message"].as_str().unwrap();
    assert!(
        !message.contains("deliberate"),
        "no panic text reaches the client: {message}"
    );
    assert_eq!(app.stats().handler_panics, 1);

    // The caller, the other client and new clients all keep working.
    assert_eq!(
        a.ok("greet", json!({"name": "a"})).await,
        Some(json!("Hello, a!"))
    );
    assert_eq!(
        b.ok("greet", json!({"name": "b"})).await,
        Some(json!("Hello, b!"))
    );
    a.ok("chat.room", json!({"roomId": "r", "message": "still here"}))
        .await;
    assert_eq!(b.event("chat.room").await["message"], "still here");
    let mut c = app.client("userName=cy").await;
    assert_eq!(
        c.ok("greet", json!({"name": "c"})).await,
        Some(json!("Hello, c!"))
    );
    assert_eq!(app.stats().connections_open, 3);

    // Without rpcId the panic is an `__error`.
    a.send(json!({"type": "fail.panic", "payload": {}})).await;
    let frame = a.recv().await;
    assert_eq!(frame["type"], "__error", "{frame}");
    assert_eq!(frame["error"]["code"], "INTERNAL");
    assert_eq!(frame["error"]["type"], "fail.panic");
}

async fn fail_error_teapot<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let id = a.send_rpc("fail.error", Some(json!({}))).await;
    assert_eq!(
        a.recv().await,
        json!({
            "type": "__rpc_err",
            "rpcId": id,
            "error": {"code": "TEAPOT", "message": "I'm a teapot", "data": {"hint": "try coffee"}}
        })
    );
}

async fn unknown_type_is_not_found<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let err = a.err("no.such.thing", json!({})).await;
    assert_eq!(err["code"], "NOT_FOUND");
    a.send(json!({"type": "no.such.thing"})).await;
    let frame = a.recv().await;
    assert_eq!(frame["type"], "__error", "{frame}");
    assert_eq!(frame["error"]["code"], "NOT_FOUND");
    assert_eq!(frame["error"]["type"], "no.such.thing");
}

async fn invalid_payload_names_the_path<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let err = a.err("greet", json!({"name": 5})).await;
    assert_eq!(err["code"], "INVALID_INPUT");
    assert!(err["message"].as_str().unwrap().contains("name"), "{err}");

    let err = a
        .err("chat.private", json!({"targetUserId": 5, "message": "x"}))
        .await;
    assert_eq!(err["code"], "INVALID_INPUT");
    assert!(
        err["message"].as_str().unwrap().contains("targetUserId"),
        "{err}"
    );

    a.send(json!({"type": "greet", "payload": {}})).await;
    let frame = a.recv().await;
    assert_eq!(frame["type"], "__error", "{frame}");
    assert_eq!(frame["error"]["code"], "INVALID_INPUT");
    assert_eq!(frame["error"]["type"], "greet");
    assert!(
        frame["error"]["message"].as_str().unwrap().contains("name"),
        "{frame}"
    );
}

async fn malformed_frames_are_bad_request<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    for text in [
        "not json",
        "[1,2]",
        r#"{"payload":{}}"#,
        r#"{"type":"greet","rpcId":5}"#,
    ] {
        a.send_text(text).await;
        let frame = a.recv().await;
        assert_eq!(frame["type"], "__error", "{text}: {frame}");
        assert_eq!(frame["error"]["code"], "BAD_REQUEST", "{text}: {frame}");
    }
    // A string rpcId but no type: answered as that RPC.
    a.send_text(r#"{"rpcId":"x1"}"#).await;
    let frame = a.recv().await;
    assert_eq!(frame["type"], "__rpc_err", "{frame}");
    assert_eq!(frame["rpcId"], "x1");
    assert_eq!(frame["error"]["code"], "BAD_REQUEST");
    // Still open.
    assert_eq!(
        a.ok("greet", json!({"name": "a"})).await,
        Some(json!("Hello, a!"))
    );
}

async fn binary_frame_is_bad_request_and_stays_open<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    a.send_binary(br#"{"type":"greet","payload":{"name":"a"},"rpcId":"1"}"#.to_vec())
        .await;
    let frame = a.recv().await;
    assert_eq!(frame["type"], "__error", "{frame}");
    assert_eq!(frame["error"]["code"], "BAD_REQUEST");
    assert_eq!(
        a.ok("greet", json!({"name": "a"})).await,
        Some(json!("Hello, a!"))
    );
    assert_eq!(app.stats().connections_open, 1);
}

async fn oversize_frame_closes_1009<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    let limit = ServerConfig::default().max_message_bytes;

    // Just under the limit is fine.
    let filler = "x".repeat(limit - 100);
    let frame = a.call("bench.echo", json!(filler)).await;
    assert_eq!(frame["payload"].as_str().map(str::len), Some(filler.len()));

    let big = json!({"type": "bench.echo", "payload": "y".repeat(limit + 1)}).to_string();
    a.send_text(big).await;
    assert_eq!(a.close_code().await, 1009);
    app.wait_stats("an oversize close", |s| {
        s.oversize_closes == 1 && s.connections_open == 1
    })
    .await;
    // Other connections are unaffected.
    assert_eq!(
        b.ok("greet", json!({"name": "b"})).await,
        Some(json!("Hello, b!"))
    );
}

async fn protocol_error_flood_closes_1008<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    let limit = ServerConfig::default().protocol_errors.max as usize;
    a.send_all((0..limit + 20).map(|i| json!({"type": "nope", "payload": i})))
        .await;
    let (ended, frames) = a.ended().await;
    assert_eq!(ended, Ended::Close(1008, "too many protocol errors".into()));
    assert!(frames.len() >= limit, "{} error frames", frames.len());
    assert!(frames.iter().all(|f| f["error"]["code"] == "NOT_FOUND"));
    assert_eq!(app.stats().flood_closes, 1);
    assert_eq!(
        b.ok("greet", json!({"name": "b"})).await,
        Some(json!("Hello, b!"))
    );
}

zocket_tests::scenarios!(RefCtx;
    all: [fail_panic_leaves_everyone_working, fail_error_teapot, unknown_type_is_not_found, invalid_payload_names_the_path, malformed_frames_are_bad_request, binary_frame_is_bad_request_and_stays_open, oversize_frame_closes_1009, protocol_error_flood_closes_1008],
);
