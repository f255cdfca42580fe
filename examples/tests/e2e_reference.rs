//! End-to-end tests of the reference app (REFERENCE_APP.md) over real sockets, against
//! both adapters: every scenario below is an `async fn(Adapter)`, and the `both!` macro
//! at the bottom runs each one once with `zocket-warp` and once with `zocket-hyper`
//! (test names `warp::<scenario>` and `hyper::<scenario>`).
//!
//! The client is tokio-tungstenite speaking raw JSON frames, so these tests pin the
//! wire protocol itself, not a client library's view of it.

mod e2e_support;

use std::time::Duration;

use e2e_support::{Adapter, Ended, RawClient, RefServer, WAIT, is_rfc3339, upgrade_request};
use serde_json::json;
use zocket_core::ServerConfig;

/// A short wait to check that nothing arrives (bounds a negative check only).
const QUIET: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------

async fn handshake_invalid_role_is_400_with_issues(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let answer = upgrade_request(app.addr, "/?userName=ada&userRole=boss").await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        answer.header("sec-websocket-accept").is_none(),
        "no upgrade"
    );
    let body = answer.json();
    assert_eq!(body["error"], "INVALID_HEADERS", "{body}");
    assert!(body["message"].as_str().unwrap().contains("boss"), "{body}");
    assert_eq!(body["issues"][0]["path"], "userRole", "{body}");
    assert!(
        body["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("moderator"),
        "{body}"
    );
    assert_eq!(app.stats().connections_total, 0);

    // The same request with a valid role is upgraded.
    let answer = upgrade_request(app.addr, "/?userName=ada&userRole=moderator").await;
    assert_eq!(answer.status, 101, "{answer:?}");
    assert_eq!(
        answer.header("sec-websocket-accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

async fn handshake_bad_token_is_401(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let answer = upgrade_request(app.addr, "/?userName=ada&token=bad").await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = answer.json();
    assert_eq!(body["error"], "UNAUTHORIZED", "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(app.stats().handshakes_rejected, 1);

    // Any other token is fine.
    let mut a = app.client("userName=ada&token=good").await;
    assert_eq!(
        a.ok("greet", json!({"name": "x"})).await,
        Some(json!("Hello, x!"))
    );
}

async fn handshake_defaults_and_client_id(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    // No headers at all: userName "User", role "user".
    let mut a = app.client("").await;
    let mut b = app.client("userName=bob&x-zocket-version=0").await;
    assert!(a.client_id.len() >= 16, "{}", a.client_id);
    assert_ne!(a.client_id, b.client_id);
    let target = b.client_id.clone();
    assert_eq!(
        a.ok(
            "chat.private",
            json!({"targetUserId": target, "message": "hi"})
        )
        .await,
        None
    );
    let private = b.event("chat.private").await;
    assert_eq!(private["from"], "User");
    // role "user" by default: staff-only messages are forbidden.
    let err = a
        .err("system.announcement", json!({"message": "hello"}))
        .await;
    assert_eq!(err["code"], "FORBIDDEN");
}

// ---------------------------------------------------------------------------------
// Every row of REFERENCE_APP.md
// ---------------------------------------------------------------------------------

async fn echo_ping(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn greet(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let id = a.send_rpc("greet", Some(json!({"name": "Ada"}))).await;
    assert_eq!(
        a.recv().await,
        json!({"type": "__rpc_res", "payload": "Hello, Ada!", "rpcId": id})
    );
}

async fn log_returns_unit(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(a.ok("log", json!("a line")).await, None);
    let err = a.err("log", json!({"not": "a string"})).await;
    assert_eq!(err["code"], "INVALID_INPUT");
    a.no_frame(QUIET).await;
}

async fn delayed_echo(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(
        a.ok("delayedEcho", json!("hello")).await,
        Some(json!("Echo: hello"))
    );
}

async fn trigger_broadcasts(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    assert_eq!(a.ok("trigger", json!("boom")).await, None);
    assert_eq!(a.event("message").await, json!("boom"));
    assert_eq!(b.event("message").await, json!("boom"));
}

async fn system_announcement(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn chat_private(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn chat_room(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    let mut c = app.client("userName=cy").await;
    b.ok("rooms.join", json!({"roomId": "r1"})).await;
    b.event("rooms.joined").await;

    // Membership is not required to send to a room (as v1).
    assert_eq!(
        a.ok(
            "chat.room",
            json!({"roomId": "r1", "message": "hello room"})
        )
        .await,
        None
    );
    let event = b.event("chat.room").await;
    assert_eq!(event["roomId"], "r1");
    assert_eq!(event["from"], "ada");
    assert_eq!(event["message"], "hello room");
    assert!(is_rfc3339(&event["timestamp"]), "{event}");
    a.no_frame(QUIET).await;
    c.no_frame(QUIET).await;
}

async fn notification_send(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn connection_get_client_id(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn rooms_join_leave_list(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;

    assert_eq!(
        a.ok("rooms.join", json!({"roomId": "b"})).await,
        Some(json!(["b"]))
    );
    assert_eq!(
        a.event("rooms.joined").await,
        json!({"roomId": "b", "userName": "ada"})
    );
    assert_eq!(
        a.ok("rooms.join", json!({"roomId": "a"})).await,
        Some(json!(["a", "b"]))
    );
    a.event("rooms.joined").await;
    // Joining again changes nothing and sends nothing.
    assert_eq!(
        a.ok("rooms.join", json!({"roomId": "b"})).await,
        Some(json!(["a", "b"]))
    );
    a.no_frame(QUIET).await;

    // The joiner and the members get `rooms.joined`.
    assert_eq!(
        b.ok("rooms.join", json!({"roomId": "b"})).await,
        Some(json!(["b"]))
    );
    let joined = json!({"roomId": "b", "userName": "bob"});
    assert_eq!(b.event("rooms.joined").await, joined);
    assert_eq!(a.event("rooms.joined").await, joined);

    assert_eq!(a.ok("rooms.list", json!({})).await, Some(json!(["a", "b"])));
    // The v1 client omits the payload of `rooms.list()`.
    let id = a.send_rpc("rooms.list", None).await;
    assert_eq!(a.reply(&id).await["payload"], json!(["a", "b"]));

    // Leaving: `rooms.left` to the room, the leaver included, then leave.
    assert_eq!(
        b.ok("rooms.leave", json!({"roomId": "b"})).await,
        Some(json!([]))
    );
    let left = json!({"roomId": "b", "userName": "bob"});
    assert_eq!(b.event("rooms.left").await, left);
    assert_eq!(a.event("rooms.left").await, left);
    // Leaving a room one is not in changes nothing and sends nothing.
    assert_eq!(
        b.ok("rooms.leave", json!({"roomId": "b"})).await,
        Some(json!([]))
    );
    a.no_frame(QUIET).await;
    b.no_frame(QUIET).await;
}

async fn rooms_message(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let mut b = app.client("userName=bob").await;
    let mut c = app.client("userName=cy").await;

    let err = a
        .err("rooms.message", json!({"roomId": "r", "content": "hi"}))
        .await;
    assert_eq!(err["code"], "FORBIDDEN");

    for client in [&mut a, &mut b] {
        client.ok("rooms.join", json!({"roomId": "r"})).await;
    }
    a.event("rooms.joined").await; // ada
    a.event("rooms.joined").await; // bob
    b.event("rooms.joined").await; // bob

    assert_eq!(
        a.ok("rooms.message", json!({"roomId": "r", "content": "hi all"}))
            .await,
        None
    );
    for client in [&mut a, &mut b] {
        let event = client.event("rooms.message").await;
        assert_eq!(event["roomId"], "r");
        assert_eq!(event["userName"], "ada");
        assert_eq!(event["content"], "hi all");
        assert!(is_rfc3339(&event["timestamp"]), "{event}");
    }
    c.no_frame(QUIET).await;
}

async fn test_compute_middlewares(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn test_admin_only(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut admin = app.client("userName=root&userRole=admin").await;
    let mut moderator = app.client("userName=mod&userRole=moderator").await;
    assert_eq!(admin.ok("test.adminOnly", json!({})).await, None);
    assert_eq!(admin.event("test.admin").await, json!({"ok": true}));
    let err = moderator.err("test.adminOnly", json!({})).await;
    assert_eq!(err["code"], "FORBIDDEN");
    moderator.no_frame(QUIET).await;
}

async fn bench_echo(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn bench_fanout(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn fail_panic_leaves_everyone_working(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn fail_error_teapot(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn slow_sleep(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    assert_eq!(a.ok("slow.sleep", json!({"ms": 20})).await, Some(json!(20)));
    let err = a.err("slow.sleep", json!({"ms": 30001})).await;
    assert_eq!(err["code"], "INVALID_INPUT");
    assert!(err["message"].as_str().unwrap().contains("30000"), "{err}");
    assert_eq!(a.ok("slow.sleep", json!({"ms": 0})).await, Some(json!(0)));
}

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

async fn unknown_type_is_not_found(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let err = a.err("no.such.thing", json!({})).await;
    assert_eq!(err["code"], "NOT_FOUND");
    a.send(json!({"type": "no.such.thing"})).await;
    let frame = a.recv().await;
    assert_eq!(frame["type"], "__error", "{frame}");
    assert_eq!(frame["error"]["code"], "NOT_FOUND");
    assert_eq!(frame["error"]["type"], "no.such.thing");
}

async fn invalid_payload_names_the_path(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn malformed_frames_are_bad_request(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn binary_frame_is_bad_request_and_stays_open(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn oversize_frame_closes_1009(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

async fn protocol_error_flood_closes_1008(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
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

// ---------------------------------------------------------------------------------
// Ordering
// ---------------------------------------------------------------------------------

async fn slow_sleep_does_not_delay_a_later_greet(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let slow = a.send_rpc("slow.sleep", Some(json!({"ms": 2000}))).await;
    let fast = a.send_rpc("greet", Some(json!({"name": "quick"}))).await;
    // The greet's reply is the first frame: the sleeping handler does not hold it up.
    let first = a.recv().await;
    assert_eq!(first["rpcId"], fast, "{first}");
    assert_eq!(first["payload"], "Hello, quick!");
    let second = a.recv().await;
    assert_eq!(second["rpcId"], slow, "{second}");
    assert_eq!(second["payload"], 2000);
}

async fn join_then_message_stay_ordered(adapter: Adapter) {
    let app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    // Pipelined without waiting for any reply: each message must see the join before it.
    let rooms: Vec<String> = (0..20).map(|i| format!("room-{i}")).collect();
    let mut frames = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        frames.push(
            json!({"type": "rooms.join", "payload": {"roomId": room}, "rpcId": format!("j{i}")}),
        );
        frames.push(json!({"type": "rooms.message", "payload": {"roomId": room, "content": format!("m{i}")}, "rpcId": format!("m{i}")}));
    }
    a.send_all(frames).await;
    for (i, room) in rooms.iter().enumerate() {
        let joined = a.recv().await;
        assert_eq!(joined["type"], "rooms.joined", "{joined}");
        assert_eq!(joined["payload"]["roomId"], room.as_str());
        let reply = a.recv().await;
        assert_eq!(reply["rpcId"], format!("j{i}"), "{reply}");
        assert_eq!(reply["type"], "__rpc_res", "{reply}");
        let message = a.recv().await;
        assert_eq!(message["type"], "rooms.message", "{message}");
        assert_eq!(message["payload"]["content"], format!("m{i}"));
        let reply = a.recv().await;
        assert_eq!(reply["rpcId"], format!("m{i}"), "{reply}");
        assert_eq!(
            reply["type"], "__rpc_res",
            "the message saw the join: {reply}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Lifecycle: heartbeat, slow consumer, shutdown
// ---------------------------------------------------------------------------------

async fn client_that_never_reads_is_cut_off_1013(adapter: Adapter) {
    // The byte budget (default 1 MiB) cuts the slow client off; a tiny frame cap would
    // also cut off a reader that lags a few frames behind on a loaded machine.
    let config = ServerConfig::default()
        .heartbeat(zocket_core::Heartbeat::disabled())
        .close_timeout(Duration::from_secs(30));
    let app = RefServer::start_with(adapter, config).await;
    let mut slow = RawClient::connect_small_buffer(app.addr, "userName=slow").await;
    let mut reader = app.client("userName=reader").await;
    let mut sender = app.client("userName=sender").await;
    for client in [&mut slow, &mut reader] {
        client.ok("rooms.join", json!({"roomId": "firehose"})).await;
    }
    slow.event("rooms.joined").await;
    slow.event("rooms.joined").await;
    reader.event("rooms.joined").await;

    // The reader reads every tick in a task of its own until the last one.
    let reading = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let tick = reader.event("bench.tick").await;
            seqs.push(tick["seq"].as_u64().unwrap());
            if tick["last"] == true {
                return (seqs, reader);
            }
        }
    });

    // `slow` reads nothing from now on. Send big ticks until its queue overflows.
    let pad = "p".repeat(32 * 1024);
    let mut seq = 0u64;
    while app.stats().slow_consumer_closes == 0 {
        assert!(
            seq < 20_000,
            "the slow client was never cut off: {:?}",
            app.stats()
        );
        sender
            .ok(
                "bench.fanout",
                json!({"roomId": "firehose", "seq": seq, "pad": pad}),
            )
            .await;
        seq += 1;
    }
    assert_eq!(app.stats().slow_consumer_closes, 1);
    // Others keep receiving: more ticks after the cut, then the last one.
    for _ in 0..20 {
        sender
            .ok("bench.fanout", json!({"roomId": "firehose", "seq": seq}))
            .await;
        seq += 1;
    }
    sender
        .ok(
            "bench.fanout",
            json!({"roomId": "firehose", "seq": seq, "last": true}),
        )
        .await;
    let (seqs, mut reader) = tokio::time::timeout(WAIT * 3, reading)
        .await
        .expect("the reader gets every tick")
        .unwrap();
    assert_eq!(seqs, (0..=seq).collect::<Vec<_>>(), "every tick, in order");
    assert_eq!(
        reader.ok("greet", json!({"name": "r"})).await,
        Some(json!("Hello, r!"))
    );

    // The slow client, reading at last, finds what got through and then a 1013.
    let (ended, frames) = slow.ended().await;
    assert_eq!(
        ended,
        Ended::Close(1013, "slow consumer: outbound queue full".into())
    );
    assert!(frames.len() < seq as usize, "it did not get everything");
    assert!(frames.iter().all(|f| f["type"] == "bench.tick"));
    // The server now waits for the client's close frame (or the close timeout) before it
    // drops the connection (RFC 6455 closing handshake); this client just goes away.
    drop(slow);
    app.wait_stats("the slow client's connection ends", |s| {
        s.connections_open == 2
    })
    .await;
}

async fn shutdown_closes_1001_after_in_flight_calls(adapter: Adapter) {
    let mut app = RefServer::start(adapter).await;
    let mut a = app.client("userName=ada").await;
    let mut idle = app.client("userName=idle").await;
    let slow = a.send_rpc("slow.sleep", Some(json!({"ms": 400}))).await;
    // Once the greet is answered, the sleep was read and started before it.
    assert_eq!(
        a.ok("greet", json!({"name": "x"})).await,
        Some(json!("Hello, x!"))
    );

    let addr = app.addr;
    let stats_server = app.server.clone();
    let shutdown = tokio::spawn(async move {
        app.shutdown().await;
        app
    });
    // The in-flight reply arrives, then the close.
    let (ended, frames) = a.ended().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["rpcId"], slow);
    assert_eq!(frames[0]["payload"], 400);
    assert_eq!(ended, Ended::Close(1001, "server shutting down".into()));
    assert_eq!(idle.close_code().await, 1001);

    let _app = tokio::time::timeout(WAIT * 2, shutdown)
        .await
        .expect("the shutdown completes")
        .unwrap();
    assert_eq!(stats_server.stats().connections_open, 0);
    assert!(stats_server.is_shutting_down());
    // No new connection is served.
    let refused = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await
    .expect("an answer in time");
    assert!(
        refused.is_err(),
        "a connection after the shutdown was accepted"
    );
}

// ---------------------------------------------------------------------------------
// The matrix: every scenario against both adapters.
// ---------------------------------------------------------------------------------

macro_rules! both {
    ($($scenario:ident),* $(,)?) => {
        both!(@adapter warp, Warp, [$($scenario),*]);
        both!(@adapter hyper, Hyper, [$($scenario),*]);
    };
    (@adapter $module:ident, $variant:ident, [$($scenario:ident),*]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Adapter::$variant).await;
                }
            )*
        }
    };
}

// The heartbeat scenario (a silent client is dropped and its disconnect hook runs) is in
// `e2e_heartbeat.rs`: it captures the server's log with a process-wide subscriber.
both!(
    handshake_invalid_role_is_400_with_issues,
    handshake_bad_token_is_401,
    handshake_defaults_and_client_id,
    echo_ping,
    greet,
    log_returns_unit,
    delayed_echo,
    trigger_broadcasts,
    system_announcement,
    chat_private,
    chat_room,
    notification_send,
    connection_get_client_id,
    rooms_join_leave_list,
    rooms_message,
    test_compute_middlewares,
    test_admin_only,
    bench_echo,
    bench_fanout,
    fail_panic_leaves_everyone_working,
    fail_error_teapot,
    slow_sleep,
    unknown_type_is_not_found,
    invalid_payload_names_the_path,
    malformed_frames_are_bad_request,
    binary_frame_is_bad_request_and_stays_open,
    oversize_frame_closes_1009,
    protocol_error_flood_closes_1008,
    slow_sleep_does_not_delay_a_later_greet,
    join_then_message_stay_ordered,
    client_that_never_reads_is_cut_off_1013,
    shutdown_closes_1001_after_in_flight_calls,
);
