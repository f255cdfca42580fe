//! The reference app (REFERENCE_APP.md), every row of its tables, in-process: virtual
//! clients of `zocket_core::testing::TestServer` go through the real handshake and
//! connection driver, only without sockets.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use zocket_core::testing::{TestClient, TestError, TestServer};
use zocket_core::{ClientId, HandshakeError, Message, Reject};
use zocket_examples::reference::contract::{events, messages, *};
use zocket_examples::reference::{self, RefCtx};

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(120);

fn app() -> TestServer<RefCtx> {
    TestServer::new(reference::router())
}

async fn user(app: &TestServer<RefCtx>, name: &str, role: &str) -> TestClient {
    app.connect([("userName", name), ("userRole", role)])
        .await
        .unwrap_or_else(|e| panic!("{name} ({role}) could not connect: {e}"))
}

fn rejected(e: TestError) -> Reject {
    match e {
        TestError::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn assert_rfc3339(ts: &str) {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("`{ts}` is not an RFC 3339 timestamp: {e}"));
}

/// The sorted field names of a JSON object.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// The payload of the first event frame named `name` this client received (waits for it).
async fn raw_event(c: &TestClient, name: &str) -> Value {
    let frame = c
        .wait_frame(|f| serde_json::from_str::<Value>(f).is_ok_and(|v| v["type"] == name))
        .await
        .unwrap_or_else(|e| panic!("no `{name}` event: {e}"));
    let v: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(keys(&v), ["payload", "type"], "event frame {frame}");
    v["payload"].clone()
}

static RPC: AtomicU64 = AtomicU64::new(1);

/// Send `{"type", "payload"?, "rpcId"}` as raw text and return the reply frame.
async fn raw_call(c: &TestClient, kind: &str, payload: Option<Value>) -> Value {
    let id = format!("raw-{}", RPC.fetch_add(1, Ordering::Relaxed));
    let mut frame = json!({ "type": kind, "rpcId": id });
    if let Some(p) = payload {
        frame["payload"] = p;
    }
    c.send_raw(frame.to_string()).unwrap();
    let reply = c
        .wait_frame(|f| serde_json::from_str::<Value>(f).is_ok_and(|v| v["rpcId"] == id.as_str()))
        .await
        .unwrap_or_else(|e| panic!("no reply to {kind}: {e}"));
    serde_json::from_str(&reply).unwrap()
}

// ---------------------------------------------------------------------------------
// Handshake headers
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_role_is_http_400_invalid_headers_with_the_path() {
    let app = app();
    let err = app
        .connect([("userName", "Eve"), ("userRole", "superuser")])
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let body: Value = serde_json::from_str(&err.body()).unwrap();
    assert_eq!(body["error"], "INVALID_HEADERS");
    assert_eq!(body["issues"][0]["path"], "userRole");
    match err {
        HandshakeError::InvalidHeaders { issues, .. } => {
            assert_eq!(issues.len(), 1);
            assert_eq!(issues[0].path, "userRole");
        }
        other => panic!("expected InvalidHeaders, got {other:?}"),
    }
    // Case matters: role names are lower case.
    let err = app.connect([("userRole", "Admin")]).await.unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn bad_token_is_http_401_and_other_tokens_are_accepted() {
    let app = app();
    let err = app.connect([("token", "bad")]).await.unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(matches!(err, HandshakeError::Unauthorized(_)), "{err:?}");
    let body: Value = serde_json::from_str(&err.body()).unwrap();
    assert_eq!(body["error"], "UNAUTHORIZED");

    let ok = app.connect([("token", "good")]).await.unwrap();
    assert_eq!(
        ok.call::<messages::Greet>(GreetIn::new("x")).await.unwrap(),
        "Hello, x!"
    );
}

#[tokio::test]
async fn headers_default_to_user_name_user_and_role_user() {
    let app = app();
    let anon = app.connect(Vec::<(String, String)>::new()).await.unwrap();
    assert_eq!(anon.client_id().as_str().len(), 32);

    // userName defaults to "User".
    anon.call::<messages::RoomsJoin>(RoomIn::new("r"))
        .await
        .unwrap();
    let joined = anon.next::<events::RoomsJoined>().await.unwrap();
    assert_eq!(joined.user_name, "User");

    // userRole defaults to "user": staff-only and admin-only messages are forbidden.
    let e = anon
        .call::<messages::SystemAnnouncement>(AnnouncementIn::new("hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    let e = anon
        .call::<messages::TestAdminOnly>(Empty {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));

    // The explicit values are used when given.
    let admin = user(&app, "Root", "admin").await;
    admin
        .call::<messages::RoomsJoin>(RoomIn::new("r"))
        .await
        .unwrap();
    assert_eq!(
        admin.next::<events::RoomsJoined>().await.unwrap().user_name,
        "Root"
    );
    admin
        .call::<messages::TestAdminOnly>(Empty {})
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------
// Simple messages
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn echo_ping_sends_pong_to_the_caller_only() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let b = user(&app, "B", "user").await;

    a.call::<messages::EchoPing>(PingIn::new("hello"))
        .await
        .unwrap();
    assert_eq!(
        raw_event(&a, "echo.pong").await,
        json!({"reply": "pong: hello"})
    );
    assert_eq!(
        a.next::<events::EchoPong>().await.unwrap(),
        Pong {
            reply: "pong: hello".into()
        }
    );
    // Default message, with the payload absent altogether.
    a.send_raw(r#"{"type":"echo.ping"}"#).unwrap();
    assert_eq!(
        a.next::<events::EchoPong>().await.unwrap().reply,
        "pong: ping"
    );
    // ... and with an empty object.
    a.call::<messages::EchoPing>(serde_json::from_str("{}").unwrap())
        .await
        .unwrap();
    assert_eq!(
        a.next::<events::EchoPong>().await.unwrap().reply,
        "pong: ping"
    );
    b.assert_no_event::<events::EchoPong>(QUIET).await.unwrap();

    // A non-string message is invalid input.
    let r = raw_call(&a, "echo.ping", Some(json!({"message": 5}))).await;
    assert_eq!(r["type"], "__rpc_err");
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("message"),
        "{r}"
    );
}

#[tokio::test]
async fn greet_answers_hello() {
    let app = app();
    let a = user(&app, "A", "user").await;
    assert_eq!(
        a.call::<messages::Greet>(GreetIn::new("Ada"))
            .await
            .unwrap(),
        "Hello, Ada!"
    );
    let r = raw_call(&a, "greet", Some(json!({"name": "Bob"}))).await;
    assert_eq!(r["type"], "__rpc_res");
    assert_eq!(r["payload"], "Hello, Bob!");

    let r = raw_call(&a, "greet", Some(json!({}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("name"),
        "{r}"
    );
    let r = raw_call(&a, "greet", Some(json!({"name": 7}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("name"),
        "{r}"
    );
    assert_eq!(r["error"]["data"]["issues"][0]["path"], "name");
}

#[tokio::test]
async fn delayed_echo_waits_then_echoes() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let started = tokio::time::Instant::now();
    let out = a
        .call::<messages::DelayedEcho>("hi".to_owned())
        .await
        .unwrap();
    assert_eq!(out, "Echo: hi");
    assert!(started.elapsed() >= Duration::from_millis(50));
    // The input is a bare string.
    let r = raw_call(&a, "delayedEcho", Some(json!({"text": "hi"}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
}

#[tokio::test]
async fn trigger_broadcasts_message_to_everyone() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let b = user(&app, "B", "user").await;
    let c = user(&app, "C", "user").await;
    a.call::<messages::Trigger>("boom".to_owned())
        .await
        .unwrap();
    for who in [&a, &b, &c] {
        assert_eq!(who.next::<events::MessageEvent>().await.unwrap(), "boom");
        assert_eq!(raw_event(who, "message").await, json!("boom"));
    }
    let r = raw_call(&a, "trigger", Some(json!(1))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
}

// ---------------------------------------------------------------------------------
// Logging: `log` and the disconnect hook
// ---------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    async fn wait_for(&self, needle: &str) -> String {
        for _ in 0..200 {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("log never contained `{needle}`:\n{}", self.text());
    }
}

// A current-thread runtime: every task of the server runs on this thread, under the
// thread-local subscriber.
#[tokio::test(flavor = "current_thread")]
async fn log_is_logged_and_disconnect_logs_the_rooms() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = app();
    let a = user(&app, "Logger", "user").await;
    a.call::<messages::Log>("a line worth keeping".to_owned())
        .await
        .unwrap();
    logs.wait_for("a line worth keeping").await;
    // Fire-and-forget works the same.
    a.emit::<messages::Log>("second line".to_owned()).unwrap();
    logs.wait_for("second line").await;
    let r = raw_call(&a, "log", Some(json!({"not": "a string"}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");

    a.call::<messages::RoomsJoin>(RoomIn::new("zeta"))
        .await
        .unwrap();
    a.call::<messages::RoomsJoin>(RoomIn::new("alpha"))
        .await
        .unwrap();
    let id = a.client_id();
    a.close().await;
    let text = logs.wait_for("client disconnected").await;
    let line = text
        .lines()
        .find(|l| l.contains("client disconnected"))
        .unwrap();
    assert!(line.contains(id.as_str()), "{line}");
    assert!(line.contains(r#"["alpha", "zeta"]"#), "{line}");
}

// ---------------------------------------------------------------------------------
// system.announcement and notification.send (staff only)
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn system_announcement_validates_first_then_checks_the_role() {
    let app = app();
    let plain = user(&app, "Joe", "user").await;
    let moder = user(&app, "Mo", "moderator").await;
    let admin = user(&app, "Ad", "admin").await;

    // Bad input is INVALID_INPUT even for a plain user (validation before middleware).
    let r = raw_call(&plain, "system.announcement", Some(json!({}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("message"),
        "{r}"
    );

    // A plain user is FORBIDDEN and nobody hears anything.
    let e = plain
        .call::<messages::SystemAnnouncement>(AnnouncementIn::new("hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    for who in [&plain, &moder, &admin] {
        who.assert_no_event::<events::SystemAnnouncement>(QUIET)
            .await
            .unwrap();
    }

    // A moderator broadcasts to everyone, the sender included.
    moder
        .call::<messages::SystemAnnouncement>(AnnouncementIn::new("maintenance at 5"))
        .await
        .unwrap();
    for who in [&plain, &moder, &admin] {
        let raw = raw_event(who, "system.announcement").await;
        assert_eq!(keys(&raw), ["from", "message", "timestamp"]);
        let got = who.next::<events::SystemAnnouncement>().await.unwrap();
        assert_eq!(got.message, "maintenance at 5");
        assert_eq!(got.from, "Mo");
        assert_rfc3339(&got.timestamp);
    }

    // An admin too.
    admin
        .call::<messages::SystemAnnouncement>(AnnouncementIn::new("hello"))
        .await
        .unwrap();
    for who in [&plain, &moder, &admin] {
        assert_eq!(
            who.next::<events::SystemAnnouncement>().await.unwrap().from,
            "Ad"
        );
    }
}

#[tokio::test]
async fn notification_send_is_staff_only_and_follows_the_precedence() {
    let app = app();
    let admin = user(&app, "Ad", "admin").await;
    let b = user(&app, "B", "user").await;
    let c = user(&app, "C", "user").await;
    let all = [&admin, &b, &c];
    b.call::<messages::RoomsJoin>(RoomIn::new("r1"))
        .await
        .unwrap();

    // Plain users are FORBIDDEN.
    let mut n = NotificationSendIn::new(NotificationKind::Info, "x");
    n.broadcast = true;
    let e = b
        .call::<messages::NotificationSend>(n.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    for who in all {
        who.assert_no_event::<events::NotificationReceive>(QUIET)
            .await
            .unwrap();
    }

    // broadcast beats targets and rooms.
    let mut n = NotificationSendIn::new(NotificationKind::Warning, "to everyone");
    n.broadcast = true;
    n.targets = vec![c.client_id()];
    n.rooms = vec!["r1".into()];
    admin.call::<messages::NotificationSend>(n).await.unwrap();
    for who in all {
        let raw = raw_event(who, "notification.receive").await;
        assert_eq!(keys(&raw), ["message", "timestamp", "type"]);
        assert_eq!(raw["type"], "warning");
        let got = who.next::<events::NotificationReceive>().await.unwrap();
        assert_eq!(got.kind, NotificationKind::Warning);
        assert_eq!(got.message, "to everyone");
        assert_rfc3339(&got.timestamp);
    }

    // Non-empty targets beat rooms.
    let mut n = NotificationSendIn::new(NotificationKind::Error, "to c");
    n.targets = vec![c.client_id()];
    n.rooms = vec!["r1".into()];
    admin.call::<messages::NotificationSend>(n).await.unwrap();
    let got = c.next::<events::NotificationReceive>().await.unwrap();
    assert_eq!(
        (got.kind, got.message.as_str()),
        (NotificationKind::Error, "to c")
    );
    admin
        .assert_no_event::<events::NotificationReceive>(QUIET)
        .await
        .unwrap();
    b.assert_no_event::<events::NotificationReceive>(QUIET)
        .await
        .unwrap();

    // Empty targets fall through to rooms.
    let r = raw_call(
        &admin,
        "notification.send",
        Some(json!({"type": "info", "message": "to r1", "targets": [], "rooms": ["r1"]})),
    )
    .await;
    assert_eq!(r["type"], "__rpc_res");
    assert_eq!(
        b.next::<events::NotificationReceive>()
            .await
            .unwrap()
            .message,
        "to r1"
    );
    admin
        .assert_no_event::<events::NotificationReceive>(QUIET)
        .await
        .unwrap();
    c.assert_no_event::<events::NotificationReceive>(QUIET)
        .await
        .unwrap();

    // Nothing at all (broadcast false, empty lists): nobody.
    let r = raw_call(
        &admin,
        "notification.send",
        Some(json!({"type": "info", "message": "void", "targets": [], "rooms": [], "broadcast": false})),
    )
    .await;
    assert_eq!(r["type"], "__rpc_res");
    admin
        .call::<messages::NotificationSend>(NotificationSendIn::new(NotificationKind::Info, "void"))
        .await
        .unwrap();
    for who in all {
        who.assert_no_event::<events::NotificationReceive>(QUIET)
            .await
            .unwrap();
    }

    // A moderator may send too.
    let m = user(&app, "Mo", "moderator").await;
    let mut n = NotificationSendIn::new(NotificationKind::Info, "from mo");
    n.targets = vec![b.client_id()];
    m.call::<messages::NotificationSend>(n).await.unwrap();
    assert_eq!(
        b.next::<events::NotificationReceive>()
            .await
            .unwrap()
            .message,
        "from mo"
    );

    // The type is one of info|warning|error.
    let r = raw_call(
        &admin,
        "notification.send",
        Some(json!({"type": "fatal", "message": "x", "broadcast": true})),
    )
    .await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("type"),
        "{r}"
    );
    for who in all {
        who.assert_no_event::<events::NotificationReceive>(QUIET)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------
// chat.private, chat.room
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn chat_private_reaches_the_target_only() {
    let app = app();
    let a = user(&app, "Alice", "user").await;
    let b = user(&app, "Bob", "user").await;
    let c = user(&app, "Carol", "user").await;

    a.call::<messages::ChatPrivate>(PrivateMessageIn::new(b.client_id(), "psst"))
        .await
        .unwrap();
    let raw = raw_event(&b, "chat.private").await;
    assert_eq!(keys(&raw), ["from", "message", "timestamp"]);
    let got = b.next::<events::ChatPrivate>().await.unwrap();
    assert_eq!(got.from, "Alice");
    assert_eq!(got.message, "psst");
    assert_rfc3339(&got.timestamp);
    a.assert_no_event::<events::ChatPrivate>(QUIET)
        .await
        .unwrap();
    c.assert_no_event::<events::ChatPrivate>(QUIET)
        .await
        .unwrap();

    // An unknown id delivers nothing, and is not an error.
    a.call::<messages::ChatPrivate>(PrivateMessageIn::new("no-such-client", "hello?"))
        .await
        .unwrap();
    for who in [&a, &b, &c] {
        who.assert_no_event::<events::ChatPrivate>(QUIET)
            .await
            .unwrap();
    }

    // The wire name is targetUserId.
    let r = raw_call(
        &a,
        "chat.private",
        Some(json!({"targetUserId": c.client_id(), "message": "raw"})),
    )
    .await;
    assert_eq!(r["type"], "__rpc_res");
    assert_eq!(
        c.next::<events::ChatPrivate>().await.unwrap().message,
        "raw"
    );
    let r = raw_call(
        &a,
        "chat.private",
        Some(json!({"target_user_id": c.client_id(), "message": "raw"})),
    )
    .await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("targetUserId"),
        "{r}"
    );
}

#[tokio::test]
async fn chat_room_reaches_the_room_without_membership() {
    let app = app();
    let a = user(&app, "Alice", "user").await;
    let b = user(&app, "Bob", "user").await;
    let c = user(&app, "Carol", "user").await;
    let d = user(&app, "Dan", "user").await;
    b.call::<messages::RoomsJoin>(RoomIn::new("lounge"))
        .await
        .unwrap();
    c.call::<messages::RoomsJoin>(RoomIn::new("lounge"))
        .await
        .unwrap();

    // Alice is not a member and may still send.
    a.call::<messages::ChatRoom>(RoomChatIn::new("lounge", "hi all"))
        .await
        .unwrap();
    for who in [&b, &c] {
        let raw = raw_event(who, "chat.room").await;
        assert_eq!(keys(&raw), ["from", "message", "roomId", "timestamp"]);
        let got = who.next::<events::ChatRoom>().await.unwrap();
        assert_eq!(got.room_id, "lounge");
        assert_eq!(got.from, "Alice");
        assert_eq!(got.message, "hi all");
        assert_rfc3339(&got.timestamp);
    }
    a.assert_no_event::<events::ChatRoom>(QUIET).await.unwrap();
    d.assert_no_event::<events::ChatRoom>(QUIET).await.unwrap();

    // A member hears its own room message.
    b.call::<messages::ChatRoom>(RoomChatIn::new("lounge", "me too"))
        .await
        .unwrap();
    assert_eq!(b.next::<events::ChatRoom>().await.unwrap().from, "Bob");
    assert_eq!(c.next::<events::ChatRoom>().await.unwrap().from, "Bob");
    a.assert_no_event::<events::ChatRoom>(QUIET).await.unwrap();

    let r = raw_call(&a, "chat.room", Some(json!({"message": "where?"}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("roomId"),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------
// connection.getClientId
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn get_client_id_returns_the_id_and_sends_the_event_first() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let b = user(&app, "B", "user").await;
    let out = a.call::<messages::GetClientId>(Empty {}).await.unwrap();
    assert_eq!(out.client_id, a.client_id());
    let ev = a.next::<events::ConnectionClientId>().await.unwrap();
    assert_eq!(ev.client_id, a.client_id());
    b.assert_no_event::<events::ConnectionClientId>(QUIET)
        .await
        .unwrap();

    // Wire shape: `{clientId}` in both, and the event comes before the reply.
    let r = raw_call(&a, "connection.getClientId", None).await;
    assert_eq!(r["payload"], json!({"clientId": a.client_id().as_str()}));
    let frames = a.frames();
    let reply_at = frames
        .iter()
        .position(|f| f.contains(r["rpcId"].as_str().unwrap()))
        .unwrap();
    let event: Value = serde_json::from_str(&frames[reply_at - 1]).unwrap();
    assert_eq!(event["type"], "connection.clientId");
    assert_eq!(
        event["payload"],
        json!({"clientId": a.client_id().as_str()})
    );
}

// ---------------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn rooms_join_and_leave_notify_the_room_and_return_sorted_rooms() {
    let app = app();
    let a = user(&app, "Alice", "user").await;
    let b = user(&app, "Bob", "user").await;
    let c = user(&app, "Carol", "user").await;

    assert_eq!(
        a.call::<messages::RoomsJoin>(RoomIn::new("r1"))
            .await
            .unwrap(),
        ["r1"]
    );
    let raw = raw_event(&a, "rooms.joined").await;
    assert_eq!(raw, json!({"roomId": "r1", "userName": "Alice"}));
    assert_eq!(
        a.next::<events::RoomsJoined>().await.unwrap(),
        RoomMembership {
            room_id: "r1".into(),
            user_name: "Alice".into()
        }
    );

    // Bob joins: both members hear it, Carol does not.
    assert_eq!(
        b.call::<messages::RoomsJoin>(RoomIn::new("r1"))
            .await
            .unwrap(),
        ["r1"]
    );
    for who in [&a, &b] {
        assert_eq!(
            who.next::<events::RoomsJoined>().await.unwrap().user_name,
            "Bob"
        );
    }
    c.assert_no_event::<events::RoomsJoined>(QUIET)
        .await
        .unwrap();

    // Sorted rooms.
    assert_eq!(
        a.call::<messages::RoomsJoin>(RoomIn::new("a0"))
            .await
            .unwrap(),
        ["a0", "r1"]
    );
    assert_eq!(a.next::<events::RoomsJoined>().await.unwrap().room_id, "a0");
    assert_eq!(
        a.call::<messages::RoomsList>(Empty {}).await.unwrap(),
        ["a0", "r1"]
    );
    // rooms.list with no payload at all (as the v1 client sends it).
    let r = raw_call(&a, "rooms.list", None).await;
    assert_eq!(r["payload"], json!(["a0", "r1"]));

    // Joining again changes nothing and sends nothing.
    assert_eq!(
        a.call::<messages::RoomsJoin>(RoomIn::new("r1"))
            .await
            .unwrap(),
        ["a0", "r1"]
    );
    for who in [&a, &b, &c] {
        who.assert_no_event::<events::RoomsJoined>(QUIET)
            .await
            .unwrap();
    }

    // Bob leaves: both hear it (the leaver included), Carol does not.
    assert!(
        b.call::<messages::RoomsLeave>(RoomIn::new("r1"))
            .await
            .unwrap()
            .is_empty()
    );
    let raw = raw_event(&b, "rooms.left").await;
    assert_eq!(raw, json!({"roomId": "r1", "userName": "Bob"}));
    for who in [&a, &b] {
        let got = who.next::<events::RoomsLeft>().await.unwrap();
        assert_eq!(
            (got.room_id.as_str(), got.user_name.as_str()),
            ("r1", "Bob")
        );
    }
    c.assert_no_event::<events::RoomsLeft>(QUIET).await.unwrap();
    assert!(
        b.call::<messages::RoomsList>(Empty {})
            .await
            .unwrap()
            .is_empty()
    );

    // Leaving a room one is not in (any more, or ever) changes nothing, sends nothing.
    assert!(
        b.call::<messages::RoomsLeave>(RoomIn::new("r1"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.call::<messages::RoomsLeave>(RoomIn::new("a0"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    for who in [&a, &b, &c] {
        who.assert_no_event::<events::RoomsLeft>(QUIET)
            .await
            .unwrap();
    }
    // Bob no longer hears r1.
    a.call::<messages::RoomsMessage>(RoomMessageIn::new("r1", "still here?"))
        .await
        .unwrap();
    assert_eq!(
        a.next::<events::RoomsMessage>().await.unwrap().content,
        "still here?"
    );
    b.assert_no_event::<events::RoomsMessage>(QUIET)
        .await
        .unwrap();

    let r = raw_call(&a, "rooms.join", Some(json!({"room": "x"}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("roomId"),
        "{r}"
    );
}

#[tokio::test]
async fn rooms_message_is_for_members_only() {
    let app = app();
    let a = user(&app, "Alice", "user").await;
    let b = user(&app, "Bob", "user").await;
    let c = user(&app, "Carol", "user").await;
    a.call::<messages::RoomsJoin>(RoomIn::new("club"))
        .await
        .unwrap();
    b.call::<messages::RoomsJoin>(RoomIn::new("club"))
        .await
        .unwrap();

    // Carol is not a member: FORBIDDEN, nobody hears it.
    let e = c
        .call::<messages::RoomsMessage>(RoomMessageIn::new("club", "let me in"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    for who in [&a, &b, &c] {
        who.assert_no_event::<events::RoomsMessage>(QUIET)
            .await
            .unwrap();
    }

    // Alice is: both members hear it, Carol does not.
    a.call::<messages::RoomsMessage>(RoomMessageIn::new("club", "welcome"))
        .await
        .unwrap();
    for who in [&a, &b] {
        let raw = raw_event(who, "rooms.message").await;
        assert_eq!(keys(&raw), ["content", "roomId", "timestamp", "userName"]);
        let got = who.next::<events::RoomsMessage>().await.unwrap();
        assert_eq!(got.room_id, "club");
        assert_eq!(got.user_name, "Alice");
        assert_eq!(got.content, "welcome");
        assert_rfc3339(&got.timestamp);
    }
    c.assert_no_event::<events::RoomsMessage>(QUIET)
        .await
        .unwrap();

    // Without rpcId the refusal is an `__error` frame naming the message.
    c.emit::<messages::RoomsMessage>(RoomMessageIn::new("club", "again"))
        .unwrap();
    let err = c.next_error().await.unwrap();
    assert_eq!(err.code, "FORBIDDEN");
}

#[tokio::test]
async fn join_then_message_sent_back_to_back_stay_ordered() {
    let app = app();
    let a = user(&app, "Alice", "user").await;
    let b = user(&app, "Bob", "user").await;
    b.call::<messages::RoomsJoin>(RoomIn::new("fast"))
        .await
        .unwrap();
    b.next::<events::RoomsJoined>().await.unwrap();

    // Two frames written without waiting in between.
    a.send_raw(r#"{"type":"rooms.join","payload":{"roomId":"fast"},"rpcId":"j"}"#)
        .unwrap();
    a.send_raw(
        r#"{"type":"rooms.message","payload":{"roomId":"fast","content":"first!"},"rpcId":"m"}"#,
    )
    .unwrap();
    // Fire-and-forget variants too.
    a.emit::<messages::RoomsJoin>(RoomIn::new("fast2")).unwrap();
    a.emit::<messages::RoomsMessage>(RoomMessageIn::new("fast2", "second!"))
        .unwrap();

    let reply = a
        .wait_frame(|f| f.contains(r#""rpcId":"m""#))
        .await
        .unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["type"], "__rpc_res", "{reply}");
    assert_eq!(
        a.next::<events::RoomsMessage>().await.unwrap().content,
        "first!"
    );
    assert_eq!(
        a.next::<events::RoomsMessage>().await.unwrap().content,
        "second!"
    );
    assert!(
        !a.frames().iter().any(|f| f.contains("__error")),
        "{:?}",
        a.frames()
    );

    // Bob sees the join, then the message.
    let (first, _) = b.next_raw().await.unwrap();
    let (second, payload) = b.next_raw().await.unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("rooms.joined", "rooms.message")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap()["content"],
        "first!"
    );
}

// ---------------------------------------------------------------------------------
// Middleware: test.compute, test.adminOnly
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn test_compute_runs_both_middlewares_in_order() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let b = user(&app, "B", "user").await;

    a.call::<messages::TestCompute>(PingIn::new("hello"))
        .await
        .unwrap();
    let raw = raw_event(&a, "test.result").await;
    assert_eq!(raw, json!({"step1": "mw1-hello", "step2": "mw2-mw1-hello"}));
    assert_eq!(
        a.next::<events::TestResultEvent>().await.unwrap(),
        TestResult {
            step1: "mw1-hello".into(),
            step2: "mw2-mw1-hello".into()
        }
    );

    // The middlewares see the validated input, default filled in.
    let r = raw_call(&a, "test.compute", None).await;
    assert_eq!(r["type"], "__rpc_res");
    assert_eq!(
        a.next::<events::TestResultEvent>().await.unwrap(),
        TestResult {
            step1: "mw1-ping".into(),
            step2: "mw2-mw1-ping".into()
        }
    );
    b.assert_no_event::<events::TestResultEvent>(QUIET)
        .await
        .unwrap();

    let r = raw_call(&a, "test.compute", Some(json!({"message": ["x"]}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    a.assert_no_event::<events::TestResultEvent>(QUIET)
        .await
        .unwrap();
}

#[tokio::test]
async fn test_admin_only_is_for_admins() {
    let app = app();
    let admin = user(&app, "Ad", "admin").await;
    let moder = user(&app, "Mo", "moderator").await;
    let plain = user(&app, "Joe", "user").await;

    admin
        .call::<messages::TestAdminOnly>(Empty {})
        .await
        .unwrap();
    assert_eq!(raw_event(&admin, "test.admin").await, json!({"ok": true}));
    assert_eq!(
        admin.next::<events::TestAdmin>().await.unwrap(),
        AdminOk { ok: true }
    );
    for who in [&moder, &plain] {
        let e = rejected(
            who.call::<messages::TestAdminOnly>(Empty {})
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), "FORBIDDEN");
    }
    for who in [&admin, &moder, &plain] {
        who.assert_no_event::<events::TestAdmin>(QUIET)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------
// bench.*
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn bench_echo_returns_any_json_unchanged() {
    let app = app();
    let a = user(&app, "A", "user").await;
    for v in [
        json!({"a": [1, 2.5, -3], "b": {"c": null}, "s": "x"}),
        json!([1, "two", false]),
        json!("text"),
        json!(42),
        json!(18446744073709551615u64),
        json!(null),
        json!(true),
    ] {
        assert_eq!(a.call::<messages::BenchEcho>(v.clone()).await.unwrap(), v);
        let r = raw_call(&a, "bench.echo", Some(v.clone())).await;
        assert_eq!(r["payload"], v);
    }
    // No payload is `null`, and the reply keeps `"payload":null`.
    let r = raw_call(&a, "bench.echo", None).await;
    assert_eq!(r["type"], "__rpc_res");
    assert_eq!(r.get("payload"), Some(&Value::Null));
}

#[tokio::test]
async fn bench_fanout_sends_the_whole_input_to_the_room() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let b = user(&app, "B", "user").await;
    let c = user(&app, "C", "user").await;
    for who in [&a, &b] {
        who.call::<messages::RoomsJoin>(RoomIn::new("bench"))
            .await
            .unwrap();
    }

    let input = json!({"roomId": "bench", "seq": 7, "sentAt": 1.5, "blob": {"k": [1, null, "z"]}});
    let r = raw_call(&a, "bench.fanout", Some(input.clone())).await;
    assert_eq!(r["type"], "__rpc_res");
    for who in [&a, &b] {
        assert_eq!(raw_event(who, "bench.tick").await, input);
        let got = who.next::<events::BenchTick>().await.unwrap();
        assert_eq!(got.room_id, "bench");
        assert_eq!(got.extra["seq"], 7);
    }
    c.assert_no_event::<events::BenchTick>(QUIET).await.unwrap();

    // Typed, with nothing extra.
    a.call::<messages::BenchFanout>(Fanout::new("bench").with("n", 1))
        .await
        .unwrap();
    assert_eq!(
        b.next::<events::BenchTick>().await.unwrap(),
        Fanout::new("bench").with("n", 1)
    );

    let r = raw_call(&a, "bench.fanout", Some(json!({"seq": 1}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("roomId"),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------
// fail.*, slow.sleep
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn fail_panic_is_internal_and_everything_lives_on() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let b = user(&app, "B", "user").await;

    let e = rejected(a.call::<messages::FailPanic>(Empty {}).await.unwrap_err());
    assert_eq!(e.code(), "INTERNAL");
    // No panic text reaches the client.
    assert!(!e.message().contains("deliberate"), "{}", e.message());

    // Fire-and-forget: an `__error` frame naming the message.
    a.emit::<messages::FailPanic>(Empty {}).unwrap();
    let err = a.next_error().await.unwrap();
    assert_eq!(err.code, "INTERNAL");

    // The same connection and the others keep working.
    assert_eq!(
        a.call::<messages::Greet>(GreetIn::new("again"))
            .await
            .unwrap(),
        "Hello, again!"
    );
    assert_eq!(
        b.call::<messages::Greet>(GreetIn::new("b")).await.unwrap(),
        "Hello, b!"
    );
    a.call::<messages::Trigger>("alive".to_owned())
        .await
        .unwrap();
    assert_eq!(b.next::<events::MessageEvent>().await.unwrap(), "alive");
    let late = user(&app, "Late", "user").await;
    assert_eq!(
        late.call::<messages::Greet>(GreetIn::new("l"))
            .await
            .unwrap(),
        "Hello, l!"
    );
}

#[tokio::test]
async fn fail_error_is_a_teapot() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let e = rejected(a.call::<messages::FailError>(Empty {}).await.unwrap_err());
    assert_eq!(e.code(), "TEAPOT");
    assert_eq!(e.message(), "I'm a teapot");
    assert_eq!(e.data(), Some(&json!({"hint": "try coffee"})));

    let r = raw_call(&a, "fail.error", None).await;
    assert_eq!(
        r,
        json!({
            "type": "__rpc_err",
            "rpcId": r["rpcId"],
            "error": {"code": "TEAPOT", "message": "I'm a teapot", "data": {"hint": "try coffee"}}
        })
    );
}

#[tokio::test]
async fn slow_sleep_waits_and_refuses_over_30000() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        a.call::<messages::SlowSleep>(SleepIn { ms: 60 })
            .await
            .unwrap(),
        60
    );
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(
        a.call::<messages::SlowSleep>(SleepIn { ms: 0 })
            .await
            .unwrap(),
        0
    );

    let e = rejected(
        a.call::<messages::SlowSleep>(SleepIn { ms: 30_001 })
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), "INVALID_INPUT");
    assert!(e.message().contains("ms"), "{}", e.message());
    assert_eq!(e.data().unwrap()["issues"][0]["path"], "ms");

    let r = raw_call(&a, "slow.sleep", Some(json!({"ms": -1}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("ms"),
        "{r}"
    );
    let r = raw_call(&a, "slow.sleep", Some(json!({}))).await;
    assert_eq!(r["error"]["code"], "INVALID_INPUT");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("ms"),
        "{r}"
    );
}

#[tokio::test]
async fn slow_sleep_does_not_delay_a_later_greet() {
    let app = app();
    let a = user(&app, "A", "user").await;
    a.send_raw(r#"{"type":"slow.sleep","payload":{"ms":600},"rpcId":"slow"}"#)
        .unwrap();
    let greeting = a
        .call::<messages::Greet>(GreetIn::new("quick"))
        .await
        .unwrap();
    assert_eq!(greeting, "Hello, quick!");
    // The greeting came back while the sleep was still running.
    assert!(
        !a.frames().iter().any(|f| f.contains(r#""rpcId":"slow""#)),
        "slow.sleep answered before greet"
    );
    let slow = a
        .wait_frame(|f| f.contains(r#""rpcId":"slow""#))
        .await
        .unwrap();
    let slow: Value = serde_json::from_str(&slow).unwrap();
    assert_eq!(slow["payload"], 600);
}

// ---------------------------------------------------------------------------------
// Protocol-level rows: unit replies, unknown types, error shapes
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn unit_output_replies_have_no_payload_key() {
    let app = app();
    let admin = user(&app, "Ad", "admin").await;
    let other = user(&app, "O", "user").await;
    admin
        .call::<messages::RoomsJoin>(RoomIn::new("u"))
        .await
        .unwrap();
    let unit_calls: Vec<(&str, Value)> = vec![
        ("echo.ping", json!({})),
        ("log", json!("line")),
        ("trigger", json!("t")),
        ("system.announcement", json!({"message": "m"})),
        (
            "chat.private",
            json!({"targetUserId": other.client_id(), "message": "m"}),
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
        let r = raw_call(&admin, kind, Some(payload)).await;
        assert_eq!(keys(&r), ["rpcId", "type"], "{kind}: {r}");
        assert_eq!(r["type"], "__rpc_res", "{kind}");
    }
    // Non-unit outputs do carry one.
    let r = raw_call(&admin, "rooms.list", Some(json!({}))).await;
    assert_eq!(keys(&r), ["payload", "rpcId", "type"]);
    assert_eq!(r["payload"], json!(["u"]));
}

/// A message the server does not know.
enum NoSuchMessage {}
impl Message for NoSuchMessage {
    const NAME: &'static str = "no.such.message";
    type Input = Empty;
    type Output = ();
}

#[tokio::test]
async fn unknown_type_is_not_found() {
    let app = app();
    let a = user(&app, "A", "user").await;
    let e = rejected(a.call::<NoSuchMessage>(Empty {}).await.unwrap_err());
    assert_eq!(e.code(), "NOT_FOUND");
    assert!(e.message().contains("no.such.message"), "{}", e.message());

    a.emit::<NoSuchMessage>(Empty {}).unwrap();
    let err = a.next_error().await.unwrap();
    assert_eq!(err.code, "NOT_FOUND");
    let frame = a.wait_frame(|f| f.contains("__error")).await.unwrap();
    let frame: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(frame["error"]["type"], "no.such.message");

    // The connection is still fine.
    assert_eq!(
        a.call::<messages::Greet>(GreetIn::new("x")).await.unwrap(),
        "Hello, x!"
    );
}

#[tokio::test]
async fn every_message_of_the_table_is_routed() {
    let names: Vec<&str> = {
        let mut n: Vec<&str> = reference::router().names().collect();
        n.sort_unstable();
        n
    };
    let mut expected = vec![
        "echo.ping",
        "greet",
        "log",
        "delayedEcho",
        "trigger",
        "system.announcement",
        "chat.private",
        "chat.room",
        "notification.send",
        "connection.getClientId",
        "rooms.join",
        "rooms.leave",
        "rooms.message",
        "rooms.list",
        "test.compute",
        "test.adminOnly",
        "bench.echo",
        "bench.fanout",
        "fail.panic",
        "fail.error",
        "slow.sleep",
        // Cluster-wide queries and disconnect by id (zocket-redis, Hub API).
        "rooms.members",
        "connection.isConnected",
        "admin.disconnect",
    ];
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[test]
fn contract_types_use_the_documented_wire_names() {
    let notif = serde_json::to_value(NotificationSendIn {
        kind: NotificationKind::Warning,
        message: "m".into(),
        targets: vec![ClientId::from("c1")],
        rooms: vec!["r".into()],
        broadcast: true,
    })
    .unwrap();
    assert_eq!(
        notif,
        json!({"type": "warning", "message": "m", "targets": ["c1"], "rooms": ["r"], "broadcast": true})
    );
    // Optional fields are optional on the way in.
    let n: NotificationSendIn =
        serde_json::from_value(json!({"type": "error", "message": "m"})).unwrap();
    assert_eq!(n, NotificationSendIn::new(NotificationKind::Error, "m"));
    assert_eq!(
        serde_json::to_value(PrivateMessageIn::new("id", "m")).unwrap(),
        json!({"targetUserId": "id", "message": "m"})
    );
    assert_eq!(
        serde_json::to_value(ClientIdInfo {
            client_id: ClientId::from("x")
        })
        .unwrap(),
        json!({"clientId": "x"})
    );
    assert_eq!(
        serde_json::from_value::<PingIn>(json!({})).unwrap(),
        PingIn::new("ping")
    );
    let f: Fanout = serde_json::from_value(json!({"roomId": "r", "a": 1, "b": [true]})).unwrap();
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        json!({"roomId": "r", "a": 1, "b": [true]})
    );
    assert!(<messages::SlowSleep as Message>::validate(&SleepIn { ms: 30_000 }).is_ok());
    assert_eq!(
        <messages::SlowSleep as Message>::validate(&SleepIn { ms: 30_001 })
            .unwrap_err()
            .code(),
        "INVALID_INPUT"
    );
}
