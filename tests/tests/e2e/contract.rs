//! The reference app's contract and typed router, in-process (virtual clients of
//! `zocket_core::testing`): the documented wire names of the contract types, every
//! message of REFERENCE_APP.md routed, and the log lines of `log` and the disconnect
//! hook. (Every row's behaviour is a scenario of `messages.rs`, `rooms.rs`,
//! `errors.rs`... run in-process and on both adapters.)

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use zocket_core::testing::{TestClient, TestServer};
use zocket_core::{ClientId, Message};
use zocket_examples::reference::contract::{messages, *};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::logs;

fn app() -> TestServer<RefCtx> {
    TestServer::new(reference::router())
}

async fn user(app: &TestServer<RefCtx>, name: &str, role: &str) -> TestClient {
    app.connect([("userName", name), ("userRole", role)])
        .await
        .unwrap_or_else(|e| panic!("{name} ({role}) could not connect: {e}"))
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

// A current-thread runtime: every task of the server runs on this thread, under the
// thread-local subscriber.
#[tokio::test(flavor = "current_thread")]
async fn log_is_logged_and_disconnect_logs_the_rooms() {
    let (logs, _guard) = logs::capture("info");

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
