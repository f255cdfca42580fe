//! The dispatcher and connection driver, through the public test harness.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zocket_core::protocol::{CloseFrame, WsFrame};
use zocket_core::testing::{ConnectOptions, TestError, TestServer};
use zocket_core::{
    Connect, Context, Cx, Disconnect, Event, HandshakeError, Input, Message, Middleware, Reject,
    Router, Server, ServerConfig, SlowConsumerPolicy,
};

// ---- contract ----
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Named {
    name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Opt {
    #[serde(default = "hi")]
    word: String,
}
fn hi() -> String {
    "hi".into()
}

macro_rules! message {
    ($t:ident, $name:literal, $i:ty, $o:ty) => {
        enum $t {}
        impl Message for $t {
            const NAME: &'static str = $name;
            type Input = $i;
            type Output = $o;
        }
    };
}
macro_rules! event {
    ($t:ident, $name:literal, $p:ty) => {
        enum $t {}
        impl Event for $t {
            const NAME: &'static str = $name;
            type Payload = $p;
        }
    };
}

message!(Hello, "hello", Named, String);
message!(Unit, "unit", Value, ());
message!(Null, "null", Value, Value);
message!(Words, "words", Opt, String);
message!(Sleep, "sleep", u64, u64);
message!(Join, "join", String, Vec<String>);
message!(Say, "say", (String, String), ());
message!(Boom, "boom", Value, ());
message!(Secret, "secret", Value, String);
message!(Flood, "flood", u32, ());
event!(Said, "said", String);
event!(Mine, "mine", u32);

struct Bounded;
impl Message for Bounded {
    const NAME: &'static str = "bounded";
    type Input = u32;
    type Output = u32;
    fn validate(input: &u32) -> Result<(), Reject> {
        if *input > 10 {
            Err(Reject::invalid_input("at most 10"))
        } else {
            Ok(())
        }
    }
}

// ---- server ----
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Headers {
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    role: Option<Role>,
}
#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    User,
}

#[derive(Debug)]
struct User {
    name: String,
    role: Role,
}

static DISCONNECTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// How many times the disconnect hook ran for connections named `name`.
fn disconnects(name: &str) -> usize {
    DISCONNECTS
        .lock()
        .unwrap()
        .iter()
        .filter(|n| *n == name)
        .count()
}

impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        let h = conn.headers;
        match h.user_name.as_deref() {
            Some("mallory") => Err(Reject::unauthorized("who are you?")),
            Some("eve") => Err(Reject::forbidden("not you")),
            _ => Ok(User {
                name: h.user_name.unwrap_or_else(|| "anon".into()),
                role: h.role.unwrap_or(Role::User),
            }),
        }
    }
    async fn disconnect(&self, end: Disconnect<'_, Self>) {
        DISCONNECTS.lock().unwrap().push(self.name.clone());
        let _ = end;
    }
}

struct Admin {
    name: String,
}
struct RequireAdmin;
impl Middleware<User> for RequireAdmin {
    type Out = Admin;
    async fn run(&self, cx: &Cx<User>, _: &Input<'_>) -> Result<Admin, Reject> {
        if cx.role == Role::Admin {
            Ok(Admin {
                name: cx.name.clone(),
            })
        } else {
            Err(Reject::forbidden("admins only"))
        }
    }
}
struct Shout(String);
struct AddShout;
impl Middleware<Admin> for AddShout {
    type Out = Shout;
    async fn run(&self, cx: &Cx<Admin>, input: &Input<'_>) -> Result<Shout, Reject> {
        let v = input.to_json().map_err(|_| Reject::internal())?;
        Ok(Shout(format!(
            "{}:{}:{}",
            input.message_name(),
            cx.name.to_uppercase(),
            v
        )))
    }
}

fn router() -> Router<User> {
    Router::<User>::new()
        .on::<Hello>(|cx: Cx<User>, n: Named| async move {
            Ok::<_, Reject>(format!("{} greets {}", cx.name, n.name))
        })
        .on::<Unit>(|_cx: Cx<User>, _v: Value| async { Ok::<_, Reject>(()) })
        .on::<Null>(|_cx: Cx<User>, _v: Value| async { Ok::<_, Reject>(Value::Null) })
        .on::<Words>(|_cx: Cx<User>, o: Opt| async move { Ok::<_, Reject>(o.word) })
        .on::<Sleep>(|_cx: Cx<User>, ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Reject>(ms)
        })
        .on::<Join>(|cx: Cx<User>, room: String| async move {
            cx.rooms().join(&room);
            Ok::<_, Reject>(cx.rooms().current())
        })
        .on::<Say>(|cx: Cx<User>, (room, text): (String, String)| async move {
            if !cx.rooms().has(&room) {
                return Err(Reject::forbidden("join first"));
            }
            let _ = cx.send::<Said>(text).to_room(room.as_str());
            Ok(())
        })
        .on::<Boom>(|_cx: Cx<User>, _v: Value| async move {
            if true {
                panic!("secret panic text");
            }
            Ok::<_, Reject>(())
        })
        .on::<Flood>(|cx: Cx<User>, n: u32| async move {
            for i in 0..n {
                let _ = cx.send::<Mine>(i).to(cx.client_id());
            }
            Ok::<_, Reject>(())
        })
        .on::<Bounded>(|_cx: Cx<User>, n: u32| async move { Ok::<_, Reject>(n) })
        .scope(RequireAdmin, |s| {
            s.scope(AddShout, |s| {
                s.on::<Secret>(
                    |cx: Cx<Shout>, _v: Value| async move { Ok::<_, Reject>(cx.0.clone()) },
                )
            })
        })
}

fn app() -> TestServer<User> {
    TestServer::new(router())
}

fn app_with(config: ServerConfig) -> TestServer<User> {
    TestServer::from_server(Server::builder(router()).config(config).build())
}

#[tokio::test]
async fn typed_call_and_context() {
    let app = app();
    let c = app.connect([("userName", "ada")]).await.unwrap();
    assert_eq!(
        c.call::<Hello>(Named { name: "bob".into() }).await.unwrap(),
        "ada greets bob"
    );
    assert_eq!(c.client_id().as_str().len(), 32);
}

#[tokio::test]
async fn handshake_rejections() {
    let app = app();
    let e = app.connect([("userName", "mallory")]).await.unwrap_err();
    assert_eq!(e.status(), 401);
    assert!(
        e.body().contains(r#""error":"UNAUTHORIZED""#),
        "{}",
        e.body()
    );
    let e = app.connect([("userName", "eve")]).await.unwrap_err();
    assert_eq!(e.status(), 403);
    let e = app.connect([("role", "king")]).await.unwrap_err();
    assert_eq!(e.status(), 400);
    let HandshakeError::InvalidHeaders { issues, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(issues[0].path, "role");
    let body: Value = serde_json::from_str(&e.body()).unwrap();
    assert_eq!(body["error"], "INVALID_HEADERS");
    assert_eq!(body["issues"][0]["path"], "role");
    assert_eq!(app.server().stats().handshakes_rejected, 3);
}

#[tokio::test]
async fn query_overrides_http_header() {
    let app = app();
    // The HTTP header alone would fill `userName` (see the next test), so only the
    // query's precedence makes this pass.
    let opts = ConnectOptions {
        http_headers: vec![("UserName".into(), "header".into())],
        ..Default::default()
    };
    let c = app
        .connect_with([("userName", "query")], opts)
        .await
        .unwrap();
    assert_eq!(
        c.call::<Hello>(Named { name: "x".into() }).await.unwrap(),
        "query greets x"
    );
}

#[tokio::test]
async fn http_header_alone_fills_a_camel_case_field() {
    let app = app();
    for name in ["userName", "username", "USERNAME"] {
        let opts = ConnectOptions {
            http_headers: vec![(name.into(), "header".into())],
            ..Default::default()
        };
        let no_query: [(&str, &str); 0] = [];
        let c = app.connect_with(no_query, opts).await.unwrap();
        assert_eq!(
            c.call::<Hello>(Named { name: "x".into() }).await.unwrap(),
            "header greets x",
            "HTTP header `{name}`"
        );
    }
    // A wrong value in an HTTP header is refused with the field's name as the path.
    let opts = ConnectOptions {
        http_headers: vec![("Role".into(), "king".into())],
        ..Default::default()
    };
    let no_query: [(&str, &str); 0] = [];
    let err = app.connect_with(no_query, opts).await.unwrap_err();
    let HandshakeError::InvalidHeaders { issues, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(issues[0].path, "role");
}

#[tokio::test]
async fn unit_output_has_no_payload_key_and_null_keeps_it() {
    let app = app();
    let c = app.connect([("userName", "a")]).await.unwrap();
    c.call::<Unit>(json!(1)).await.unwrap();
    c.call::<Null>(json!(1)).await.unwrap();
    let frames = c.frames();
    assert!(
        frames.contains(&r#"{"type":"__rpc_res","rpcId":"1"}"#.to_string()),
        "{frames:?}"
    );
    assert!(
        frames.contains(&r#"{"type":"__rpc_res","payload":null,"rpcId":"2"}"#.to_string()),
        "{frames:?}"
    );
}

#[tokio::test]
async fn absent_payload_tries_null_then_empty_object_and_defaults_apply() {
    let app = app();
    let c = app.connect([("userName", "a")]).await.unwrap();
    c.send_raw(r#"{"type":"words","rpcId":"x"}"#).unwrap();
    let f = c
        .wait_frame(|f| f.contains(r#""rpcId":"x""#))
        .await
        .unwrap();
    assert_eq!(f, r#"{"type":"__rpc_res","payload":"hi","rpcId":"x"}"#);
    assert_eq!(
        c.call::<Words>(Opt { word: "yo".into() }).await.unwrap(),
        "yo"
    );
    // An input that needs something still fails on an absent payload.
    c.send_raw(r#"{"type":"hello","rpcId":"y"}"#).unwrap();
    let f = c
        .wait_frame(|f| f.contains(r#""rpcId":"y""#))
        .await
        .unwrap();
    assert!(f.contains("INVALID_INPUT"), "{f}");
}

#[tokio::test]
async fn error_frames_for_every_failure_path() {
    let app = app();
    let c = app.connect([("userName", "a")]).await.unwrap();
    // not JSON, without rpcId -> __error BAD_REQUEST
    c.send_raw("not json").unwrap();
    assert_eq!(c.next_error().await.unwrap().code, "BAD_REQUEST");
    // array -> BAD_REQUEST
    c.send_raw("[1,2]").unwrap();
    assert_eq!(c.next_error().await.unwrap().code, "BAD_REQUEST");
    // no type but string rpcId -> __rpc_err with that rpcId
    c.send_raw(r#"{"payload":1,"rpcId":"r1"}"#).unwrap();
    let f = c.wait_frame(|f| f.contains("r1")).await.unwrap();
    assert!(
        f.starts_with(r#"{"type":"__rpc_err","rpcId":"r1","error":{"code":"BAD_REQUEST""#),
        "{f}"
    );
    // non-string rpcId -> malformed -> __error
    c.send_raw(r#"{"type":"hello","rpcId":5}"#).unwrap();
    assert_eq!(c.next_error().await.unwrap().code, "BAD_REQUEST");
    // unknown type
    c.send_raw(r#"{"type":"nope"}"#).unwrap();
    let e = c.next_error().await.unwrap();
    assert_eq!(
        (e.code.as_str(), e.kind.as_deref()),
        ("NOT_FOUND", Some("nope"))
    );
    // binary frame -> BAD_REQUEST, connection stays open
    c.send_frame(WsFrame::Binary(bytes::Bytes::from_static(b"\x00\x01")))
        .unwrap();
    assert_eq!(c.next_error().await.unwrap().code, "BAD_REQUEST");
    // invalid input names the path
    let e = c.call::<Hello>(Named { name: "x".into() }).await;
    assert!(e.is_ok());
    c.send_raw(r#"{"type":"hello","payload":{"name":3},"rpcId":"p"}"#)
        .unwrap();
    let f = c
        .wait_frame(|f| f.contains(r#""rpcId":"p""#))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&f).unwrap();
    assert_eq!(v["error"]["code"], "INVALID_INPUT");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`name`"),
        "{f}"
    );
    assert_eq!(v["error"]["data"]["issues"][0]["path"], "name");
    // validate() hook
    assert_eq!(
        c.call::<Bounded>(11).await.unwrap_err().code(),
        Some("INVALID_INPUT")
    );
    assert_eq!(c.call::<Bounded>(7).await.unwrap(), 7);
    assert!(app.server().stats().protocol_errors >= 8);
}

#[tokio::test]
async fn panic_is_internal_for_that_call_only() {
    let app = app();
    let a = app.connect([("userName", "a")]).await.unwrap();
    let b = app.connect([("userName", "b")]).await.unwrap();
    let err = a.call::<Boom>(json!({})).await.unwrap_err();
    let TestError::Rejected(r) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(r.code(), "INTERNAL");
    assert!(
        !r.message().contains("secret"),
        "panic text must not reach the client"
    );
    // the same connection and others live on
    assert_eq!(
        a.call::<Hello>(Named { name: "b".into() }).await.unwrap(),
        "a greets b"
    );
    assert_eq!(
        b.call::<Hello>(Named { name: "a".into() }).await.unwrap(),
        "b greets a"
    );
    // without rpcId the panic is an __error
    a.emit::<Boom>(json!({})).unwrap();
    assert_eq!(a.next_error().await.unwrap().code, "INTERNAL");
    assert_eq!(app.server().stats().handler_panics, 2);
}

#[tokio::test]
async fn middleware_chain_narrows_and_rejects() {
    let app = app();
    let user = app.connect([("userName", "u")]).await.unwrap();
    assert_eq!(
        user.call::<Secret>(json!(1)).await.unwrap_err().code(),
        Some("FORBIDDEN")
    );
    let admin = app
        .connect([("userName", "root"), ("role", "admin")])
        .await
        .unwrap();
    assert_eq!(
        admin.call::<Secret>(json!({"k": 1})).await.unwrap(),
        r#"secret:ROOT:{"k":1}"#
    );
}

#[tokio::test]
async fn rooms_and_ordering_of_join_then_message() {
    let app = app();
    let a = app.connect([("userName", "a")]).await.unwrap();
    let b = app.connect([("userName", "b")]).await.unwrap();
    let outsider = app.connect([("userName", "c")]).await.unwrap();
    assert_eq!(
        b.call::<Join>("r".into()).await.unwrap(),
        vec!["r".to_string()]
    );
    // emitted back to back: the join must be effective before the message runs
    a.emit::<Join>("r".into()).unwrap();
    a.emit::<Say>(("r".into(), "first".into())).unwrap();
    assert_eq!(b.next::<Said>().await.unwrap(), "first");
    assert_eq!(a.next::<Said>().await.unwrap(), "first");
    outsider
        .assert_no_event::<Said>(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        outsider
            .call::<Say>(("r".into(), "x".into()))
            .await
            .unwrap_err()
            .code(),
        Some("FORBIDDEN")
    );
}

#[tokio::test]
async fn slow_handler_does_not_delay_a_fast_one_and_replies_match_ids() {
    let app = app();
    let c = Arc::new(app.connect([("userName", "a")]).await.unwrap());
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<Sleep>(400).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        c.call::<Hello>(Named { name: "x".into() }).await.unwrap(),
        "a greets x"
    );
    assert!(
        !slow.is_finished(),
        "the fast call answered while the slow one still runs"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 400);
    let frames = c.frames();
    let fast = frames.iter().position(|f| f.contains("greets")).unwrap();
    let slow = frames
        .iter()
        .position(|f| f.contains(r#""payload":400"#))
        .unwrap();
    assert!(fast < slow, "{frames:?}");
}

#[tokio::test]
async fn strictly_sequential_mode_runs_one_at_a_time() {
    let app = app_with(ServerConfig {
        max_in_flight: 1,
        ..Default::default()
    });
    let c = Arc::new(app.connect([("userName", "a")]).await.unwrap());
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<Sleep>(150).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.call::<Hello>(Named { name: "x".into() }).await.unwrap();
    assert!(
        slow.is_finished(),
        "in sequential mode the second call waits for the first"
    );
    let frames = c.frames();
    let first = frames
        .iter()
        .position(|f| f.contains(r#""payload":150"#))
        .unwrap();
    let second = frames.iter().position(|f| f.contains("greets")).unwrap();
    assert!(first < second);
}

#[tokio::test]
async fn flood_of_protocol_errors_closes_1008() {
    let app = app_with(ServerConfig {
        max_protocol_errors: 5,
        ..Default::default()
    });
    let bad = app.connect([("userName", "a")]).await.unwrap();
    let good = app.connect([("userName", "b")]).await.unwrap();
    for _ in 0..6 {
        bad.send_raw("garbage").unwrap();
    }
    let close = bad.closed().await.unwrap().expect("a close frame");
    assert_eq!(close.code, 1008);
    assert_eq!(app.server().stats().flood_closes, 1);
    good.call::<Hello>(Named { name: "x".into() })
        .await
        .unwrap();
}

#[tokio::test]
async fn oversize_message_closes_1009() {
    let app = app_with(ServerConfig {
        max_message_bytes: 1000,
        ..Default::default()
    });
    let c = app.connect([("userName", "a")]).await.unwrap();
    let other = app.connect([("userName", "b")]).await.unwrap();
    c.send_raw(format!(
        r#"{{"type":"hello","payload":{{"name":"{}"}}}}"#,
        "x".repeat(2000)
    ))
    .unwrap();
    assert_eq!(c.closed().await.unwrap().unwrap().code, 1009);
    other
        .call::<Hello>(Named { name: "x".into() })
        .await
        .unwrap();
}

#[tokio::test]
async fn slow_consumer_is_closed_1013_and_others_keep_receiving() {
    let app = app_with(ServerConfig {
        outbound_queue: 8,
        ..Default::default()
    });
    let stuck = app
        .connect_with(
            [("userName", "stuck")],
            ConnectOptions {
                read: false,
                socket_buffer: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let fine = app.connect([("userName", "fine")]).await.unwrap();
    stuck.emit::<Flood>(100).unwrap();
    fine.call::<Flood>(5).await.unwrap();
    for i in 0..5 {
        assert_eq!(fine.next::<Mine>().await.unwrap(), i);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.server().stats().slow_consumer_closes == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = app.server().stats();
    assert_eq!(s.slow_consumer_closes, 1);
    assert!(s.frames_dropped >= 1);
}

#[tokio::test]
async fn drop_frame_policy_keeps_the_connection_and_counts() {
    let config = ServerConfig {
        outbound_queue: 4,
        slow_consumer: SlowConsumerPolicy::DropFrame,
        ..Default::default()
    };
    let app = app_with(config);
    let c = app
        .connect_with(
            [("userName", "a")],
            ConnectOptions {
                socket_buffer: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.call::<Flood>(500).await.unwrap();
    let s = app.server().stats();
    assert!(s.frames_dropped > 0, "{s:?}");
    assert_eq!(s.slow_consumer_closes, 0);
    assert_eq!(
        c.call::<Hello>(Named { name: "x".into() }).await.unwrap(),
        "a greets x"
    );
}

#[tokio::test]
async fn peer_that_stops_answering_pings_is_dropped_and_hook_runs_once() {
    let config = ServerConfig {
        heartbeat_interval: Some(Duration::from_millis(50)),
        heartbeat_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let app = app_with(config);
    let alive = app.connect([("userName", "alive")]).await.unwrap();
    let dead = app
        .connect_with(
            [("userName", "counted-dead")],
            ConnectOptions {
                answer_pings: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.server().stats().heartbeat_timeouts == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.server().stats().heartbeat_timeouts, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(disconnects("counted-dead"), 1);
    assert_eq!(app.server().stats().connections_open, 1);
    // the live client answered its pings for six intervals and is still served
    assert_eq!(
        alive
            .call::<Hello>(Named { name: "x".into() })
            .await
            .unwrap(),
        "alive greets x"
    );
    drop(dead);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_then_closes_1001_and_refuses_new() {
    let app = app();
    let c = Arc::new(app.connect([("userName", "counted-shut")]).await.unwrap());
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<Sleep>(200).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    app.server().shutdown().await;
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the in-flight call completes"
    );
    assert_eq!(
        c.closed().await.unwrap(),
        Some(CloseFrame {
            code: 1001,
            reason: "server shutting down".into()
        })
    );
    assert_eq!(disconnects("counted-shut"), 1);
    assert_eq!(
        app.connect([("userName", "late")]).await.unwrap_err(),
        HandshakeError::ShuttingDown
    );
}

#[tokio::test]
async fn client_close_runs_hook_and_frees_rooms() {
    let app = app();
    let c = app.connect([("userName", "counted-close")]).await.unwrap();
    c.call::<Join>("room".into()).await.unwrap();
    c.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.server().stats().connections_open > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.server().stats().connections_open, 0);
    assert_eq!(disconnects("counted-close"), 1);
}

#[tokio::test]
async fn server_handle_sends_from_outside_handlers() {
    let app = app();
    let a = app.connect([("userName", "a")]).await.unwrap();
    let b = app.connect([("userName", "b")]).await.unwrap();
    b.call::<Join>("z".into()).await.unwrap();
    let h = app.server().handle();
    assert_eq!(h.send::<Said>("all".into()).broadcast().queued, 2);
    assert_eq!(h.send::<Said>("room".into()).to_room("z").queued, 1);
    assert_eq!(h.send::<Said>("one".into()).to(a.client_id()).queued, 1);
    assert_eq!(h.send::<Said>("nobody".into()).to("unknown-id").queued, 0);
    assert_eq!(a.next::<Said>().await.unwrap(), "all");
    assert_eq!(a.next::<Said>().await.unwrap(), "one");
    assert_eq!(b.next::<Said>().await.unwrap(), "all");
    assert_eq!(b.next::<Said>().await.unwrap(), "room");
    assert_eq!(h.rooms_of(&b.client_id()), vec!["z".to_string()]);
}

#[test]
#[should_panic(expected = "registered twice")]
fn duplicate_registration_panics_at_build_time() {
    let _ = Router::<User>::new()
        .on::<Unit>(|_cx: Cx<User>, _v: Value| async { Ok::<_, Reject>(()) })
        .on::<Unit>(|_cx: Cx<User>, _v: Value| async { Ok::<_, Reject>(()) });
}

#[test]
#[should_panic(expected = "reserved")]
fn reserved_names_panic_at_build_time() {
    message!(Reserved, "__rpc_res", Value, ());
    let _ = Router::<User>::new()
        .on::<Reserved>(|_cx: Cx<User>, _v: Value| async { Ok::<_, Reject>(()) });
}

#[tokio::test]
async fn origin_allow_list_is_checked_before_anything_else() {
    let config = ServerConfig {
        allowed_origins: Some(vec!["https://app.example".into()]),
        ..Default::default()
    };
    let app = app_with(config);
    let origin = |o: &str| ConnectOptions {
        http_headers: vec![("Origin".into(), o.into())],
        ..Default::default()
    };
    // Refused before the headers are even parsed (the role is invalid too) and before connect.
    let e = app
        .connect_with([("role", "king")], origin("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(e.body().contains(r#""error":"FORBIDDEN""#), "{}", e.body());
    let ok = app
        .connect_with([("userName", "a")], origin("https://app.example"))
        .await
        .unwrap();
    assert_eq!(
        ok.call::<Hello>(Named { name: "x".into() }).await.unwrap(),
        "a greets x"
    );
    // Non-browser clients send no Origin and are allowed.
    app.connect([("userName", "cli")]).await.unwrap();
}
