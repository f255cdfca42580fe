//! The chat router, driven in-process by virtual clients (no sockets).

use std::sync::Arc;
use std::time::Duration;

use zocket_core::testing::{TestClient, TestError, TestServer};
use zocket_core::{ClientId, HandshakeError};
use zocket_example_chat::{
    self as chat, ChatState, ChatUser, Empty, Join, Leave, ListMembers, Me, Member, MembersChanged,
    MessagePosted, Post, PresenceChanged, PresenceKind, Private, PrivateIn, PrivateReceived,
    RoomIn, SendIn, SetTyping, TypingChanged, TypingIn,
};

async fn user(app: &TestServer<ChatUser>, name: &str) -> TestClient {
    app.connect([("userName", name)]).await.unwrap()
}

/// Three users: Ada and Bob in `lobby`, Carol in `garden`.
async fn ada_and_bob_in_the_lobby_carol_in_the_garden(
    app: &TestServer<ChatUser>,
) -> (TestClient, TestClient, TestClient) {
    let ada = user(app, "Ada").await;
    let bob = user(app, "Bob").await;
    let carol = user(app, "Carol").await;
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    carol.call::<Join>(RoomIn::new("garden")).await.unwrap();
    (ada, bob, carol)
}

fn send(room: &str, text: &str) -> SendIn {
    SendIn {
        room: room.into(),
        text: text.into(),
    }
}

/// `from` sends a private message to the client with id `to`; the call must succeed.
async fn private(from: &TestClient, to: ClientId, text: &str) {
    from.call::<Private>(PrivateIn {
        to,
        text: text.into(),
    })
    .await
    .unwrap();
}

fn names(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.user_name.as_str()).collect()
}

fn rejected(err: TestError) -> zocket_core::Reject {
    match err {
        TestError::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The `path` of the first issue in an INVALID_INPUT rejection.
fn issue_path(r: &zocket_core::Reject) -> String {
    r.data()
        .and_then(|d| d["issues"][0]["path"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn user_name_comes_from_the_handshake_and_defaults_to_guest() {
    let app = TestServer::new(chat::router());
    let ada = user(&app, "  Ada Lovelace ").await;
    let me = ada.call::<Me>(Empty {}).await.unwrap();
    assert_eq!(me.user_name, "Ada Lovelace");
    assert_eq!(me.client_id, ada.client_id());

    let anon = app.connect(Vec::<(String, String)>::new()).await.unwrap();
    assert_eq!(anon.call::<Me>(Empty {}).await.unwrap().user_name, "guest");
}

#[tokio::test]
async fn bad_user_names_are_refused_with_400_naming_the_parameter() {
    let app = TestServer::new(chat::router());
    for bad in ["", "   ", &"x".repeat(33), "a\u{7}b"] {
        let err = app.connect([("userName", bad)]).await.unwrap_err();
        assert_eq!(err.status(), 400, "{bad:?}");
        match &err {
            HandshakeError::InvalidHeaders { issues, .. } => {
                assert_eq!(issues[0].path, "userName", "{bad:?}")
            }
            other => panic!("expected InvalidHeaders for {bad:?}, got {other:?}"),
        }
        assert!(err.body().contains("INVALID_HEADERS"));
    }
    // 32 characters (not bytes) is fine.
    let ok = user(&app, &"é".repeat(32)).await;
    assert_eq!(
        ok.call::<Me>(Empty {})
            .await
            .unwrap()
            .user_name
            .chars()
            .count(),
        32
    );
}

#[tokio::test]
async fn two_users_in_a_room_see_each_others_messages_and_presence() {
    let app = TestServer::new(chat::router());
    let ada = user(&app, "Ada").await;
    let bob = user(&app, "Bob").await;

    let joined = ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    assert_eq!(joined.room, "lobby");
    assert_eq!(names(&joined.members), ["Ada"]);
    let p = ada.next::<PresenceChanged>().await.unwrap();
    assert_eq!(
        (p.member.user_name.as_str(), p.kind),
        ("Ada", PresenceKind::Joined)
    );

    let joined = bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    assert_eq!(names(&joined.members), ["Ada", "Bob"]);

    // Ada is told Bob joined, and gets the new member list.
    let p = ada.next::<PresenceChanged>().await.unwrap();
    assert_eq!(p.room, "lobby");
    assert_eq!(p.kind, PresenceKind::Joined);
    assert_eq!(p.member.user_name, "Bob");
    assert_eq!(p.member.client_id, bob.client_id());
    let first = ada.next::<MembersChanged>().await.unwrap();
    assert_eq!(names(&first.members), ["Ada"]);
    let m = ada.next::<MembersChanged>().await.unwrap();
    assert_eq!(names(&m.members), ["Ada", "Bob"]);

    ada.call::<Post>(send("lobby", "hello Bob")).await.unwrap();
    for who in [&bob, &ada] {
        let msg = who.next::<MessagePosted>().await.unwrap();
        assert_eq!(msg.room, "lobby");
        assert_eq!(msg.text, "hello Bob");
        assert_eq!(msg.from.user_name, "Ada");
        assert_eq!(msg.from.client_id, ada.client_id());
        // RFC 3339 in UTC, e.g. 2025-01-31T12:34:56.789Z
        let ts = msg.timestamp.as_bytes();
        assert!(
            ts.len() >= 20
                && ts[4] == b'-'
                && ts[10] == b'T'
                && ts[13] == b':'
                && msg.timestamp.ends_with('Z'),
            "timestamp is RFC 3339: {}",
            msg.timestamp
        );
    }
}

#[tokio::test]
async fn rooms_are_isolated() {
    let app = TestServer::new(chat::router());
    let (ada, bob, carol) = ada_and_bob_in_the_lobby_carol_in_the_garden(&app).await;

    ada.call::<Post>(send("lobby", "for the lobby"))
        .await
        .unwrap();
    carol
        .call::<Post>(send("garden", "for the garden"))
        .await
        .unwrap();

    // Carol's first room message is her own garden one: the lobby message (queued
    // before it, had it been sent to her) never reached her.
    let got = carol.next::<MessagePosted>().await.unwrap();
    assert_eq!(
        (got.room.as_str(), got.text.as_str()),
        ("garden", "for the garden")
    );
    // And Bob only sees the lobby.
    assert_eq!(
        bob.next::<MessagePosted>().await.unwrap().text,
        "for the lobby"
    );
    bob.assert_no_event::<MessagePosted>(Duration::from_millis(100))
        .await
        .unwrap();
    // Carol never heard about the lobby's members either.
    let presence: Vec<_> = carol
        .drain_events()
        .into_iter()
        .filter(|(_, payload)| payload.contains("lobby"))
        .collect();
    assert!(presence.is_empty(), "{presence:?}");

    // Member lists are per room.
    let lobby = carol
        .call::<ListMembers>(RoomIn::new("lobby"))
        .await
        .unwrap();
    assert_eq!(names(&lobby.members), ["Ada", "Bob"]);
    let garden = ada
        .call::<ListMembers>(RoomIn::new("garden"))
        .await
        .unwrap();
    assert_eq!(names(&garden.members), ["Carol"]);
    let empty = ada
        .call::<ListMembers>(RoomIn::new("nowhere"))
        .await
        .unwrap();
    assert!(empty.members.is_empty());
}

#[tokio::test]
async fn posting_or_typing_outside_ones_rooms_is_forbidden() {
    let app = TestServer::new(chat::router());
    let ada = user(&app, "Ada").await;
    let bob = user(&app, "Bob").await;
    bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();

    let err = rejected(
        ada.call::<Post>(send("lobby", "let me in"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), "FORBIDDEN");
    assert!(err.message().contains("lobby"), "{}", err.message());
    let err = rejected(
        ada.call::<SetTyping>(TypingIn {
            room: "lobby".into(),
            typing: true,
        })
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code(), "FORBIDDEN");

    // Nothing reached the room.
    bob.assert_no_event::<MessagePosted>(Duration::from_millis(100))
        .await
        .unwrap();
    bob.assert_no_event::<TypingChanged>(Duration::from_millis(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn private_messages_reach_the_target_and_echo_to_the_sender_only() {
    let app = TestServer::new(chat::router());
    let ada = user(&app, "Ada").await;
    let bob = user(&app, "Bob").await;
    let carol = user(&app, "Carol").await;
    for c in [&ada, &bob, &carol] {
        c.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    }

    private(&ada, bob.client_id(), "psst, Bob").await;
    for who in [&bob, &ada] {
        let pm = who.next::<PrivateReceived>().await.unwrap();
        assert_eq!(pm.text, "psst, Bob");
        assert_eq!(pm.from.user_name, "Ada");
        assert_eq!(pm.from.client_id, ada.client_id());
        assert_eq!(pm.to.user_name, "Bob");
        assert_eq!(pm.to.client_id, bob.client_id());
    }

    // Carol's first private message is the one addressed to her.
    private(&bob, carol.client_id(), "hi Carol").await;
    let pm = carol.next::<PrivateReceived>().await.unwrap();
    assert_eq!(
        (pm.from.user_name.as_str(), pm.text.as_str()),
        ("Bob", "hi Carol")
    );
    // Ada got nothing of it.
    ada.assert_no_event::<PrivateReceived>(Duration::from_millis(100))
        .await
        .unwrap();

    // A private message does not appear as a room message.
    carol
        .assert_no_event::<MessagePosted>(Duration::from_millis(10))
        .await
        .unwrap();

    // To oneself: delivered once.
    private(&ada, ada.client_id(), "note to self").await;
    assert_eq!(
        ada.next::<PrivateReceived>().await.unwrap().text,
        "note to self"
    );
    ada.assert_no_event::<PrivateReceived>(Duration::from_millis(100))
        .await
        .unwrap();
}

#[tokio::test]
async fn private_message_to_an_unknown_client_is_refused() {
    let state = Arc::new(ChatState::default());
    let app = TestServer::with_state(chat::router(), state.clone());
    let ada = user(&app, "Ada").await;
    let err = rejected(
        ada.call::<Private>(PrivateIn {
            to: "0123456789abcdef0123456789abcdef".into(),
            text: "anyone?".into(),
        })
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code(), "UNKNOWN_USER");

    // A user who left is unknown again.
    let bob = user(&app, "Bob").await;
    let bob_id = bob.client_id();
    private(&ada, bob_id.clone(), "still there?").await;
    bob.close().await;
    bob.closed().await.unwrap();
    // Bob's disconnect hook takes him out of the directory (an event wait: the server's
    // close of Bob's connection is recorded after the hook).
    tokio::time::timeout(
        Duration::from_secs(10),
        app.server().wait_until(|_| state.user_count() == 1),
    )
    .await
    .expect("Bob leaves the directory");
    let err = ada
        .call::<Private>(PrivateIn {
            to: bob_id.clone(),
            text: "gone?".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(rejected(err).code(), "UNKNOWN_USER");
}

/// The directory is the application state, filled by the connect hook: a user is
/// reachable before sending anything (it used to be listed on its first message).
#[tokio::test]
async fn a_private_message_reaches_a_user_who_has_not_spoken_yet() {
    let state = Arc::new(ChatState::default());
    let app = TestServer::with_state(chat::router(), state.clone());
    let ada = user(&app, "Ada").await;
    let bob = user(&app, "Bob").await;
    assert_eq!(state.user_count(), 2);
    private(&ada, bob.client_id(), "are you there?").await;
    let got = bob.next::<PrivateReceived>().await.unwrap();
    assert_eq!(
        (got.from.user_name.as_str(), got.text.as_str()),
        ("Ada", "are you there?")
    );
    assert!(
        bob.frames().iter().all(|f| !f.contains("rpcId")),
        "bob sent nothing"
    );
}

#[tokio::test]
async fn typing_goes_to_the_room_with_the_typists_identity() {
    let app = TestServer::new(chat::router());
    let (ada, bob, carol) = ada_and_bob_in_the_lobby_carol_in_the_garden(&app).await;

    // Fire-and-forget, as the page sends it; `typing` defaults to true.
    ada.send_raw(r#"{"type":"chat.typing","payload":{"room":"lobby"}}"#)
        .unwrap();
    let t = bob.next::<TypingChanged>().await.unwrap();
    assert_eq!(t.room, "lobby");
    assert!(t.typing);
    assert_eq!(t.from.user_name, "Ada");
    assert_eq!(t.from.client_id, ada.client_id());
    // The typist gets it too (the page recognises and ignores its own id).
    assert_eq!(
        ada.next::<TypingChanged>().await.unwrap().from.client_id,
        ada.client_id()
    );

    ada.emit::<SetTyping>(TypingIn {
        room: "lobby".into(),
        typing: false,
    })
    .unwrap();
    assert!(!bob.next::<TypingChanged>().await.unwrap().typing);
    carol
        .assert_no_event::<TypingChanged>(Duration::from_millis(100))
        .await
        .unwrap();
}

#[tokio::test]
async fn joining_twice_changes_nothing_and_leaving_updates_the_room() {
    let state = Arc::new(ChatState::default());
    let app = TestServer::with_state(chat::router(), state.clone());
    let ada = user(&app, "Ada").await;
    let bob = user(&app, "Bob").await;
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    let again = ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    assert_eq!(names(&again.members), ["Ada"]);
    bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    bob.call::<Join>(RoomIn::new("garden")).await.unwrap();

    // Ada's presence events: her own join, then Bob's (her second join sent nothing).
    let kinds: Vec<String> = [
        ada.next::<PresenceChanged>().await.unwrap(),
        ada.next::<PresenceChanged>().await.unwrap(),
    ]
    .iter()
    .map(|p| p.member.user_name.clone())
    .collect();
    assert_eq!(kinds, ["Ada", "Bob"]);

    let rooms = bob.call::<Leave>(RoomIn::new("lobby")).await.unwrap();
    assert_eq!(rooms, ["garden"]);
    let p = ada.next::<PresenceChanged>().await.unwrap();
    assert_eq!(
        (p.member.user_name.as_str(), p.kind),
        ("Bob", PresenceKind::Left)
    );
    // Latest member list Ada got: just her.
    let mut last = None;
    while let Ok(m) = ada
        .next_within::<MembersChanged>(Duration::from_millis(100))
        .await
    {
        last = Some(m);
    }
    assert_eq!(names(&last.unwrap().members), ["Ada"]);

    // Leaving a room one is not in changes nothing.
    assert_eq!(
        bob.call::<Leave>(RoomIn::new("lobby")).await.unwrap(),
        ["garden"]
    );
    ada.assert_no_event::<PresenceChanged>(Duration::from_millis(100))
        .await
        .unwrap();
    // Bob can no longer post to the lobby.
    let err = rejected(bob.call::<Post>(send("lobby", "x")).await.unwrap_err());
    assert_eq!(err.code(), "FORBIDDEN");

    assert_eq!(state.user_count(), 2);
    assert_eq!(names(&state.members("garden").members), ["Bob"]);
}

#[tokio::test]
async fn disconnecting_leaves_every_room_and_tells_the_others() {
    let state = Arc::new(ChatState::default());
    let app = TestServer::with_state(chat::router(), state.clone());
    let ada = user(&app, "Ada").await;
    let bob = user(&app, "Bob").await;
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    bob.call::<Join>(RoomIn::new("garden")).await.unwrap();
    // Skip the join traffic.
    while ada
        .next_within::<PresenceChanged>(Duration::from_millis(50))
        .await
        .is_ok()
    {}
    while ada
        .next_within::<MembersChanged>(Duration::from_millis(50))
        .await
        .is_ok()
    {}

    bob.close().await;
    let p = ada.next::<PresenceChanged>().await.unwrap();
    assert_eq!(
        (p.room.as_str(), p.member.user_name.as_str(), p.kind),
        ("lobby", "Bob", PresenceKind::Left)
    );
    let m = ada.next::<MembersChanged>().await.unwrap();
    assert_eq!(names(&m.members), ["Ada"]);
    assert_eq!(state.user_count(), 1);
    assert!(state.members("garden").members.is_empty());
}

#[tokio::test]
async fn bad_input_is_invalid_input_with_the_field_named() {
    let app = TestServer::new(chat::router());
    let ada = user(&app, "Ada").await;
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();

    let too_long = "x".repeat(chat::MAX_TEXT_CHARS + 1);
    let cases: Vec<(SendIn, &str)> = vec![
        (send("lobby", ""), "text"),
        (send("lobby", "   \n "), "text"),
        (send("lobby", &too_long), "text"),
        (send("", "hi"), "room"),
        (send("has space", "hi"), "room"),
        (send(&"r".repeat(33), "hi"), "room"),
    ];
    for (input, path) in cases {
        let err = rejected(ada.call::<Post>(input.clone()).await.unwrap_err());
        assert_eq!(err.code(), "INVALID_INPUT", "{input:?}");
        assert_eq!(issue_path(&err), path, "{input:?}");
    }
    // Exactly the maximum is accepted (counted in characters).
    let max = "é".repeat(chat::MAX_TEXT_CHARS);
    ada.call::<Post>(send("lobby", &max)).await.unwrap();
    assert_eq!(ada.next::<MessagePosted>().await.unwrap().text, max);

    for bad in ["", "a/b", "ünïcode"] {
        let err = rejected(ada.call::<Join>(RoomIn::new(bad)).await.unwrap_err());
        assert_eq!(err.code(), "INVALID_INPUT", "{bad:?}");
        assert_eq!(issue_path(&err), "room");
    }
    let err = rejected(
        ada.call::<Private>(PrivateIn {
            to: ada.client_id(),
            text: " ".into(),
        })
        .await
        .unwrap_err(),
    );
    assert_eq!(issue_path(&err), "text");

    // Missing fields and wrong types, as a hand-written client might send them.
    ada.send_raw(r#"{"type":"chat.send","payload":{"room":"lobby"},"rpcId":"x1"}"#)
        .unwrap();
    let frame = ada.wait_frame(|f| f.contains(r#""x1""#)).await.unwrap();
    assert!(
        frame.contains("__rpc_err") && frame.contains("INVALID_INPUT"),
        "{frame}"
    );
    assert!(frame.contains("text"), "{frame}");

    // Without rpcId the error comes back as `__error` naming the message.
    ada.send_raw(r#"{"type":"chat.join","payload":{"room":42}}"#)
        .unwrap();
    let err = ada.next_error().await.unwrap();
    assert_eq!(err.code, "INVALID_INPUT");

    // Nothing invalid reached the room, and the connection still works.
    ada.call::<Post>(send("lobby", "still here")).await.unwrap();
    assert_eq!(
        ada.next::<MessagePosted>().await.unwrap().text,
        "still here"
    );
}

/// A server going down disconnects everybody: nobody *left*, and the pages see their own
/// disconnect. Two servers share one hub and one directory (as nodes of a cluster
/// would), so the users of the one that stays up would receive any "left" event of the
/// one shutting down.
#[tokio::test]
async fn a_server_shutdown_announces_no_departures() {
    let state = Arc::new(ChatState::default());
    let hub: Arc<dyn zocket_core::hub::Hub> = Arc::new(zocket_core::hub::LocalHub::new());
    let node = |state: &Arc<ChatState>| {
        TestServer::from_server(
            zocket_core::Server::builder(chat::router())
                .state(state.clone())
                .hub(hub.clone())
                .build(),
        )
    };
    let (stays, goes) = (node(&state), node(&state));
    let ada = user(&stays, "Ada").await;
    let bob = user(&goes, "Bob").await;
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    // Bob's arrival reached Ada through the shared hub.
    while ada
        .next::<PresenceChanged>()
        .await
        .unwrap()
        .member
        .user_name
        != "Bob"
    {}

    goes.server().shutdown().await; // Bob's disconnect hook has run when this returns
    assert!(bob.closed().await.is_ok());
    // A call answered after anything the hook could have sent to Ada.
    ada.call::<Me>(Empty {}).await.unwrap();
    let left: Vec<_> = ada
        .drain_events()
        .into_iter()
        .filter(|(kind, payload)| kind == "chat.presence" && payload.contains("\"left\""))
        .collect();
    assert!(
        left.is_empty(),
        "a shutdown was announced as leaving: {left:?}"
    );
    // The directory forgot Bob: after a restart he is listed again when he re-joins.
    assert_eq!(names(&state.members("lobby").members), ["Ada"]);
}
