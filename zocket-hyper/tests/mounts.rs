//! The service mounted in axum (as a tower service) and in hyper's own HTTP/1
//! connection, next to other routes, over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use zocket_core::testing::conformance::{self, Peer, peer_seen_by_the_server, who_am_i};
use zocket_core::{Server, ServerConfig};
use zocket_hyper::ZocketService;

/// The conformance kit's router: `whoami` answers "NAME from REMOTE IP"; the
/// `userName` header is required (else 400) and `mallory` is refused (403).
fn server() -> Server<Peer> {
    conformance::server(ServerConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_in_axum_next_to_other_routes() {
    let server = server();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route_service("/ws", ZocketService::new(server.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Served without `ConnectInfo`, axum knows no peer address.
    assert_eq!(
        who_am_i(&format!("ws://{addr}/ws?userName=ada")).await,
        "ada from None"
    );

    // A refusal is the handshake's status, with no upgrade.
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?userName=mallory")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            assert_eq!(response.headers()["content-type"], "application/json");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    let missing = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await;
    match missing {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_connect_info_is_the_peer_address_of_the_handshake() {
    let server = server();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route_service("/ws", ZocketService::new(server.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, make_service).await.unwrap() });

    let (me, seen) = peer_seen_by_the_server(addr, "/ws").await;
    assert_eq!(
        seen,
        Some(me),
        "the handshake sees the client's own address and port"
    );
    // A second client, from another port, is told apart.
    let (other, seen) = peer_seen_by_the_server(addr, "/ws").await;
    assert_ne!(other, me);
    assert_eq!(seen, Some(other));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_mock_connect_info_reaches_the_handshake() {
    use axum::extract::connect_info::MockConnectInfo;
    let server = server();
    let fake: SocketAddr = "203.0.113.7:4242".parse().unwrap();
    let app = axum::Router::new()
        .route_service("/ws", ZocketService::new(server.clone()))
        .layer(MockConnectInfo(fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (_, seen) = peer_seen_by_the_server(addr, "/ws").await;
    assert_eq!(seen, Some(fake));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_passes_the_peer_address_and_stops_on_shutdown() {
    let server = server();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept_loop = tokio::spawn(zocket_hyper::serve(listener, server.clone()));
    assert_eq!(
        who_am_i(&format!("ws://{addr}/?userName=bob")).await,
        "bob from Some(127.0.0.1)"
    );
    let (me, seen) = peer_seen_by_the_server(addr, "/").await;
    assert_eq!(seen, Some(me));
    server.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), accept_loop)
        .await
        .expect("the accept loop ends when the shutdown begins")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
