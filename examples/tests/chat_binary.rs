//! The `chat` binary over real sockets, without a browser: its first line, the page at
//! `/`, the handshake at `/ws`, typed clients sharing the chat contract, and Ctrl-C.

mod chat_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chat_support::ChatProcess;
use futures::StreamExt;
use zocket_client::Client;
use zocket_examples::chat::{
    Join, Me, MessagePosted, Post, Private, PrivateIn, PrivateReceived, RoomIn, SendIn,
};

/// One raw HTTP/1.1 exchange; returns (status, head, body). Reads the head, then a
/// `content-length` body, or (without one) up to the end of the stream, except for a
/// `101` whose connection stays open.
fn http(addr: &str, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => panic!("no complete HTTP head: {:?}", String::from_utf8_lossy(&raw)),
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut body = raw[head_end + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    match (status, length) {
        (101, _) => {}
        (_, Some(len)) => {
            while body.len() < len {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
        }
        (_, None) => {
            let _ = stream.read_to_end(&mut body);
        }
    }
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

fn get(addr: &str, path: &str) -> (u16, String, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn upgrade(addr: &str, path_and_query: &str) -> (u16, String, String) {
    http(
        addr,
        &format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
}

async fn client(url: &str, name: &str) -> Client {
    Client::builder(url)
        .header("userName", name)
        .rpc_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{name} could not connect to {url}: {e}"))
}

#[test]
fn serves_the_page_at_root_and_404_elsewhere() {
    let chat = ChatProcess::start();
    let (status, head, body) = get(&chat.addr, "/");
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

    let (status, _, _) = get(&chat.addr, "/nope");
    assert_eq!(status, 404);
}

#[test]
fn a_bad_user_name_is_refused_before_the_upgrade() {
    let chat = ChatProcess::start();
    let long = "x".repeat(40);
    let (status, head, body) = upgrade(&chat.addr, &format!("/ws?userName={long}"));
    assert_eq!(status, 400, "{head}\n{body}");
    assert!(body.contains("INVALID_HEADERS"), "{body}");
    assert!(body.contains("userName"), "{body}");

    let (status, head, _) = upgrade(&chat.addr, "/ws?userName=Ada");
    assert_eq!(status, 101, "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_clients_chat_through_the_binary_and_ctrl_c_stops_it_cleanly() {
    let chat = tokio::task::spawn_blocking(ChatProcess::start)
        .await
        .unwrap();
    let ada = client(&chat.ws_url, "Ada").await;
    let bob = client(&chat.ws_url, "Bob").await;
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
    let status =
        tokio::task::spawn_blocking(move || chat.interrupt_and_wait(Duration::from_secs(20)))
            .await
            .unwrap();
    assert!(status.success(), "exit status after SIGINT: {status}");
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
    let chat =
        tokio::task::spawn_blocking(|| ChatProcess::start_with(&["--metrics", "127.0.0.1:0"], &[]))
            .await
            .unwrap();
    let metrics = chat.metrics_addr.clone().expect("--metrics was given");
    let ada = client(&chat.ws_url, "Ada").await;
    let bob = client(&chat.ws_url, "Bob").await;
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

    let (status, head, body) = tokio::task::spawn_blocking(move || get(&metrics, "/metrics"))
        .await
        .unwrap();
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
