//! The filter mounted under a path next to other warp routes, over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use warp::Filter;
use zocket_core::{Connect, Context, Cx, Message, Reject, Router, Server};

#[derive(Serialize, Deserialize)]
struct WhoIn {}
enum Who {}
impl Message for Who {
    const NAME: &'static str = "who";
    type Input = WhoIn;
    type Output = String;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Headers {
    user_name: String,
}

struct User {
    name: String,
    remote: Option<SocketAddr>,
}
impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        let (headers, info) = (conn.headers, conn.info);
        if headers.user_name == "mallory" {
            return Err(Reject::forbidden("not you"));
        }
        Ok(User {
            name: headers.user_name,
            remote: info.remote_addr,
        })
    }
}

async fn who(cx: Cx<User>, _: WhoIn) -> Result<String, Reject> {
    Ok(format!("{} from {:?}", cx.name, cx.remote.map(|a| a.ip())))
}

fn server() -> Server<User> {
    Server::new(Router::<User>::new().on::<Who>(who))
}

/// Connect, read `__welcome`, call `who`, return the answer.
async fn who_am_i(url: &str) -> String {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .unwrap()
    .unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("__welcome"),
        "{welcome}"
    );
    ws.send(WsMessage::text(
        r#"{"type":"who","payload":{},"rpcId":"1"}"#,
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["type"], "__rpc_res", "{reply}");
    reply["payload"].as_str().unwrap().to_owned()
}

async fn start(server: Server<User>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
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
    let server = Server::builder(Router::<User>::new().on::<Who>(who))
        .config(zocket_core::ServerConfig::default().max_message_bytes(1024))
        .build();
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
