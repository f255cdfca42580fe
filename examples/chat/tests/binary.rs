//! The `chat` binary over real sockets, without a browser: its first line, the page at
//! `/`, the handshake at `/ws`, typed clients sharing the chat contract, and Ctrl-C.

use std::time::Duration;

use futures::StreamExt;
use zocket_client::Client;
use zocket_example_chat::{
    Join, Me, MessagePosted, Post, Private, PrivateIn, PrivateReceived, RoomIn, SendIn,
};
use zocket_tests::support::http;
use zocket_tests::support::process::Chat;

/// One raw HTTP/1.1 exchange; returns (status, head, body). Reads the head, then a
/// `content-length` body, or (without one) up to the end of the stream, except for a
/// `101` whose connection stays open.
async fn chat() -> Chat {
    Chat::start(env!("CARGO_BIN_EXE_chat"), &[], &[]).await
}

async fn client(url: &str, name: &str) -> Client {
    Client::builder(url)
        .header("userName", name)
        .rpc_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{name} could not connect to {url}: {e}"))
}

#[tokio::test]
async fn serves_the_page_at_root_and_404_elsewhere() {
    let chat = chat().await;
    let http::HttpAnswer { status, head, body } = http::get(chat.addr, "/").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(body.contains("<title>Zocket chat</title>"), "{body}");
    // The page speaks the protocol itself: no external scripts.
    assert!(body.contains("new WebSocket("));
    assert!(body.contains("\"chat.join\""));
    assert!(!body.contains("<script src"), "no external scripts");

    assert_eq!(http::get(chat.addr, "/nope").await.status, 404);
}

#[tokio::test]
async fn a_bad_user_name_is_refused_before_the_upgrade() {
    let chat = chat().await;
    let long = "x".repeat(40);
    let http::HttpAnswer { status, head, body } =
        http::upgrade(chat.addr, &format!("/ws?userName={long}")).await;
    assert_eq!(status, 400, "{head}\n{body}");
    assert!(body.contains("INVALID_HEADERS"), "{body}");
    assert!(body.contains("userName"), "{body}");

    let answer = http::upgrade(chat.addr, "/ws?userName=Ada").await;
    assert_eq!(answer.status, 101, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_clients_chat_through_the_binary_and_ctrl_c_stops_it_cleanly() {
    let chat = chat().await;
    let ada = client(&chat.ws_url(), "Ada").await;
    let bob = client(&chat.ws_url(), "Bob").await;
    let mut bob_room = bob.subscribe::<MessagePosted>();
    let mut bob_private = bob.subscribe::<PrivateReceived>();

    let ada_me = ada.call::<Me>(Default::default()).await.unwrap();
    assert_eq!(ada_me.user_name, "Ada");
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    let members = bob.call::<Join>(RoomIn::new("lobby")).await.unwrap();
    let names: Vec<_> = members
        .members
        .iter()
        .map(|m| m.user_name.as_str())
        .collect();
    assert_eq!(names, ["Ada", "Bob"]);

    ada.call::<Post>(SendIn {
        room: "lobby".into(),
        text: "over a real socket".into(),
    })
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), bob_room.next())
        .await
        .expect("Bob receives the room message")
        .expect("subscription open")
        .expect("payload decodes");
    assert_eq!(got.text, "over a real socket");
    assert_eq!(got.from, ada_me);

    let bob_id = bob.call::<Me>(Default::default()).await.unwrap().client_id;
    ada.call::<Private>(PrivateIn {
        to: bob_id,
        text: "psst".into(),
    })
    .await
    .unwrap();
    let pm = tokio::time::timeout(Duration::from_secs(10), bob_private.next())
        .await
        .expect("Bob receives the private message")
        .expect("subscription open")
        .expect("payload decodes");
    assert_eq!(
        (pm.from.user_name.as_str(), pm.text.as_str()),
        ("Ada", "psst")
    );

    // Ctrl-C with clients connected: graceful shutdown, exit code 0.
    assert_eq!(chat.interrupt().await, Some(0), "exit status after SIGINT");
    ada.close().await;
    bob.close().await;
}

/// The value of one sample line `name{labels} value` (labels exactly as rendered), 0
/// when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_serves_the_chats_counts_for_prometheus() {
    let chat = Chat::start(
        env!("CARGO_BIN_EXE_chat"),
        &["--metrics", "127.0.0.1:0"],
        &[],
    )
    .await;
    let metrics = chat.metrics_addr.expect("--metrics was given");
    let ada = client(&chat.ws_url(), "Ada").await;
    let bob = client(&chat.ws_url(), "Bob").await;
    ada.call::<Join>(RoomIn::new("lobby")).await.unwrap(); // presence + members to Ada
    bob.call::<Join>(RoomIn::new("lobby")).await.unwrap(); // the same to Ada and Bob
    let mut bob_room = bob.subscribe::<MessagePosted>();
    ada.call::<Post>(SendIn {
        room: "lobby".into(),
        text: "counted".into(),
    })
    .await
    .unwrap(); // to Ada and Bob
    tokio::time::timeout(Duration::from_secs(10), bob_room.next())
        .await
        .expect("Bob receives the message");

    let http::HttpAnswer { status, head, body } = http::get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert_eq!(sample(&body, "zocket_connections_open"), 2.0, "{body}");
    assert_eq!(
        sample(&body, r#"zocket_messages_in_total{type="chat.join"}"#),
        2.0,
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"zocket_messages_in_total{type="chat.send"}"#),
        1.0,
        "{body}"
    );
    assert_eq!(
        sample(&body, "zocket_events_delivered_total"),
        8.0,
        "{body}"
    );
    assert!(
        body.contains("# TYPE zocket_rpc_duration_seconds histogram"),
        "{body}"
    );

    ada.close().await;
    bob.close().await;
}
