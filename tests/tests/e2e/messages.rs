//! Every incoming message of the reference app (REFERENCE_APP.md), row by row, and the events they send, as raw frames.
//!
//! Each scenario is written once against [`Harness`] and runs in-process, on
//! `zocket-warp` and on `zocket-hyper` (test names `in_process::*`, `warp::*`,
//! `hyper::*`).

use std::time::Duration;

use serde_json::json;
use zocket_core::Server;
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Harness, is_rfc3339, keys};

/// A short wait to check that nothing arrives (bounds a negative check only).
const QUIET: Duration = Duration::from_millis(150);

fn app() -> Server<RefCtx> {
    Server::new(reference::router())
}

async fn echo_ping<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;

    // The event to the caller comes before the reply; a unit result has no payload.
    let id = a.send_rpc("echo.ping", Some(json!({}))).await;
    assert_eq!(
        a.recv().await,
        json!({"type": "echo.pong", "payload": {"reply": "pong: ping"}})
    );
    assert_eq!(a.recv().await, json!({"type": "__rpc_res", "rpcId": id}));

    assert_eq!(a.ok("echo.ping", json!({"message": "hi"})).await, None);
    assert_eq!(a.event("echo.pong").await, json!({"reply": "pong: hi"}));

    // No payload at all (as the v1 client sends for an argument-less call).
    let id = a.send_rpc("echo.ping", None).await;
    assert_eq!(a.reply(&id).await["type"], "__rpc_res");
    assert_eq!(a.event("echo.pong").await, json!({"reply": "pong: ping"}));

    // Without rpcId: only the event.
    a.send(json!({"type": "echo.ping", "payload": {"message": "fire"}}))
        .await;
    assert_eq!(a.event("echo.pong").await, json!({"reply": "pong: fire"}));
    a.no_frame(QUIET).await;
    b.no_frame(QUIET).await;
}

async fn greet<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let id = a.send_rpc("greet", Some(json!({"name": "Ada"}))).await;
    assert_eq!(
        a.recv().await,
        json!({"type": "__rpc_res", "payload": "Hello, Ada!", "rpcId": id})
    );
}

async fn log_returns_unit<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(a.ok("log", json!("a line")).await, None);
    let err = a.err("log", json!({"not": "a string"})).await;
    assert_eq!(err["code"], "INVALID_INPUT");
    a.no_frame(QUIET).await;
}

async fn delayed_echo<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(
        a.ok("delayedEcho", json!("hello")).await,
        Some(json!("Echo: hello"))
    );
}

async fn trigger_broadcasts<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    assert_eq!(a.ok("trigger", json!("boom")).await, None);
    assert_eq!(a.event("message").await, json!("boom"));
    assert_eq!(b.event("message").await, json!("boom"));
}

async fn system_announcement<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut user = app.client("userName=ada").await;
    let mut moderator = app.client("userName=mod&userRole=moderator").await;
    let mut admin = app.client("userName=root&userRole=admin").await;

    let err = user
        .err("system.announcement", json!({"message": "hi"}))
        .await;
    assert_eq!(err["code"], "FORBIDDEN");
    // Validation comes before the middleware: bad input is INVALID_INPUT for anyone.
    let err = user.err("system.announcement", json!({})).await;
    assert_eq!(err["code"], "INVALID_INPUT");
    assert!(
        err["message"].as_str().unwrap().contains("message"),
        "{err}"
    );

    assert_eq!(
        moderator
            .ok("system.announcement", json!({"message": "maintenance"}))
            .await,
        None
    );
    for client in [&mut user, &mut moderator, &mut admin] {
        let event = client.event("system.announcement").await;
        assert_eq!(event["message"], "maintenance");
        assert_eq!(event["from"], "mod");
        assert!(is_rfc3339(&event["timestamp"]), "{event}");
    }
    assert_eq!(
        admin
            .ok("system.announcement", json!({"message": "by admin"}))
            .await,
        None
    );
    assert_eq!(user.event("system.announcement").await["from"], "root");
}

async fn chat_private<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    let mut c = app.client("userName=cy").await;
    let target = b.client_id.clone();
    assert_eq!(
        a.ok(
            "chat.private",
            json!({"targetUserId": target, "message": "psst"})
        )
        .await,
        None
    );
    let event = b.event("chat.private").await;
    assert_eq!(event["from"], "ada");
    assert_eq!(event["message"], "psst");
    assert!(is_rfc3339(&event["timestamp"]), "{event}");

    // An unknown id delivers nothing, and is not an error.
    assert_eq!(
        a.ok(
            "chat.private",
            json!({"targetUserId": "no-such-client", "message": "lost"})
        )
        .await,
        None
    );
    a.no_frame(QUIET).await;
    b.no_frame(QUIET).await;
    c.no_frame(QUIET).await;
}

async fn notification_send<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut user = app.client("userName=ada").await;
    let mut admin = app.client("userName=root&userRole=admin").await;
    let mut b = app.client("userName=bob").await;
    let mut c = app.client("userName=cy").await;
    c.ok("rooms.join", json!({"roomId": "ops"})).await;
    c.event("rooms.joined").await;

    let err = user
        .err(
            "notification.send",
            json!({"type": "info", "message": "x", "broadcast": true}),
        )
        .await;
    assert_eq!(err["code"], "FORBIDDEN");

    // broadcast wins over targets and rooms
    let b_id = b.client_id.clone();
    admin
        .ok(
            "notification.send",
            json!({"type": "warning", "message": "all", "broadcast": true, "targets": [b_id], "rooms": ["ops"]}),
        )
        .await;
    for client in [&mut user, &mut admin, &mut b, &mut c] {
        let event = client.event("notification.receive").await;
        assert_eq!(event["type"], "warning");
        assert_eq!(event["message"], "all");
        assert!(is_rfc3339(&event["timestamp"]), "{event}");
    }

    // then targets
    admin
        .ok(
            "notification.send",
            json!({"type": "info", "message": "to bob", "targets": [b_id], "rooms": ["ops"]}),
        )
        .await;
    assert_eq!(b.event("notification.receive").await["message"], "to bob");

    // then rooms
    admin
        .ok(
            "notification.send",
            json!({"type": "error", "message": "to ops", "rooms": ["ops"]}),
        )
        .await;
    let event = c.event("notification.receive").await;
    assert_eq!(event["type"], "error");
    assert_eq!(event["message"], "to ops");

    // else nothing
    assert_eq!(
        admin
            .ok(
                "notification.send",
                json!({"type": "info", "message": "nobody", "targets": [], "rooms": []}),
            )
            .await,
        None
    );
    for client in [&mut user, &mut admin, &mut b, &mut c] {
        client.no_frame(QUIET).await;
    }

    let err = admin
        .err(
            "notification.send",
            json!({"type": "fatal", "message": "x", "broadcast": true}),
        )
        .await;
    assert_eq!(err["code"], "INVALID_INPUT");
}

async fn connection_get_client_id<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let id = a.client_id.clone();
    assert_eq!(
        a.ok("connection.getClientId", json!({})).await,
        Some(json!({"clientId": id}))
    );
    assert_eq!(
        a.event("connection.clientId").await,
        json!({"clientId": id})
    );
}

async fn test_compute_middlewares<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(a.ok("test.compute", json!({})).await, None);
    assert_eq!(
        a.event("test.result").await,
        json!({"step1": "mw1-ping", "step2": "mw2-mw1-ping"})
    );
    assert_eq!(a.ok("test.compute", json!({"message": "x"})).await, None);
    assert_eq!(
        a.event("test.result").await,
        json!({"step1": "mw1-x", "step2": "mw2-mw1-x"})
    );
}

async fn test_admin_only<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut admin = app.client("userName=root&userRole=admin").await;
    let mut moderator = app.client("userName=mod&userRole=moderator").await;
    assert_eq!(admin.ok("test.adminOnly", json!({})).await, None);
    assert_eq!(admin.event("test.admin").await, json!({"ok": true}));
    let err = moderator.err("test.adminOnly", json!({})).await;
    assert_eq!(err["code"], "FORBIDDEN");
    moderator.no_frame(QUIET).await;
}

async fn bench_echo<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    for value in [
        json!({"a": [1, 2.5, {"b": null}], "s": "é\u{1F600}"}),
        json!("text"),
        json!(42),
        json!([]),
        json!(null),
    ] {
        let frame = a.call("bench.echo", value.clone()).await;
        assert_eq!(frame["type"], "__rpc_res", "{frame}");
        // A JSON null output is kept as `"payload":null` (the output is not unit).
        assert_eq!(frame.get("payload"), Some(&value), "{frame}");
    }
}

async fn bench_fanout<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    let mut c = app.client("userName=cy").await;
    for client in [&mut a, &mut b] {
        client.ok("rooms.join", json!({"roomId": "bench"})).await;
    }
    a.event("rooms.joined").await;
    a.event("rooms.joined").await;
    b.event("rooms.joined").await;

    let input = json!({"roomId": "bench", "seq": 7, "sentAt": 1.5, "nested": {"x": [1, 2]}});
    assert_eq!(c.ok("bench.fanout", input.clone()).await, None);
    assert_eq!(a.event("bench.tick").await, input);
    assert_eq!(b.event("bench.tick").await, input);
    c.no_frame(QUIET).await;
}

async fn slow_sleep<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(a.ok("slow.sleep", json!({"ms": 20})).await, Some(json!(20)));
    let err = a.err("slow.sleep", json!({"ms": 30001})).await;
    assert_eq!(err["code"], "INVALID_INPUT");
    assert!(err["message"].as_str().unwrap().contains("30000"), "{err}");
    assert_eq!(a.ok("slow.sleep", json!({"ms": 0})).await, Some(json!(0)));
}

async fn unit_output_replies_have_no_payload_key<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut admin = app.client("userName=Ad&userRole=admin").await;
    let other = app.client("userName=O").await;
    admin.ok("rooms.join", json!({"roomId": "u"})).await;
    let unit_calls = [
        ("echo.ping", json!({})),
        ("log", json!("line")),
        ("trigger", json!("t")),
        ("system.announcement", json!({"message": "m"})),
        (
            "chat.private",
            json!({"targetUserId": other.client_id, "message": "m"}),
        ),
        ("chat.room", json!({"roomId": "u", "message": "m"})),
        (
            "notification.send",
            json!({"type": "info", "message": "m", "broadcast": true}),
        ),
        ("rooms.message", json!({"roomId": "u", "content": "c"})),
        ("test.compute", json!({})),
        ("test.adminOnly", json!({})),
        ("bench.fanout", json!({"roomId": "u"})),
    ];
    for (kind, payload) in unit_calls {
        let r = admin.call(kind, payload).await;
        assert_eq!(keys(&r), ["rpcId", "type"], "{kind}: {r}");
        assert_eq!(r["type"], "__rpc_res", "{kind}");
    }
    // Non-unit outputs do carry one.
    let r = admin.call("rooms.list", json!({})).await;
    assert_eq!(keys(&r), ["payload", "rpcId", "type"]);
    assert_eq!(r["payload"], json!(["u"]));
}

zocket_tests::scenarios!(RefCtx;
    all: [echo_ping, greet, log_returns_unit, delayed_echo, trigger_broadcasts, system_announcement, chat_private, notification_send, connection_get_client_id, test_compute_middlewares, test_admin_only, bench_echo, bench_fanout, slow_sleep, unit_output_replies_have_no_payload_key],
);
