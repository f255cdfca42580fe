//! The filter mounted under a path next to other warp routes, over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use warp::Filter;
use zocket_core::testing::conformance::{self, Peer, who_am_i};
use zocket_core::{Server, ServerConfig};

/// The conformance kit's router: `whoami` answers "NAME from REMOTE IP"; the
/// `userName` header is required (else 400) and `mallory` is refused (403).
fn server() -> Server<Peer> {
    conformance::server(ServerConfig::default())
}

async fn start(server: Server<Peer>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let health = warp::path("health").map(|| "ok");
    let ws = warp::path("ws").and(zocket_warp::upgrade(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(health.or(ws))
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_under_a_path_next_to_other_routes() {
    let server = server();
    let (addr, stop) = start(server.clone()).await;
    assert_eq!(
        who_am_i(&format!("ws://{addr}/ws?userName=ada")).await,
        "ada from Some(127.0.0.1)"
    );

    // A refusal is the handshake's status and JSON body, with no upgrade.
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws?userName=mallory")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            assert_eq!(response.headers()["content-type"], "application/json");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // Only the exact mount path upgrades.
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws/more?userName=ada")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    server.shutdown().await;
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_close_with_1009() {
    let server = conformance::server(ServerConfig::default().max_message_bytes(1024));
    let (addr, stop) = start(server.clone()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?userName=ada"))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap(); // __welcome
    ws.send(WsMessage::text("x".repeat(1025))).await.unwrap();
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match close {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert_eq!(server.stats().oversize_closes, 1);
    server.shutdown().await;
    let _ = stop.send(());
}
