//! The `Hub` API beyond delivery, on the in-memory hub: room members and counts,
//! whether a client is connected, disconnect by id (through `ServerHandle`), the
//! one-per-room delivery a distributed hub builds on, and the close-code checks.

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use zocket_core::hub::LocalHub;
use zocket_core::protocol::{self, CloseFrame};
use zocket_core::testing::{TestClient, TestServer};
use zocket_core::{
    ClientId, CloseReason, Connect, Context, Cx, Disconnect, Event, HubError, Message, Reject,
    Router, Server,
};

enum Join {}
impl Message for Join {
    const NAME: &'static str = "join";
    type Input = String;
    type Output = Vec<String>;
}
enum Ping {}
impl Event for Ping {
    const NAME: &'static str = "ping";
    type Payload = u32;
}

#[derive(Deserialize)]
struct Headers {
    name: String,
}
struct User {
    name: String,
}

static REASONS: Mutex<Vec<(String, CloseReason)>> = Mutex::new(Vec::new());

impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        Ok(User {
            name: conn.headers.name,
        })
    }
    async fn disconnect(&self, end: Disconnect<'_, Self>) {
        REASONS
            .lock()
            .unwrap()
            .push((self.name.clone(), end.info.reason.clone()));
    }
}

fn router() -> Router<User> {
    Router::<User>::new().on::<Join>(|cx: Cx<User>, room: String| async move {
        cx.rooms().join(&room)?;
        Ok::<_, Reject>(cx.rooms().current())
    })
}

async fn client(app: &TestServer<User>, name: &str, rooms: &[&str]) -> TestClient {
    let c = app.connect([("name", name)]).await.unwrap();
    for r in rooms {
        c.call::<Join>((*r).to_owned()).await.unwrap();
    }
    c
}

/// Wait (bounded) until the server has unregistered down to `n` connections: the client
/// sees its close before the server's disconnect hook and unregister have run.
async fn until_connections(h: &zocket_core::ServerHandle, n: usize) {
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while h.local_connections() != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("connection count did not reach the expected value");
}

fn sorted(mut v: Vec<ClientId>) -> Vec<ClientId> {
    v.sort();
    v
}

#[tokio::test]
async fn members_member_count_and_is_connected() {
    let app = TestServer::new(router());
    let h = app.server().handle();
    let a = client(&app, "a", &["x", "y"]).await;
    let b = client(&app, "b", &["x"]).await;
    assert_eq!(
        h.members("x").await.unwrap(),
        sorted(vec![a.client_id(), b.client_id()])
    );
    assert_eq!(h.members("y").await.unwrap(), vec![a.client_id()]);
    assert_eq!(h.members("none").await.unwrap(), Vec::<ClientId>::new());
    assert_eq!(h.member_count("x").await.unwrap(), 2);
    assert_eq!(h.member_count("none").await.unwrap(), 0);
    assert!(h.is_connected(&a.client_id()).await.unwrap());
    assert!(!h.is_connected(&ClientId::from("nobody")).await.unwrap());
    assert_eq!(h.local_connections(), 2);

    b.close().await;
    b.closed().await.unwrap();
    until_connections(&h, 1).await;
    assert!(!h.is_connected(&b.client_id()).await.unwrap());
    assert_eq!(h.members("x").await.unwrap(), vec![a.client_id()]);
}

#[tokio::test]
async fn disconnect_by_id_closes_with_the_code_and_reason_and_the_hook_sees_it() {
    let app = TestServer::new(router());
    let h = app.server().handle();
    let a = client(&app, "kick-a", &["x"]).await;
    let b = client(&app, "kick-b", &["x"]).await;
    assert!(h.disconnect(&a.client_id(), 4001, "kicked").await.unwrap());
    assert_eq!(
        a.closed().await.unwrap(),
        Some(CloseFrame {
            code: 4001,
            reason: "kicked".into()
        })
    );
    until_connections(&h, 1).await;
    let reasons = REASONS.lock().unwrap().clone();
    assert!(reasons.contains(&(
        "kick-a".to_owned(),
        CloseReason::Closed {
            code: 4001,
            reason: "kicked".into()
        }
    )));
    // b is untouched and still gets events.
    let _ = h.send::<Ping>(7).to_room("x");
    assert_eq!(b.next::<Ping>().await.unwrap(), 7);
    // Unknown id: nothing to close.
    assert!(
        !h.disconnect(&ClientId::from("nobody"), 1000, "")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn disconnect_refuses_codes_and_reasons_a_close_frame_cannot_carry() {
    let app = TestServer::new(router());
    let h = app.server().handle();
    let a = client(&app, "bad-codes", &[]).await;
    for code in [0, 999, 1005, 1006, 1015, 2999, 5000] {
        assert_eq!(
            h.disconnect(&a.client_id(), code, "").await,
            Err(HubError::InvalidCloseCode(code))
        );
    }
    let long = "x".repeat(124);
    assert_eq!(
        h.disconnect(&a.client_id(), 4000, &long).await,
        Err(HubError::ReasonTooLong(124))
    );
    // Still connected after the refusals.
    assert!(h.is_connected(&a.client_id()).await.unwrap());
    assert!(
        h.disconnect(&a.client_id(), 1000, &"y".repeat(123))
            .await
            .unwrap()
    );
    assert_eq!(a.closed().await.unwrap().map(|c| c.code), Some(1000));
}

#[tokio::test]
async fn deliver_room_once_gives_each_member_of_several_rooms_one_frame() {
    let hub = Arc::new(LocalHub::new());
    let server = Server::builder(router()).hub(hub.clone()).build();
    let app = TestServer::from_server(server);
    let ab = client(&app, "ab", &["a", "b"]).await;
    let b = client(&app, "b-only", &["b"]).await;
    let a = client(&app, "a-only", &["a"]).await;
    let none = client(&app, "none", &[]).await;
    let rooms = vec!["a".to_owned(), "b".to_owned()];
    let frame = protocol::encode_event(Ping::NAME, &1u32).unwrap();
    let d0 = hub.deliver_room_once(&rooms, 0, &frame);
    let d1 = hub.deliver_room_once(&rooms, 1, &frame);
    assert_eq!(d0.queued, 2, "room a: ab and a-only");
    assert_eq!(d1.queued, 1, "room b: b-only (ab had it from room a)");
    assert_eq!(hub.deliver_room_once(&rooms, 2, &frame).queued, 0);
    for c in [&ab, &b, &a] {
        assert_eq!(c.next::<Ping>().await.unwrap(), 1);
    }
    // A marker sent after: whoever got a second copy would see 1 before 2.
    let _ = app.server().handle().send::<Ping>(2).broadcast();
    for c in [&ab, &b, &a, &none] {
        assert_eq!(c.next::<Ping>().await.unwrap(), 2);
    }
    assert_eq!(hub.local_member_count("a"), 2);
    assert!(hub.is_local(&ab.client_id()));
    assert_eq!(
        hub.local_members("b"),
        sorted(vec![ab.client_id(), b.client_id()])
    );
}
