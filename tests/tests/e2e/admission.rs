//! Admission control over real sockets, on both adapters (issue 9): RFC 6455
//! validation with identical refusals, the connection limits (503 + Retry-After), the
//! handshake timeout, the hyper adapter's path, log hygiene (no ERROR for client-caused
//! events, secrets redacted) and the `LIMIT` refusals of the reference app.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use zocket_core::{Server, ServerConfig};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::http::{self, upgrade_request as request};
use zocket_tests::support::{Adapter, AppServer, WAIT, logs};

const ALL: [Adapter; 3] = Adapter::ALL;

async fn start(adapter: Adapter, config: ServerConfig) -> AppServer<RefCtx> {
    AppServer::start(
        adapter,
        Server::builder(reference::router()).config(config).build(),
    )
    .await
}

/// Wait until `cond` holds for the server: an event wait on its connection counts.
async fn eventually(
    app: &AppServer<RefCtx>,
    what: &str,
    cond: impl FnMut(&Server<RefCtx>) -> bool,
) {
    app.wait_until(what, cond).await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr, query: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?{query}"))
        .await
        .unwrap();
    let welcome = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(welcome.to_text().unwrap().contains("__welcome"));
    ws
}

async fn call(ws: &mut Ws, kind: &str, payload: Value, rpc_id: &str) -> Value {
    let frame = json!({"type": kind, "payload": payload, "rpcId": rpc_id});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Ok(text) = msg.to_text() else { continue };
        let v: Value = serde_json::from_str(text).unwrap();
        if v["rpcId"] == rpc_id {
            return v;
        }
    }
}

#[tokio::test]
async fn invalid_upgrades_get_the_same_refusal_from_every_adapter() {
    let cases: Vec<(&str, String, u16)> = vec![
        ("POST", request("POST / HTTP/1.1", &[]), 400),
        ("HTTP/1.0", request("GET / HTTP/1.0", &[]), 400),
        ("no Host", request("GET / HTTP/1.1", &[("Host", None)]), 400),
        (
            "no Upgrade",
            request("GET / HTTP/1.1", &[("Upgrade", None)]),
            400,
        ),
        (
            "no Connection: upgrade",
            request("GET / HTTP/1.1", &[("Connection", Some("keep-alive"))]),
            400,
        ),
        (
            "short key",
            request("GET / HTTP/1.1", &[("Sec-WebSocket-Key", Some("c2hvcnQ="))]),
            400,
        ),
        (
            "no key",
            request("GET / HTTP/1.1", &[("Sec-WebSocket-Key", None)]),
            400,
        ),
        (
            "version 8",
            request("GET / HTTP/1.1", &[("Sec-WebSocket-Version", Some("8"))]),
            426,
        ),
    ];
    let mut seen: Vec<Vec<(u16, String, Option<String>)>> = Vec::new();
    for adapter in ALL {
        let app = start(adapter, ServerConfig::default()).await;
        let mut answers = Vec::new();
        for (what, req, status) in &cases {
            // (Under `warp::serve` the HTTP/1.0 refusal comes from the missing upgrade
            // handle, with the same status and code.)
            let answer = http::send(app.addr, req).await;
            assert_eq!(answer.status, *status, "{adapter:?} {what}: {answer:?}");
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("application/json"),
                "{adapter:?} {what}"
            );
            let body = answer.json();
            assert_eq!(body["error"], "BAD_REQUEST", "{adapter:?} {what}");
            assert!(body["message"].is_string());
            let version = answer.header("sec-websocket-version");
            if *status == 426 {
                assert_eq!(version.as_deref(), Some("13"), "{adapter:?} {what}");
            }
            if !(adapter == Adapter::WarpServe && *what == "HTTP/1.0") {
                answers.push((answer.status, answer.body, version));
            }
        }
        assert_eq!(app.server.admitted(), (0, 0), "{adapter:?}");
        if adapter != Adapter::WarpServe {
            seen.push(answers);
        }
    }
    assert_eq!(
        seen[0], seen[1],
        "warp and hyper answer byte for byte alike"
    );
}

#[tokio::test]
async fn a_valid_upgrade_is_accepted_and_http_1_0_is_refused_cleanly() {
    for adapter in ALL {
        let app = start(adapter, ServerConfig::default()).await;
        let answer = http::send(app.addr, &request("GET / HTTP/1.1", &[])).await;
        assert_eq!(answer.status, 101, "{adapter:?}");
        assert_eq!(
            answer.header("sec-websocket-accept").as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }
}

#[tokio::test]
async fn over_the_connection_limits_handshakes_get_503_with_retry_after() {
    for adapter in ALL {
        let config = ServerConfig::default()
            .max_connections_per_ip(2)
            .max_connections(3)
            .retry_after(Duration::from_secs(7));
        let app = start(adapter, config).await;
        let a = connect(app.addr, "userName=a").await;
        let b = connect(app.addr, "userName=b").await;
        assert_eq!(app.server.admitted(), (2, 1));
        let refused = http::send(app.addr, &request("GET / HTTP/1.1", &[])).await;
        assert_eq!(refused.status, 503, "{adapter:?}");
        assert_eq!(refused.header("retry-after").as_deref(), Some("7"));
        assert_eq!(refused.json()["error"], "UNAVAILABLE");
        assert_eq!(
            refused.json()["message"],
            "too many connections from this address"
        );
        assert_eq!(app.server.stats().admission_full, 1);
        // A slot is freed when its connection ends.
        drop(a);
        eventually(&app, "a's slot freed", |s| s.admitted().0 == 1).await;
        let c = connect(app.addr, "userName=c").await;
        drop((b, c));
        eventually(&app, "every slot freed", |s| s.admitted() == (0, 0)).await;
    }
}

#[tokio::test]
async fn the_total_limit_and_shutdown_are_503_too() {
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let config = ServerConfig::default().max_connections(1);
        let app = start(adapter, config).await;
        let _a = connect(app.addr, "userName=a").await;
        let refused = http::send(app.addr, &request("GET / HTTP/1.1", &[])).await;
        assert_eq!(refused.status, 503);
        assert_eq!(refused.json()["message"], "too many connections");
        assert!(refused.header("retry-after").is_some());
    }
}

/// Bytes of a request that never ends; the server must drop the connection.
async fn dropped_within(addr: SocketAddr, partial: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(partial).await.unwrap();
    let mut buf = [0u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // hyper may answer 408 before closing.
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, closed).await.is_ok()
}

#[tokio::test]
async fn a_handshake_not_completed_in_time_is_dropped() {
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let config = ServerConfig::default().handshake_timeout(Duration::from_millis(200));
        let app = start(adapter, config).await;
        assert!(
            dropped_within(app.addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await,
            "{adapter:?}: a half-sent handshake is dropped"
        );
        assert!(
            dropped_within(app.addr, b"").await,
            "{adapter:?}: a silent connection is dropped"
        );
        // A prompt client is served.
        let _ws = connect(app.addr, "userName=a").await;
    }
}

#[tokio::test]
async fn the_hyper_adapter_serves_only_its_path() {
    let app = start(Adapter::Hyper, ServerConfig::default()).await;
    let answer = http::send(app.addr, &request("GET /elsewhere HTTP/1.1", &[])).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"], "NOT_FOUND");
    let app = start(Adapter::Warp, ServerConfig::default()).await;
    let answer = http::send(app.addr, &request("GET /elsewhere HTTP/1.1", &[])).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"], "NOT_FOUND");
}

#[tokio::test]
async fn ten_thousand_connections_from_one_address_fit_the_defaults() {
    // The defaults, not actual sockets (a soak does those): 10 000 slots from one IP.
    let config = ServerConfig::default();
    assert!(config.max_connections_per_ip >= 10_000);
    assert!(config.max_connections >= 10_000);
    let app = zocket_core::testing::TestServer::from_server(
        Server::builder(reference::router()).config(config).build(),
    );
    let mut held = Vec::new();
    for _ in 0..10_000 {
        let req = zocket_core::HandshakeRequest::new("/")
            .remote_addr(Some("127.0.0.1:1".parse().unwrap()));
        held.push(app.server().handshake(req).await.expect("admitted"));
    }
    assert_eq!(app.server().admitted(), (10_000, 1));
    drop(held);
    assert_eq!(app.server().admitted(), (0, 0));
}

// current_thread: every task of the server runs on this thread, under the capture.
#[tokio::test(flavor = "current_thread")]
async fn client_caused_events_never_log_at_error_and_secrets_are_redacted() {
    // Everything, except warp's own server, which logs an ERROR per aborted handshake
    // under `warp::serve`: the filter the zocket-warp docs give for it
    // (`zocket_warp::serve` logs those at DEBUG).
    let (logs, _guard) = logs::capture("trace,warp::server=off");
    for adapter in ALL {
        let app = start(adapter, ServerConfig::default()).await;
        // Aborted handshakes.
        for _ in 0..5 {
            let mut s = TcpStream::connect(app.addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr")
                .await
                .unwrap();
            drop(s);
        }
        // Garbage instead of HTTP.
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"\x00\x01\x02 not http\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut sink)).await;
        // Refusals.
        http::send(app.addr, &request("GET / HTTP/1.0", &[])).await;
        http::send(
            app.addr,
            &request(
                "GET /?userRole=nobody&token=query-secret-1 HTTP/1.1",
                &[("Authorization", Some("Bearer header-secret-2"))],
            ),
        )
        .await;
        // A connection with secrets, a long room name and a huge log line.
        let mut ws = connect(
            app.addr,
            "userName=ada&token=query-secret-3&cookie=cookie-secret-4",
        )
        .await;
        let long = "r".repeat(100_000);
        let reply = call(&mut ws, "rooms.join", json!({"roomId": long}), "1").await;
        assert_eq!(reply["error"]["code"], "LIMIT", "{adapter:?}");
        for i in 0..3 {
            let reply = call(
                &mut ws,
                "rooms.join",
                json!({"roomId": format!("{i}")}),
                "j",
            )
            .await;
            assert_eq!(reply["type"], "__rpc_res");
        }
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        eventually(&app, "disconnected", |s| s.admitted().0 == 0).await;
    }
    let text = logs.text();
    assert!(!text.is_empty());
    for line in text.lines() {
        assert!(!line.contains("ERROR"), "client-caused ERROR log: {line}");
        assert!(
            line.len() < 4096,
            "unbounded log line: {} bytes",
            line.len()
        );
    }
    for secret in [
        "query-secret-1",
        "header-secret-2",
        "query-secret-3",
        "cookie-secret-4",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the logs");
    }
    assert!(text.contains("disconnected"), "the disconnect hook logged");
}

#[tokio::test]
async fn room_and_target_limits_answer_limit_on_both_adapters() {
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let config = ServerConfig::default()
            .max_rooms_per_connection(3)
            .max_room_name_bytes(8)
            .max_send_targets(2);
        let app = start(adapter, config).await;
        let mut ws = connect(app.addr, "userName=ada&userRole=admin").await;
        for room in ["a", "b", "c"] {
            let r = call(&mut ws, "rooms.join", json!({"roomId": room}), room).await;
            assert_eq!(r["type"], "__rpc_res", "{r}");
        }
        let r = call(&mut ws, "rooms.join", json!({"roomId": "d"}), "d").await;
        assert_eq!(r["error"]["code"], "LIMIT");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_rooms_per_connection")
        );
        // Joining a room one is in already is not over the limit.
        let r = call(&mut ws, "rooms.join", json!({"roomId": "a"}), "a2").await;
        assert_eq!(r["payload"], json!(["a", "b", "c"]));
        // Leave one: a new join fits again.
        call(&mut ws, "rooms.leave", json!({"roomId": "c"}), "l").await;
        let r = call(&mut ws, "rooms.join", json!({"roomId": "d"}), "d2").await;
        assert_eq!(r["payload"], json!(["a", "b", "d"]));
        let r = call(
            &mut ws,
            "rooms.join",
            json!({"roomId": "123456789"}),
            "long",
        )
        .await;
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_room_name_bytes")
        );
        let r = call(
            &mut ws,
            "notification.send",
            json!({"type": "info", "message": "m", "targets": ["x", "y", "z"]}),
            "n",
        )
        .await;
        assert_eq!(r["error"]["code"], "LIMIT");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_send_targets")
        );
        let r = call(
            &mut ws,
            "chat.room",
            json!({"roomId": "123456789", "message": "m"}),
            "c",
        )
        .await;
        assert_eq!(r["error"]["code"], "LIMIT");
        assert!(app.server.stats().limit_refusals >= 4);
    }
}
