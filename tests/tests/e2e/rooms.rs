//! Rooms in the reference app: join, leave, list, room messages and `chat.room`.
//!
//! Each scenario is written once against [`Harness`] and runs in-process, on
//! `zocket-warp` and on `zocket-hyper` (test names `in_process::*`, `warp::*`,
//! `hyper::*`).

use std::time::Duration;

use serde_json::json;
use zocket_core::Server;
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Harness, is_rfc3339};

/// A short wait to check that nothing arrives (bounds a negative check only).
const QUIET: Duration = Duration::from_millis(150);

fn app() -> Server<RefCtx> {
    Server::new(reference::router())
}

async fn chat_room<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
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

async fn rooms_join_leave_list<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
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

async fn rooms_message<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
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

zocket_tests::scenarios!(RefCtx;
    all: [chat_room, rooms_join_leave_list, rooms_message],
);
