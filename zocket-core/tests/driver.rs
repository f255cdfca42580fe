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
message!(BoomEarly, "boom.early", Value, ());
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
static DISCONNECTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Wait (an event, not a sleep) until the disconnect hook ran `n` times for `name`.
async fn wait_disconnects(name: &str, n: usize) {
    loop {
        let notified = DISCONNECTED.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if disconnects(name) >= n {
            return;
        }
        tokio::time::timeout(Duration::from_secs(30), notified)
            .await
            .expect("the disconnect hook did not run");
    }
}

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
        DISCONNECTED.notify_waiters();
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
            cx.rooms().join(&room)?;
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
        // Panics while making its future, not in it.
        .on::<BoomEarly>(
            |_cx: Cx<User>, _v: Value| -> std::future::Ready<Result<(), Reject>> {
                panic!("secret panic text, early")
            },
        )
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

/// A frame of the common shape is read by the fast path, one with an escaped key by
/// the full decoder: both get the same answer, whatever the payload (valid, invalid JSON
/// inside, the wrong type) and whether the message exists. Invalid JSON in a payload
/// is a malformed frame (`BAD_REQUEST`, and without a readable rpcId an `__error`), not
/// `INVALID_INPUT`, and not `NOT_FOUND` for an unknown type.
#[tokio::test]
async fn the_fast_and_the_full_frame_decoder_answer_alike() {
    let app = app();
    let c = app.connect([("userName", "a")]).await.unwrap();
    let mut n = 0;
    for kind in ["hello", "nope", "sleep"] {
        for payload in [
            "0x",
            "0\u{fffd}",
            "1 2",
            r#"{"name":"x"}"#,
            r#"{"name":tru}"#,
            r#"{"name":"x",}"#,
            r#"{"name":"\q"}"#,
            r#"{"name":"a	b"}"#,
            r#"{"name":3}"#,
            r#"[1,2}"#,
            "-",
            "null",
            r#"{"name":"x"},"extra":1"#,
            r#"1,"rpcId":"shadow""#,
        ] {
            let mut answers = Vec::new();
            for key in ["type", "typ\\u0065"] {
                n += 1;
                let id = format!("r{n}");
                c.send_raw(format!(
                    r#"{{"{key}":"{kind}","payload":{payload},"rpcId":"{id}"}}"#
                ))
                .unwrap();
                // Then a call that answers for sure: everything before it has been
                // answered (frames are answered in order here).
                let mark = c.call::<Hello>(Named { name: id.clone() }).await.unwrap();
                let frames = c.frames();
                let at = frames.iter().rposition(|f| f.contains(&mark)).unwrap();
                let before: Vec<String> = frames[..at]
                    .iter()
                    .rev()
                    .take_while(|f| !f.contains("greets"))
                    .filter(|f| !f.contains("__welcome"))
                    // The escaped key is longer: serde's column differs.
                    .map(|f| {
                        let f = f.replace(&id, "ID");
                        match f.find(" column ") {
                            Some(at) => f[..at].to_owned(),
                            None => f,
                        }
                    })
                    .collect();
                answers.push(before);
            }
            assert_eq!(answers[0], answers[1], "{kind} {payload}");
            let answer = answers[0].concat();
            if payload.contains("tru")
                || payload.contains(",}")
                || payload.contains("\\q")
                || payload.contains('\t')
                || ["[1,2}", "-", "0x", "0\u{fffd}", "1 2"].contains(&payload)
            {
                assert!(answer.contains("BAD_REQUEST"), "{kind} {payload}: {answer}");
                assert!(answer.starts_with(r#"{"type":"__error""#), "{answer}");
            }
        }
    }
    // A member after the payload: the fast path leaves the frame to the full decoder,
    // which ignores the member (as v1 does) and dispatches the payload.
    c.send_raw(r#"{"type":"hello","payload":{"name":"z"},"extra":1,"rpcId":"x1"}"#)
        .unwrap();
    let reply = c
        .wait_frame(|f| f.contains(r#""rpcId":"x1""#))
        .await
        .unwrap();
    assert!(reply.contains(r#""payload":"a greets z""#), "{reply}");
}

/// The handler time limit, in virtual time: a handler past it is answered `TIMEOUT`
/// (and abandoned), one within it answers, and the connection goes on.
#[tokio::test(start_paused = true)]
async fn a_handler_past_its_time_limit_is_answered_timeout() {
    let app = app_with(ServerConfig::default().handler_timeout(Duration::from_millis(50)));
    let c = app.connect([("userName", "a")]).await.unwrap();
    let err = c.call::<Sleep>(10_000).await.unwrap_err();
    assert_eq!(err.code(), Some("TIMEOUT"), "{err}");
    assert_eq!(c.call::<Sleep>(10).await.unwrap(), 10);
    assert_eq!(
        c.call::<Hello>(Named { name: "b".into() }).await.unwrap(),
        "a greets b"
    );
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
    // A handler that panics before its future exists is answered the same way.
    let err = a.call::<BoomEarly>(json!({})).await.unwrap_err();
    assert_eq!(err.code(), Some("INTERNAL"));
    assert!(!err.to_string().contains("secret"), "{err}");
    assert_eq!(
        a.call::<Hello>(Named { name: "c".into() }).await.unwrap(),
        "a greets c"
    );
    assert_eq!(app.server().stats().handler_panics, 3);
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
async fn strictly_sequential_mode_runs_one_at_a_time() {
    let app = app_with(ServerConfig::default().max_in_flight(1));
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
    let app = app_with(
        ServerConfig::default().protocol_errors(zocket_core::ProtocolErrorLimit {
            max: 5,
            ..Default::default()
        }),
    );
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
    let app = app_with(ServerConfig::default().max_message_bytes(1000));
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

// Issue 7 changed this test: a client's own events (`Flood` sends to itself) no longer
// make it a slow consumer (reading pauses instead), so the events that overflow the
// stuck client here are pushed by others (the server handle), as in a room fan-out.
#[tokio::test]
async fn slow_consumer_is_closed_1013_and_others_keep_receiving() {
    let app = app_with(ServerConfig::default().outbound_queue(8));
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
    let h = app.server().handle();
    for i in 0..30 {
        let _ = h.send::<Mine>(i).broadcast();
        // Let the drivers and the reading client run, as a real fan-out would.
        tokio::task::yield_now().await;
    }
    for i in 0..30 {
        assert_eq!(fine.next::<Mine>().await.unwrap(), i);
    }
    let s = app.server().stats();
    assert_eq!(s.slow_consumer_closes, 1);
    assert!(s.frames_dropped >= 1);
    drop(stuck);
}

// Issue 7 changed this test: a client's own events are never dropped (before, its own
// `Flood` overflowed its queue); events pushed by others are, under `DropFrame`.
#[tokio::test]
async fn drop_frame_policy_keeps_the_connection_and_counts() {
    let config = ServerConfig::default()
        .outbound_queue(4)
        .slow_consumer(SlowConsumerPolicy::DropFrame);
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
    for i in 0..500 {
        assert_eq!(
            c.next::<Mine>().await.unwrap(),
            i,
            "own events are all delivered"
        );
    }
    assert_eq!(app.server().stats().frames_dropped, 0);
    let h = app.server().handle();
    let dropped: usize = (0..500)
        .map(|i| h.send::<Mine>(i).to(c.client_id()).dropped)
        .sum();
    assert!(dropped > 0);
    let s = app.server().stats();
    assert_eq!(s.frames_dropped, dropped as u64, "{s:?}");
    assert_eq!(s.slow_consumer_closes, 0);
    assert_eq!(
        c.call::<Hello>(Named { name: "x".into() }).await.unwrap(),
        "a greets x"
    );
}

#[tokio::test(start_paused = true)]
async fn peer_that_stops_answering_pings_is_dropped_and_hook_runs_once() {
    let config = ServerConfig::default().heartbeat(zocket_core::Heartbeat::new(
        Duration::from_millis(50),
        Duration::from_millis(50),
    ));
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
    let t0 = tokio::time::Instant::now();
    // Dropped without a close frame: nobody would read it.
    assert_eq!(dead.closed().await.unwrap(), None);
    let elapsed = t0.elapsed();
    assert!(
        (Duration::from_millis(100)..=Duration::from_millis(102)).contains(&elapsed),
        "first ping + timeout: {elapsed:?}"
    );
    wait_disconnects("counted-dead", 1).await;
    assert_eq!(app.server().stats().heartbeat_timeouts, 1);
    assert_eq!(app.server().stats().connections_open, 1);
    // The live client answers its pings and is still served, many intervals later.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        alive
            .call::<Hello>(Named { name: "x".into() })
            .await
            .unwrap(),
        "alive greets x"
    );
    assert_eq!(disconnects("counted-dead"), 1, "the hook ran once");
    assert_eq!(app.server().stats().heartbeat_timeouts, 1);
}

#[tokio::test(start_paused = true)]
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
    // The server answers the close frame with its own.
    assert_eq!(c.closed().await.unwrap().map(|f| f.code), Some(1000));
    wait_disconnects("counted-close", 1).await;
    assert_eq!(
        app.server().handle().rooms_of(&c.client_id()),
        Vec::<String>::new()
    );
    assert_eq!(app.server().stats().connections_open, 0);
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
    let config = ServerConfig::default().allowed_origins(Some(vec!["https://app.example".into()]));
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

// ---- issue 7: the engine through its public seam (`Accepted::serve`), in virtual time ----

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use futures::channel::mpsc as fmpsc;
use futures::{SinkExt, StreamExt};
use zocket_core::protocol::TransportError;
use zocket_core::{CloseReason, HandshakeRequest, PingReplies, RateLimit};

type Inbound = Result<WsFrame, TransportError>;

/// A connection driven through `Accepted::serve` over in-memory channels: the test is
/// the peer.
struct Raw {
    tx: fmpsc::UnboundedSender<Inbound>,
    rx: fmpsc::Receiver<WsFrame>,
    /// Items the server took from its stream.
    read: Arc<AtomicUsize>,
    done: tokio::task::JoinHandle<CloseReason>,
}

async fn raw(server: &Server<User>, name: &str, sink_capacity: usize) -> Raw {
    raw_with(server, name, sink_capacity, PingReplies::Transport).await
}

async fn raw_with(
    server: &Server<User>,
    name: &str,
    sink_capacity: usize,
    replies: PingReplies,
) -> Raw {
    let accepted = server
        .handshake(HandshakeRequest::new("/").query(format!("userName={name}")))
        .await
        .unwrap()
        .ping_replies(replies);
    let (tx, stream) = fmpsc::unbounded::<Inbound>();
    let (sink, rx) = fmpsc::channel::<WsFrame>(sink_capacity);
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let stream = stream.inspect(move |_| {
        counter.fetch_add(1, Relaxed);
    });
    let done = tokio::spawn(accepted.serve(stream, sink));
    Raw { tx, rx, read, done }
}

impl Raw {
    fn send(&self, text: impl Into<String>) {
        self.tx
            .unbounded_send(Ok(WsFrame::Text(zocket_core::protocol::Text::from(
                text.into(),
            ))))
            .unwrap();
    }
    fn send_frame(&self, frame: Inbound) {
        self.tx.unbounded_send(frame).unwrap();
    }
    /// Read until the server's close frame; the text frames before it.
    async fn until_close(&mut self) -> (Vec<String>, CloseFrame) {
        let mut texts = Vec::new();
        loop {
            match self
                .rx
                .next()
                .await
                .expect("the sink ended before a close frame")
            {
                WsFrame::Text(t) => texts.push(t.as_str().to_owned()),
                WsFrame::Close(Some(c)) => return (texts, c),
                _ => {}
            }
        }
    }
}

fn server_with(config: ServerConfig) -> Server<User> {
    Server::builder(router()).config(config).build()
}

fn call(name: &str, payload: &str, rpc_id: usize) -> String {
    format!(r#"{{"type":"{name}","payload":{payload},"rpcId":"{rpc_id}"}}"#)
}

/// The client of issue 7's report: 5000 calls pipelined in one burst, read by a client
/// that is slower than the server but keeps reading. Every call is answered exactly
/// once; the server pauses reading (backpressure) instead of closing.
#[tokio::test(start_paused = true)]
async fn pipelined_burst_of_5000_calls_with_a_slow_reader_gets_every_reply_exactly_once() {
    for budget in [16 * 1024, ServerConfig::default().outbound_budget] {
        let server = server_with(ServerConfig::default().outbound_budget(budget));
        let mut c = raw(&server, "burst", 4).await;
        for i in 0..5000 {
            c.send(call("hello", r#"{"name":"x"}"#, i));
        }
        let mut seen = vec![0u32; 5000];
        let mut replies = 0;
        let mut frames = 0;
        while replies < 5000 {
            let WsFrame::Text(t) = c.rx.next().await.unwrap() else {
                continue;
            };
            frames += 1;
            if frames % 100 == 0 {
                // Slow, but reading.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "__rpc_res" {
                let id: usize = v["rpcId"].as_str().unwrap().parse().unwrap();
                assert_eq!(v["payload"], "burst greets x");
                seen[id] += 1;
                replies += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "each reply exactly once");
        let s = server.stats();
        assert_eq!(s.frames_dropped, 0, "{s:?}");
        assert_eq!(s.slow_consumer_closes, 0);
        if budget == 16 * 1024 {
            assert!(s.read_pauses > 0, "the small budget pauses reading: {s:?}");
        }
        c.send_frame(Ok(WsFrame::Close(None)));
        assert_eq!(c.done.await.unwrap(), CloseReason::ClientClosed(None));
    }
}

/// The same burst through the public test harness with the default configuration.
#[tokio::test(start_paused = true)]
async fn pipelined_burst_of_5000_calls_through_the_harness() {
    let app = app();
    let c = app
        .connect_with(
            [("userName", "h")],
            ConnectOptions {
                socket_buffer: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for i in 0..5000 {
        c.send_raw(call("hello", r#"{"name":"y"}"#, i)).unwrap();
    }
    c.wait_frame(|f| f.contains(r#""rpcId":"4999""#))
        .await
        .unwrap();
    let frames = c.frames();
    let replies: Vec<_> = frames.iter().filter(|f| f.contains("__rpc_res")).collect();
    assert_eq!(replies.len(), 5000);
    for (i, f) in replies.iter().enumerate() {
        assert!(
            f.ends_with(&format!(r#""rpcId":"{i}"}}"#)),
            "in request order: {f}"
        );
    }
    assert_eq!(app.server().stats().slow_consumer_closes, 0);
}

/// Events a client's own handler sends to itself count as its own frames: over the
/// budget they pause reading, never a 1013, never dropped.
#[tokio::test(start_paused = true)]
async fn own_events_over_the_budget_pause_reading_and_all_arrive() {
    let app = app_with(
        ServerConfig::default()
            .outbound_budget(8 * 1024)
            .outbound_queue(8),
    );
    let c = app
        .connect_with(
            [("userName", "own")],
            ConnectOptions {
                socket_buffer: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.emit::<Flood>(3000).unwrap();
    c.call::<Flood>(2000).await.unwrap();
    for i in 0..3000 {
        assert_eq!(c.next::<Mine>().await.unwrap(), i);
    }
    for i in 0..2000 {
        assert_eq!(c.next::<Mine>().await.unwrap(), i);
    }
    let s = app.server().stats();
    assert_eq!((s.frames_dropped, s.slow_consumer_closes), (0, 0), "{s:?}");
}

/// Pushed events of others over the budget: 1013 for the one that does not read, with
/// its counters, while the reading members of the room get every event.
#[tokio::test(start_paused = true)]
async fn pushed_events_over_the_byte_budget_close_a_non_reader_1013() {
    let server = server_with(
        ServerConfig::default()
            .outbound_budget(4096)
            .close_timeout(Duration::from_secs(2)),
    );
    let mut stuck = raw(&server, "stuck", 1).await;
    let app = TestServer::from_server(server.clone());
    let fine = app.connect([("userName", "fine")]).await.unwrap();
    stuck.send(call("join", r#""room""#, 1));
    fine.call::<Join>("room".into()).await.unwrap();
    // `fine` posts to the room: its own events for itself, pushed events for `stuck`.
    for i in 0..100 {
        fine.call::<Say>(("room".into(), format!("message {i:03} {}", "x".repeat(100))))
            .await
            .unwrap();
    }
    for i in 0..100 {
        assert!(
            fine.next::<Said>()
                .await
                .unwrap()
                .starts_with(&format!("message {i:03}"))
        );
    }
    let s = server.stats();
    assert_eq!(s.slow_consumer_closes, 1, "{s:?}");
    assert!(s.frames_dropped > 0);
    // The stuck client never reads: the close frame cannot be written, and the closing
    // sequence gives up at the close timeout (virtual time).
    assert_eq!(stuck.done.await.unwrap(), CloseReason::SlowConsumer);
    // What it had buffered: the welcome, then frames, never more than the budget allows.
    let mut buffered = 0;
    while stuck.rx.try_recv().is_ok() {
        buffered += 1;
    }
    assert!(buffered <= 3, "{buffered}");
}

/// A flood of bad frames from a client that keeps sending: it receives 1008 with its
/// reason, because the server keeps reading (and discarding) until the client's close.
#[tokio::test(start_paused = true)]
async fn flood_while_still_sending_receives_1008_and_the_server_drains_until_the_close() {
    let server = server_with(ServerConfig::default().protocol_errors(
        zocket_core::ProtocolErrorLimit {
            max: 5,
            ..Default::default()
        },
    ));
    let mut c = raw(&server, "flooder", 64).await;
    for _ in 0..2000 {
        c.send("garbage");
    }
    let (texts, close) = c.until_close().await;
    assert_eq!(
        close,
        CloseFrame {
            code: 1008,
            reason: "too many protocol errors".into()
        }
    );
    assert!(texts.len() >= 6, "the error frames come before the close");
    // Still sending after the close frame: the server reads on, and ends with our close.
    for _ in 0..500 {
        c.send("more garbage");
    }
    c.send_frame(Ok(WsFrame::Close(Some(CloseFrame {
        code: 1008,
        reason: "".into(),
    }))));
    assert_eq!(c.done.await.unwrap(), CloseReason::ProtocolErrors);
    assert_eq!(c.read.load(Relaxed), 2000 + 500 + 1, "everything was read");
    assert!(c.rx.next().await.is_none(), "the sink was closed");
    assert_eq!(server.stats().close_timeouts, 0);
    assert_eq!(server.stats().flood_closes, 1);
}

/// An oversize message followed by more frames: 1009, the rest discarded (oversize ones
/// included), the sink closed after the client's close.
#[tokio::test(start_paused = true)]
async fn oversize_then_more_frames_receives_1009() {
    let server = server();
    let mut c = raw(&server, "big", 64).await;
    c.send_frame(Err(TransportError::MessageTooBig));
    for i in 0..100 {
        c.send(call("hello", r#"{"name":"x"}"#, i));
        c.send_frame(Err(TransportError::MessageTooBig));
    }
    let (texts, close) = c.until_close().await;
    assert_eq!((close.code, &*close.reason), (1009, "message too big"));
    assert!(
        texts.iter().all(|t| !t.contains("__rpc_res")),
        "nothing after it is dispatched"
    );
    c.send_frame(Ok(WsFrame::Close(None)));
    assert_eq!(c.done.await.unwrap(), CloseReason::MessageTooBig);
    assert_eq!(c.read.load(Relaxed), 202);
    assert_eq!(server.stats().oversize_closes, 1);
}

fn server() -> Server<User> {
    server_with(ServerConfig::default())
}

/// A peer that never answers the close frame: the sequence ends at the close timeout,
/// the sink is closed anyway.
#[tokio::test(start_paused = true)]
async fn close_timeout_ends_a_peer_that_never_answers_the_close() {
    let server = server_with(
        ServerConfig::default()
            .protocol_errors(zocket_core::ProtocolErrorLimit {
                max: 0,
                ..Default::default()
            })
            .close_timeout(Duration::from_secs(3)),
    );
    let mut c = raw(&server, "mute", 64).await;
    c.send("garbage");
    let t0 = tokio::time::Instant::now();
    let (_, close) = c.until_close().await;
    assert_eq!(close.code, 1008);
    assert_eq!(c.done.await.unwrap(), CloseReason::ProtocolErrors);
    let elapsed = t0.elapsed();
    assert!(
        (Duration::from_secs(3)..Duration::from_millis(3010)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(c.rx.next().await.is_none(), "the sink was closed");
    assert_eq!(server.stats().close_timeouts, 1);
    drop(c.tx);
}

/// Over the message rate: 1008 `rate limit`.
#[tokio::test(start_paused = true)]
async fn message_rate_over_the_limit_closes_1008_rate_limit() {
    let app = app_with(ServerConfig::default().message_rate(Some(RateLimit {
        per_second: 1,
        burst: 10,
    })));
    let c = app.connect([("userName", "fast")]).await.unwrap();
    for _ in 0..11 {
        c.emit::<Unit>(json!(null)).unwrap();
    }
    let close = c.closed().await.unwrap().unwrap();
    assert_eq!((close.code, &*close.reason), (1008, "rate limit"));
    assert_eq!(app.server().stats().rate_limit_closes, 1);
    // Within the rate, a client is never closed.
    let slow = app.connect([("userName", "steady")]).await.unwrap();
    for _ in 0..30 {
        slow.call::<Unit>(json!(null)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(app.server().stats().rate_limit_closes, 1);
}

/// A peer that sends pings and never reads: the pongs it is owed fill the budget, reading
/// pauses (so the server stops taking its pings), and the heartbeat drops it.
#[tokio::test(start_paused = true)]
async fn never_reading_pinger_is_bounded_and_dropped() {
    for replies in [PingReplies::Transport, PingReplies::Engine] {
        let server = server_with(
            ServerConfig::default().heartbeat(zocket_core::Heartbeat::new(
                Duration::from_secs(10),
                Duration::from_secs(5),
            )),
        );
        let c = raw_with(&server, "pinger", 1, replies).await;
        // A few frames of its own fill its (never read) socket.
        c.send(call("flood", "10", 1));
        for _ in 0..100_000 {
            c.send_frame(Ok(WsFrame::Ping(bytes::Bytes::from_static(b"0123456789"))));
        }
        let t0 = tokio::time::Instant::now();
        assert_eq!(c.done.await.unwrap(), CloseReason::HeartbeatTimeout);
        assert_eq!(t0.elapsed(), Duration::from_secs(15), "{replies:?}");
        let read = c.read.load(Relaxed);
        let budget = ServerConfig::default().outbound_budget;
        assert!(
            read <= budget / zocket_core::hub::FRAME_OVERHEAD + 64,
            "{replies:?}: read {read} pings"
        );
        assert!(server.stats().read_pauses >= 1);
    }
}

/// A client whose socket is full is dropped by the heartbeat even though its ping can
/// never be written; pongs it sends unasked do not keep it alive.
#[tokio::test(start_paused = true)]
async fn heartbeat_drops_a_peer_whose_writes_are_stuck() {
    let server = server_with(
        ServerConfig::default().heartbeat(zocket_core::Heartbeat::new(
            Duration::from_secs(10),
            Duration::from_secs(5),
        )),
    );
    let c = raw(&server, "full", 1).await;
    // Its own events fill the (never read) socket.
    c.send(call("flood", "50", 1));
    let t0 = tokio::time::Instant::now();
    let tx = c.tx.clone();
    let pongs = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if tx
                .unbounded_send(Ok(WsFrame::Pong(bytes::Bytes::new())))
                .is_err()
            {
                return;
            }
        }
    });
    assert_eq!(c.done.await.unwrap(), CloseReason::HeartbeatTimeout);
    assert_eq!(t0.elapsed(), Duration::from_secs(15));
    pongs.abort();
}

/// Wait until the server has taken `n` items from the raw connection's stream (each is
/// dispatched in the same poll that reads it).
async fn until_read(c: &Raw, n: usize) {
    while c.read.load(Relaxed) < n {
        tokio::task::yield_now().await;
    }
}

/// The engine queues its answers without the shared queue, and they keep their place:
/// an event pushed by somebody else while frames back up (the client is not reading)
/// goes before the reply of a message read after it, and the events a handler sends to
/// itself go before its reply.
#[tokio::test(start_paused = true)]
async fn answers_keep_their_place_behind_queued_events() {
    let server = server_with(ServerConfig::default());
    let mut c = raw(&server, "order", 1).await;
    let WsFrame::Text(welcome) = c.rx.next().await.unwrap() else {
        panic!("no welcome")
    };
    let welcome: Value = serde_json::from_str(welcome.as_str()).unwrap();
    let id = welcome["payload"]["clientId"].as_str().unwrap().to_owned();
    // Replies back up: the sink takes one or two, the rest wait in the engine.
    for i in 1..=5 {
        c.send(call("hello", r#"{"name":"x"}"#, i));
    }
    until_read(&c, 5).await;
    let queued = server
        .handle()
        .send::<Said>("E".into())
        .to(id.as_str())
        .queued;
    assert_eq!(queued, 1);
    c.send(call("hello", r#"{"name":"x"}"#, 6));
    c.send(call("flood", "3", 7));
    until_read(&c, 7).await;
    let mut got = Vec::new();
    while got.len() < 11 {
        let WsFrame::Text(t) = c.rx.next().await.unwrap() else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        got.push(match v["type"].as_str().unwrap() {
            "__rpc_res" => format!("reply {}", v["rpcId"].as_str().unwrap()),
            "said" => format!("said {}", v["payload"].as_str().unwrap()),
            "mine" => format!("mine {}", v["payload"]),
            other => panic!("unexpected frame {other}"),
        });
    }
    assert_eq!(
        got,
        [
            "reply 1", "reply 2", "reply 3", "reply 4", "reply 5", "said E", "reply 6", "mine 0",
            "mine 1", "mine 2", "reply 7"
        ]
    );
    let s = server.stats();
    assert_eq!(s.messages_in, 7, "{s:?}");
    assert_eq!(
        s.frames_queued,
        1 + 11,
        "the welcome and every frame above: {s:?}"
    );
}

/// The in-flight limit pauses reading: with 2 handlers waiting, the third message is not
/// read until one finishes.
#[tokio::test(start_paused = true)]
async fn in_flight_limit_pauses_reading_until_a_handler_finishes() {
    let server = server_with(ServerConfig::default().max_in_flight(2));
    let mut c = raw(&server, "busy", 64).await;
    c.send(call("sleep", "1000", 1));
    c.send(call("sleep", "1000", 2));
    c.send(call("hello", r#"{"name":"x"}"#, 3));
    let welcome = c.rx.next().await.unwrap();
    assert!(matches!(welcome, WsFrame::Text(_)));
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert_eq!(c.read.load(Relaxed), 2, "the third waits");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let WsFrame::Text(t) = c.rx.next().await.unwrap() else {
            panic!()
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        ids.push(v["rpcId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids, ["1", "2", "3"]);
    assert_eq!(c.read.load(Relaxed), 3);
}

#[test]
fn size_of_a_connection_future() {
    // Noted in the report; not asserted beyond a loose bound (memory is measured in the
    // idle benchmark, where tungstenite's buffers dominate).
    let server = server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let accepted = server.handshake(HandshakeRequest::default()).await.unwrap();
        let (_tx, stream) = fmpsc::unbounded::<Inbound>();
        let (sink, _rx) = fmpsc::channel::<WsFrame>(1);
        let fut = accepted.serve(stream, sink.sink_map_err(|e| e.to_string()));
        let size = std::mem::size_of_val(&fut);
        println!("size_of serve future = {size} B");
        assert!(size < 1024, "{size}");
    });
}

/// A server-side disconnect (by id, through the hub) runs the same closing sequence:
/// the code and reason reach a client that is still sending, and the hook sees them.
#[tokio::test(start_paused = true)]
async fn disconnect_by_id_closes_with_its_code_while_the_client_keeps_sending() {
    let server = server();
    let mut c = raw(&server, "kicked", 64).await;
    let WsFrame::Text(welcome) = c.rx.next().await.unwrap() else {
        panic!("no welcome")
    };
    let v: Value = serde_json::from_str(welcome.as_str()).unwrap();
    let id = zocket_core::ClientId::from(v["payload"]["clientId"].as_str().unwrap());
    for i in 0..100 {
        c.send(call("hello", r#"{"name":"x"}"#, i));
    }
    assert!(
        server
            .handle()
            .disconnect(&id, 4001, "kicked")
            .await
            .unwrap()
    );
    for i in 100..200 {
        c.send(call("hello", r#"{"name":"x"}"#, i));
    }
    let (_, close) = c.until_close().await;
    assert_eq!((close.code, &*close.reason), (4001, "kicked"));
    c.send_frame(Ok(WsFrame::Close(Some(close))));
    assert_eq!(
        c.done.await.unwrap(),
        CloseReason::Closed {
            code: 4001,
            reason: "kicked".into()
        }
    );
    assert_eq!(
        c.read.load(Relaxed),
        201,
        "read to the end, the client's close included"
    );
}

/// With `PingReplies::Engine` the engine answers a ping with a pong of the same payload.
#[tokio::test(start_paused = true)]
async fn the_engine_answers_pings_when_the_transport_does_not() {
    let server = server();
    let mut c = raw_with(&server, "pinger", 64, PingReplies::Engine).await;
    c.send_frame(Ok(WsFrame::Ping(bytes::Bytes::from_static(b"hi"))));
    loop {
        match c.rx.next().await.unwrap() {
            WsFrame::Pong(p) => {
                assert_eq!(&p[..], b"hi");
                break;
            }
            WsFrame::Text(_) => {}
            other => panic!("{other:?}"),
        }
    }
    // The transport's default: the engine writes no pong itself.
    let mut t = raw(&server, "other", 64).await;
    t.send_frame(Ok(WsFrame::Ping(bytes::Bytes::from_static(b"hi"))));
    t.send(call("hello", r#"{"name":"x"}"#, 1));
    let _welcome = t.rx.next().await.unwrap();
    assert!(
        matches!(t.rx.next().await.unwrap(), WsFrame::Text(_)),
        "the reply, no pong"
    );
}

/// A connection whose future is dropped before it ended (a runtime shutting down, an
/// adapter giving up on it) leaves nothing behind in the hub or the counts.
#[tokio::test(start_paused = true)]
async fn a_dropped_connection_future_unregisters() {
    let server = server();
    let mut c = raw(&server, "dropped", 64).await;
    let _welcome = c.rx.next().await.unwrap();
    assert_eq!(server.stats().connections_open, 1);
    assert_eq!(server.handle().local_connections(), 1);
    c.done.abort();
    assert!(c.done.await.unwrap_err().is_cancelled());
    assert_eq!(server.stats().connections_open, 0);
    assert_eq!(server.handle().local_connections(), 0);
    assert_eq!(
        disconnects("dropped"),
        0,
        "the async hook cannot run on drop"
    );
}
