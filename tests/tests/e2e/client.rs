//! The native typed client (`zocket-client`) against the reference app over real
//! sockets, with both adapters. (The `client-demo` binary's test is in
//! `examples/client-demo/tests/demo.rs`.)

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use serde_json::json;
use zocket_client::{Client, ClientError, ConnectionState, Reconnect, Reject};
use zocket_core::Server;
use zocket_examples::reference::contract::events::{
    BenchTick, ChatPrivate as PrivateEvent, ChatRoom as RoomChatEvent, ConnectionClientId,
    EchoPong, MessageEvent, NotificationReceive, RoomsJoined, RoomsLeft,
    RoomsMessage as RoomMessageEvent, SystemAnnouncement as AnnouncementEvent, TestAdmin,
    TestResultEvent,
};
use zocket_examples::reference::contract::messages::*;
use zocket_examples::reference::contract::*;
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Adapter, AppServer, WAIT};

/// The reference app on a real socket in this process.
async fn start(adapter: Adapter) -> AppServer<RefCtx> {
    AppServer::start(adapter, Server::new(reference::router())).await
}

async fn client(url: &str, headers: &[(&str, &str)]) -> Client {
    // Generous: with RUST_BACKTRACE set, `fail.panic` prints a symbolised backtrace in
    // this process, which takes seconds on a loaded machine (a bound, not a timing test).
    let mut b = Client::builder(url).rpc_timeout(WAIT * 2);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.connect().await.expect("connects")
}

async fn next<T>(s: &mut zocket_client::Subscription<T>) -> T
where
    zocket_client::Subscription<T>: futures::Stream<Item = Result<T, ClientError>> + Unpin,
{
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
        .expect("the event decodes")
}

async fn every_incoming_message(adapter: Adapter) {
    let server = start(adapter).await;
    let url = server.url();
    let ada = client(&url, &[("userName", "Ada"), ("userRole", "admin")]).await;
    let bob = client(&url, &[("userName", "Bob")]).await;
    let mo = client(&url, &[("userName", "Mo"), ("userRole", "moderator")]).await;

    // echo.ping (default and given message)
    let mut pongs = ada.subscribe::<EchoPong>();
    ada.call::<EchoPing>(PingIn::default()).await.unwrap();
    assert_eq!(next(&mut pongs).await.reply, "pong: ping");
    ada.call::<EchoPing>(PingIn::new("hi")).await.unwrap();
    assert_eq!(next(&mut pongs).await.reply, "pong: hi");

    assert_eq!(
        ada.call::<Greet>(GreetIn::new("Ada")).await.unwrap(),
        "Hello, Ada!"
    );
    ada.call::<Log>("a log line".into()).await.unwrap();
    assert_eq!(
        ada.call::<DelayedEcho>("x".into()).await.unwrap(),
        "Echo: x"
    );

    // trigger broadcasts `message`
    let mut bob_msgs = bob.subscribe::<MessageEvent>();
    ada.call::<Trigger>("to all".into()).await.unwrap();
    assert_eq!(next(&mut bob_msgs).await, "to all");

    // system.announcement: moderator yes, user FORBIDDEN, bad input INVALID_INPUT
    let mut ann = bob.subscribe::<AnnouncementEvent>();
    mo.call::<SystemAnnouncement>(AnnouncementIn::new("hello all"))
        .await
        .unwrap();
    let a = next(&mut ann).await;
    assert_eq!((a.message.as_str(), a.from.as_str()), ("hello all", "Mo"));
    let e = bob
        .call::<SystemAnnouncement>(AnnouncementIn::new("no"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    let e = bob
        .call_raw("system.announcement", json!({"message": 5}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("INVALID_INPUT"));

    // chat.private to one id
    let bob_id = bob.call::<GetClientId>(Empty {}).await.unwrap().client_id;
    assert_eq!(Some(bob_id.clone()), bob.client_id());
    let mut privs = bob.subscribe::<PrivateEvent>();
    ada.call::<ChatPrivate>(PrivateMessageIn::new(bob_id.clone(), "psst"))
        .await
        .unwrap();
    let p = next(&mut privs).await;
    assert_eq!((p.from.as_str(), p.message.as_str()), ("Ada", "psst"));

    // connection.getClientId also sends the event
    let mut ids = ada.subscribe::<ConnectionClientId>();
    let info = ada.call::<GetClientId>(Empty {}).await.unwrap();
    assert_eq!(next(&mut ids).await, info);

    // rooms
    let mut joined = bob.subscribe::<RoomsJoined>();
    assert_eq!(
        bob.call::<RoomsJoin>(RoomIn::new("r1")).await.unwrap(),
        ["r1"]
    );
    assert_eq!(next(&mut joined).await.user_name, "Bob");
    assert_eq!(
        ada.call::<RoomsJoin>(RoomIn::new("r1")).await.unwrap(),
        ["r1"]
    );
    assert_eq!(next(&mut joined).await.user_name, "Ada");
    assert_eq!(
        ada.call::<RoomsJoin>(RoomIn::new("a0")).await.unwrap(),
        ["a0", "r1"]
    );
    assert_eq!(ada.call::<RoomsList>(Empty {}).await.unwrap(), ["a0", "r1"]);
    let mut room_msgs = bob.subscribe::<RoomMessageEvent>();
    ada.call::<RoomsMessage>(RoomMessageIn::new("r1", "hello room"))
        .await
        .unwrap();
    let m = next(&mut room_msgs).await;
    assert_eq!(
        (m.room_id.as_str(), m.user_name.as_str(), m.content.as_str()),
        ("r1", "Ada", "hello room")
    );
    let e = mo
        .call::<RoomsMessage>(RoomMessageIn::new("r1", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    let mut chat_room = bob.subscribe::<RoomChatEvent>();
    mo.call::<ChatRoom>(RoomChatIn::new("r1", "from outside"))
        .await
        .unwrap();
    let c = next(&mut chat_room).await;
    assert_eq!(
        (c.from.as_str(), c.message.as_str()),
        ("Mo", "from outside")
    );
    let mut left = bob.subscribe::<RoomsLeft>();
    assert_eq!(
        ada.call::<RoomsLeave>(RoomIn::new("r1")).await.unwrap(),
        ["a0"]
    );
    assert_eq!(next(&mut left).await.user_name, "Ada");

    // notification.send: user FORBIDDEN, admin to targets
    let e = bob
        .call::<NotificationSend>(NotificationSendIn::new(NotificationKind::Info, "n"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("FORBIDDEN"));
    let mut notes = bob.subscribe::<NotificationReceive>();
    let mut to_bob = NotificationSendIn::new(NotificationKind::Warning, "careful");
    to_bob.targets = vec![bob_id.clone()];
    ada.call::<NotificationSend>(to_bob).await.unwrap();
    let n = next(&mut notes).await;
    assert_eq!(
        (n.kind, n.message.as_str()),
        (NotificationKind::Warning, "careful")
    );

    // test.compute and test.adminOnly
    let mut results = ada.subscribe::<TestResultEvent>();
    ada.call::<TestCompute>(PingIn::new("x")).await.unwrap();
    let r = next(&mut results).await;
    assert_eq!((r.step1.as_str(), r.step2.as_str()), ("mw1-x", "mw2-mw1-x"));
    let mut admin_ok = ada.subscribe::<TestAdmin>();
    ada.call::<TestAdminOnly>(Empty {}).await.unwrap();
    assert!(next(&mut admin_ok).await.ok);
    assert_eq!(
        mo.call::<TestAdminOnly>(Empty {}).await.unwrap_err().code(),
        Some("FORBIDDEN")
    );

    // bench
    let v = json!({"a": [1, 2, {"b": null}], "s": "é"});
    assert_eq!(ada.call::<BenchEcho>(v.clone()).await.unwrap(), v);
    let mut ticks = bob.subscribe::<BenchTick>();
    ada.call::<RoomsJoin>(RoomIn::new("r1")).await.unwrap();
    ada.call::<BenchFanout>(Fanout::new("r1").with("seq", 7))
        .await
        .unwrap();
    let t = next(&mut ticks).await;
    assert_eq!(
        (t.room_id.as_str(), t.extra.get("seq")),
        ("r1", Some(&json!(7)))
    );

    // failures are typed
    let e = ada.call::<FailPanic>(Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Some("INTERNAL"), "{e:?}");
    // The client gets the very `Reject` the handler returned.
    assert_eq!(
        ada.call::<FailError>(Empty {})
            .await
            .unwrap_err()
            .rejection(),
        Some(&Reject::new("TEAPOT", "I'm a teapot").with_data(json!({"hint": "try coffee"})))
    );
    assert_eq!(ada.call::<SlowSleep>(SleepIn { ms: 10 }).await.unwrap(), 10);
    let e = ada
        .call::<SlowSleep>(SleepIn { ms: 30_001 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("INVALID_INPUT"));
    // after a panic the connection and the server live on
    assert_eq!(
        bob.call::<Greet>(GreetIn::new("still")).await.unwrap(),
        "Hello, still!"
    );
}

async fn rpc_timeout_and_concurrency(adapter: Adapter) {
    let server = start(adapter).await;
    let c = client(&server.url(), &[]).await;
    let e = c
        .call_with_timeout::<SlowSleep>(SleepIn { ms: 2_000 }, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    // The connection is still usable afterwards.
    assert_eq!(
        c.call::<Greet>(GreetIn::new("x")).await.unwrap(),
        "Hello, x!"
    );

    let c = Arc::new(c);
    let calls = (0..1000).map(|i| {
        let c = c.clone();
        async move {
            (
                i,
                c.call::<BenchEcho>(json!({ "i": i, "pad": "x".repeat(i % 50) }))
                    .await,
            )
        }
    });
    for (i, r) in join_all(calls).await {
        let v = r.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        assert_eq!(v["i"], json!(i), "reply of call {i} crossed with another");
        assert_eq!(v["pad"].as_str().map(str::len), Some(i % 50));
    }
}

async fn reconnects_after_restart_and_rejoins(adapter: Adapter) {
    let mut server = start(adapter).await;
    let addr = server.addr;
    let url = server.url();
    let listener = Client::builder(&url)
        .header("userName", "Listener")
        .rpc_timeout(Duration::from_secs(2))
        .reconnect(
            Reconnect::default()
                .initial_delay(Duration::from_millis(50))
                .max_delay(Duration::from_millis(300)),
        )
        .on_connect(|c: Client| async move {
            c.call::<RoomsJoin>(RoomIn::new("lobby")).await?;
            Ok::<(), ClientError>(())
        })
        .connect()
        .await
        .unwrap();
    let mut msgs = listener.subscribe::<RoomMessageEvent>();
    let first_id = listener.client_id();
    let speaker = client(&url, &[("userName", "Speaker")]).await;
    speaker
        .call::<RoomsJoin>(RoomIn::new("lobby"))
        .await
        .unwrap();
    speaker
        .call::<RoomsMessage>(RoomMessageIn::new("lobby", "before"))
        .await
        .unwrap();
    assert_eq!(next(&mut msgs).await.content, "before");

    let mut state = listener.state_watch();
    server.shutdown().await;
    tokio::time::timeout(
        Duration::from_secs(5),
        state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })),
    )
    .await
    .expect("the client notices the dead server")
    .unwrap();
    // A call made while the server is down never hangs: it either fails fast or is
    // answered after the reconnect, within its timeout.
    let while_down = {
        let l = listener.clone();
        tokio::spawn(async move { l.call::<Greet>(GreetIn::new("down")).await })
    };
    // A reconnect attempt fails while the server is down, then it comes back.
    tokio::time::timeout(
        Duration::from_secs(5),
        state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { attempt } if *attempt >= 2)),
    )
    .await
    .expect("a reconnect attempt fails while the server is down")
    .unwrap();
    let _server = AppServer::start_at(adapter, Server::new(reference::router()), addr).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| *s == ConnectionState::Open),
    )
    .await
    .expect("the client reconnects")
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), while_down)
        .await
        .expect("the call resolves")
        .unwrap()
    {
        Ok(hello) => assert_eq!(hello, "Hello, down!"),
        Err(e) => assert!(e.is_timeout() || e.is_connection_error(), "{e:?}"),
    }
    assert_ne!(
        listener.client_id(),
        first_id,
        "a new connection has a new id"
    );
    // The hook re-joined `lobby`: room events flow again.
    let speaker = client(&format!("ws://{addr}/"), &[("userName", "Speaker")]).await;
    speaker
        .call::<RoomsJoin>(RoomIn::new("lobby"))
        .await
        .unwrap();
    assert_eq!(
        listener.call::<RoomsList>(Empty {}).await.unwrap(),
        ["lobby"]
    );
    speaker
        .call::<RoomsMessage>(RoomMessageIn::new("lobby", "after"))
        .await
        .unwrap();
    assert_eq!(next(&mut msgs).await.content, "after");
}

async fn handshake_rejections_are_typed(adapter: Adapter) {
    let server = start(adapter).await;
    let url = server.url();
    let e = Client::builder(&url)
        .header("token", "bad")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.rejection().map(|r| r.status), Some(401), "{e:?}");
    let e = Client::builder(&url)
        .header("userRole", "king")
        .connect()
        .await
        .unwrap_err();
    let r = e.rejection().expect("a rejection");
    assert_eq!(r.status, 400);
    assert_eq!(r.issues[0].path, "userRole");
}

macro_rules! both_adapters {
    ($($name:ident),* $(,)?) => {
        mod warp {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(zocket_tests::support::Adapter::Warp).await })*
        }
        mod hyper {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(zocket_tests::support::Adapter::Hyper).await })*
        }
    };
}

both_adapters!(
    every_incoming_message,
    rpc_timeout_and_concurrency,
    reconnects_after_restart_and_rejoins,
    handshake_rejections_are_typed,
);
