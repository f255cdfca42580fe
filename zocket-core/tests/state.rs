//! Application state: set once on the server builder, reachable in `connect`,
//! `disconnect`, every middleware and every handler, typed, plus a server handle in the
//! connection hooks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use zocket_core::testing::TestServer;
use zocket_core::{
    ClientId, Connect, Context, Cx, Disconnect, Event, HandshakeError, Input, Message, Middleware,
    Reject, Router, Server, ServerHandle,
};

/// The application state: a token table, a counter and who is online.
struct App {
    tokens: HashMap<String, String>,
    calls: AtomicUsize,
    online: Mutex<HashMap<String, ClientId>>,
}

impl App {
    fn new() -> Self {
        Self {
            tokens: [("t-ada", "ada"), ("t-bob", "bob"), ("t-eve", "eve")]
                .into_iter()
                .map(|(t, n)| (t.to_owned(), n.to_owned()))
                .collect(),
            calls: AtomicUsize::new(0),
            online: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Deserialize)]
struct Headers {
    #[serde(default)]
    token: Option<String>,
}

struct User {
    name: String,
    server: ServerHandle,
}

impl Context for User {
    type Headers = Headers;
    type State = App;

    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        let token = conn.headers.token.unwrap_or_default();
        let Some(name) = conn.state.tokens.get(&token) else {
            return Err(Reject::unauthorized("unknown token"));
        };
        let mut online = conn.state.online.lock().unwrap();
        // Tell everyone already online, before this user has sent anything.
        let _ = conn
            .server
            .send::<Joined>(name.clone())
            .to(online.values().cloned().collect::<Vec<_>>());
        online.insert(name.clone(), conn.info.client_id.clone());
        Ok(User {
            name: name.clone(),
            server: conn.server.clone(),
        })
    }

    async fn disconnect(&self, end: Disconnect<'_, Self>) {
        let mut online = end.state.online.lock().unwrap();
        online.remove(&self.name);
        let _ = end
            .server
            .send::<Left>(self.name.clone())
            .to(online.values().cloned().collect::<Vec<_>>());
    }
}

/// Middleware: only names the state knows as admins pass ("ada").
struct Admin {
    name: String,
}
struct RequireAdmin;
impl Middleware<User, App> for RequireAdmin {
    type Out = Admin;
    async fn run(&self, cx: &Cx<User, App>, _: &Input<'_>) -> Result<Admin, Reject> {
        cx.state().calls.fetch_add(1, Ordering::SeqCst);
        if cx.name == "ada" {
            Ok(Admin {
                name: cx.name.clone(),
            })
        } else {
            Err(Reject::forbidden("admins only"))
        }
    }
}

pub enum Count {}
impl Message for Count {
    const NAME: &'static str = "count";
    type Input = ();
    type Output = usize;
}

#[derive(Serialize, Deserialize)]
pub struct DmIn {
    to: String,
    text: String,
}
pub enum Dm {}
impl Message for Dm {
    const NAME: &'static str = "dm";
    type Input = DmIn;
    type Output = bool;
}
pub enum Kick {}
impl Message for Kick {
    const NAME: &'static str = "kick";
    type Input = String;
    type Output = String;
}

pub enum Joined {}
impl Event for Joined {
    const NAME: &'static str = "joined";
    type Payload = String;
}
pub enum Left {}
impl Event for Left {
    const NAME: &'static str = "left";
    type Payload = String;
}
pub enum Private {}
impl Event for Private {
    const NAME: &'static str = "private";
    type Payload = String;
}

async fn count(cx: Cx<User, App>, _: ()) -> Result<usize, Reject> {
    Ok(cx.state().calls.fetch_add(1, Ordering::SeqCst) + 1)
}

/// A private message through the handle kept in the context.
async fn dm(cx: Cx<User, App>, input: DmIn) -> Result<bool, Reject> {
    let target = cx.state().online.lock().unwrap().get(&input.to).cloned();
    Ok(match target {
        Some(id) => {
            let text = format!("{}: {}", cx.name, input.text);
            cx.server.send::<Private>(text).to(id).queued > 0
        }
        None => false,
    })
}

async fn kick(cx: Cx<Admin, App>, who: String) -> Result<String, Reject> {
    let known = cx.state().online.lock().unwrap().contains_key(&who);
    Ok(format!("{} kicks {who} (online: {known})", cx.name))
}

fn router() -> Router<User> {
    Router::new()
        .on::<Count>(count)
        .on::<Dm>(dm)
        .scope(RequireAdmin, |s| s.on::<Kick>(kick))
}

#[tokio::test]
async fn connect_reads_the_state() {
    let app = TestServer::with_state(router(), App::new());
    assert!(app.connect([("token", "t-ada")]).await.is_ok());
    match app.connect([("token", "nope")]).await {
        Err(HandshakeError::Unauthorized(m)) => assert_eq!(m, "unknown token"),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn handlers_and_middleware_share_one_state() {
    let server = Server::builder(router()).state(App::new()).build();
    let app = TestServer::from_server(server.clone());
    let ada = app.connect([("token", "t-ada")]).await.unwrap();
    let bob = app.connect([("token", "t-bob")]).await.unwrap();
    assert_eq!(ada.call::<Count>(()).await.unwrap(), 1);
    assert_eq!(bob.call::<Count>(()).await.unwrap(), 2);
    // The middleware counts too, even when it rejects.
    let err = bob.call::<Kick>("ada".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("FORBIDDEN"));
    assert_eq!(
        ada.call::<Kick>("bob".into()).await.unwrap(),
        "ada kicks bob (online: true)"
    );
    assert_eq!(server.state().calls.load(Ordering::SeqCst), 4);
    assert_eq!(ada.call::<Count>(()).await.unwrap(), 5);
}

#[tokio::test]
async fn a_private_message_reaches_a_user_who_has_not_spoken() {
    let app = TestServer::with_state(router(), App::new());
    let ada = app.connect([("token", "t-ada")]).await.unwrap();
    let bob = app.connect([("token", "t-bob")]).await.unwrap();
    // The connect hook told ada through the server handle; bob has sent nothing yet.
    assert_eq!(ada.next::<Joined>().await.unwrap(), "bob");
    let sent = ada
        .call::<Dm>(DmIn {
            to: "bob".into(),
            text: "hi".into(),
        })
        .await
        .unwrap();
    assert!(sent);
    assert_eq!(bob.next::<Private>().await.unwrap(), "ada: hi");
}

#[tokio::test]
async fn disconnect_gets_the_state_and_a_server_handle() {
    let app = TestServer::with_state(router(), App::new());
    let ada = app.connect([("token", "t-ada")]).await.unwrap();
    let eve = app.connect([("token", "t-eve")]).await.unwrap();
    assert_eq!(ada.next::<Joined>().await.unwrap(), "eve");
    eve.close().await;
    assert_eq!(ada.next::<Left>().await.unwrap(), "eve");
    assert!(
        !app.server()
            .state()
            .online
            .lock()
            .unwrap()
            .contains_key("eve")
    );
}

/// A shared `Arc` can be given as the state, to keep a handle on it outside the server.
#[tokio::test]
async fn the_state_can_be_an_existing_arc() {
    let state = std::sync::Arc::new(App::new());
    let server = Server::builder(router()).state(state.clone()).build();
    let app = TestServer::from_server(server);
    let ada = app.connect([("token", "t-ada")]).await.unwrap();
    ada.call::<Count>(()).await.unwrap();
    assert_eq!(state.calls.load(Ordering::SeqCst), 1);
}
