//! Plain-function handlers (`Router::on_sync`, `Scope::on_sync`) through the public
//! test harness (the real handshake and connection driver, virtual sockets): they answer,
//! refuse, panic and send events exactly as async handlers do, behind middleware too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use zocket_core::testing::TestServer;
use zocket_core::{Connect, Context, Cx, Event, Input, Message, Middleware, Reject, Router};

struct User;
impl Context for User {
    type Headers = serde_json::Value;
    type State = Calls;
    async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> {
        Ok(User)
    }
}

/// How many times the plain handlers ran.
#[derive(Default)]
struct Calls(AtomicUsize);

enum Add {}
impl Message for Add {
    const NAME: &'static str = "add";
    type Input = (i64, i64);
    type Output = i64;
}
enum Parse {}
impl Message for Parse {
    const NAME: &'static str = "parse";
    type Input = String;
    type Output = i64;
}
enum Boom {}
impl Message for Boom {
    const NAME: &'static str = "boom";
    type Input = ();
    type Output = ();
}
enum Note {}
impl Message for Note {
    const NAME: &'static str = "note";
    type Input = String;
    type Output = ();
}
enum Guarded {}
impl Message for Guarded {
    const NAME: &'static str = "guarded";
    type Input = String;
    type Output = String;
}
enum Noted {}
impl Event for Noted {
    const NAME: &'static str = "noted";
    type Payload = String;
}

/// Middleware that waits (it yields once) and narrows the context to the input's number.
struct Numeric;
impl Middleware<User, Calls> for Numeric {
    type Out = u64;
    async fn run(&self, _cx: &Cx<User, Calls>, input: &Input<'_>) -> Result<u64, Reject> {
        tokio::task::yield_now().await;
        let text = input.get::<Guarded>().cloned().unwrap_or_default();
        text.parse::<u64>()
            .map_err(|_| Reject::forbidden("not a number"))
    }
}

fn router() -> Router<User> {
    Router::new()
        .on_sync::<Add>(|cx: Cx<User, Calls>, (a, b): (i64, i64)| {
            cx.state().0.fetch_add(1, Ordering::Relaxed);
            a.checked_add(b)
                .ok_or_else(|| Reject::bad_request("overflow"))
        })
        // `?` on an ordinary error: answered INTERNAL.
        .on_sync::<Parse>(|_cx, text: String| Ok(text.trim().parse::<i64>()?))
        .on_sync::<Boom>(|_cx, ()| panic!("boom, on purpose"))
        // Events sent by the handler go out before its reply.
        .on_sync::<Note>(|cx: Cx<User, Calls>, text: String| {
            cx.state().0.fetch_add(1, Ordering::Relaxed);
            let _ = cx.reply_event::<Noted>(text);
            Ok(())
        })
        .scope(Numeric, |s| {
            s.on_sync::<Guarded>(|cx: Cx<u64, Calls>, text: String| {
                cx.state().0.fetch_add(1, Ordering::Relaxed);
                Ok(format!("{text}: n={}", *cx))
            })
        })
}

fn server() -> (TestServer<User>, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    (TestServer::with_state(router(), calls.clone()), calls)
}

#[tokio::test]
async fn a_plain_handler_answers_and_refuses_like_an_async_one() {
    let (app, calls) = server();
    let c = app.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    assert_eq!(c.call::<Add>((2, 40)).await.unwrap(), 42);
    let err = c.call::<Add>((i64::MAX, 1)).await.unwrap_err();
    assert_eq!(err.code(), Some("BAD_REQUEST"), "{err:?}");
    let err = c.call::<Parse>("twelve".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("INTERNAL"), "{err:?}");
    assert_eq!(c.call::<Parse>(" 12 ".into()).await.unwrap(), 12);
    // Refused input never reaches the handler.
    c.send_raw(r#"{"type":"add","payload":"two","rpcId":"r1"}"#)
        .unwrap();
    let refused = c
        .wait_frame(|f| f.contains(r#""rpcId":"r1""#))
        .await
        .unwrap();
    assert!(refused.contains("INVALID_INPUT"), "{refused}");
    assert_eq!(calls.0.load(Ordering::Relaxed), 2);
    assert_eq!(app.server().stats().messages_in, 5);
}

#[tokio::test]
async fn a_panic_in_a_plain_handler_is_answered_internal_and_the_connection_goes_on() {
    let (app, _) = server();
    let c = app.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    let err = c.call::<Boom>(()).await.unwrap_err();
    assert_eq!(err.code(), Some("INTERNAL"), "{err:?}");
    assert_eq!(c.call::<Add>((1, 2)).await.unwrap(), 3);
    assert_eq!(app.server().stats().handler_panics, 1);
}

#[tokio::test]
async fn a_plain_handlers_events_go_out_before_its_reply_and_a_message_without_rpc_id_gets_none() {
    let (app, calls) = server();
    let c = app.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    c.call::<Note>("first".into()).await.unwrap();
    let frames = c.frames();
    let event = frames
        .iter()
        .position(|f| f.contains(r#""type":"noted""#))
        .expect("the event arrived");
    let reply = frames
        .iter()
        .position(|f| f.contains("__rpc_res"))
        .expect("the reply arrived");
    assert!(event < reply, "{frames:?}");
    // Without an RPC id: the handler runs, and nothing but its event answers.
    c.emit::<Note>("second".into()).unwrap();
    assert_eq!(c.next::<Noted>().await.unwrap(), "first");
    assert_eq!(c.next::<Noted>().await.unwrap(), "second");
    assert_eq!(calls.0.load(Ordering::Relaxed), 2);
    assert_eq!(c.call::<Add>((1, 1)).await.unwrap(), 2);
    assert_eq!(
        c.frames().iter().filter(|f| f.contains("__rpc_")).count(),
        2,
        "{:?}",
        c.frames()
    );
}

#[tokio::test]
async fn middleware_that_waits_runs_before_a_plain_handler_and_can_refuse() {
    let (app, calls) = server();
    let c = app.connect::<[(&str, &str); 0], _, _>([]).await.unwrap();
    assert_eq!(
        c.call::<Guarded>("7".into()).await.unwrap(),
        "7: n=7".to_owned()
    );
    let err = c.call::<Guarded>("seven".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("FORBIDDEN"), "{err:?}");
    assert_eq!(calls.0.load(Ordering::Relaxed), 1);
}
