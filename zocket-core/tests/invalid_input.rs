//! `INVALID_INPUT` names the field (`name`, `items[2].id`) and gives serde's reason
//! without its line and column, for missing fields, wrong types and `validate()` alike.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zocket_core::testing::{TestClient, TestServer};
use zocket_core::{Connect, Context, Cx, Message, Reject, Router};

struct User;
impl Context for User {
    type Headers = Value;
    type State = ();
    async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> {
        Ok(User)
    }
}

#[derive(Serialize, Deserialize)]
pub struct GreetIn {
    name: String,
}
pub enum Greet {}
impl Message for Greet {
    const NAME: &'static str = "greet";
    type Input = GreetIn;
    type Output = String;
}

#[derive(Serialize, Deserialize)]
pub struct Item {
    id: u32,
}
#[derive(Serialize, Deserialize)]
pub struct OrderIn {
    items: Vec<Item>,
}
pub enum Order {}
impl Message for Order {
    const NAME: &'static str = "order";
    type Input = OrderIn;
    type Output = usize;
    fn validate(input: &OrderIn) -> Result<(), Reject> {
        match input.items.iter().position(|i| i.id == 0) {
            Some(n) => Err(Reject::invalid_field(
                format!("items[{n}].id"),
                "must be positive",
            )),
            None => Ok(()),
        }
    }
}

pub enum Shout {}
impl Message for Shout {
    const NAME: &'static str = "shout";
    type Input = String;
    type Output = String;
}

fn router() -> Router<User> {
    Router::new()
        .on::<Greet>(|_cx: Cx<User>, i: GreetIn| async move { Ok(i.name) })
        .on::<Order>(|_cx, i: OrderIn| async move { Ok(i.items.len()) })
        .on::<Shout>(|_cx, s: String| async move { Ok(s.to_uppercase()) })
}

/// Send a raw RPC frame and return its `error` object.
async fn error_of(c: &TestClient, id: &str, frame: Value) -> Value {
    let mut frame = frame;
    frame["rpcId"] = json!(id);
    c.send_raw(frame.to_string()).unwrap();
    let needle = format!(r#""rpcId":"{id}""#);
    let text = c.wait_frame(|f| f.contains(&needle)).await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "__rpc_err", "{text}");
    assert_eq!(v["error"]["code"], "INVALID_INPUT", "{text}");
    assert!(!text.contains("line 1"), "line/column leaked: {text}");
    v["error"].clone()
}

fn issue(e: &Value) -> (&str, &str) {
    let i = &e["data"]["issues"][0];
    (i["path"].as_str().unwrap(), i["message"].as_str().unwrap())
}

#[tokio::test]
async fn missing_field_names_the_field() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let e = error_of(&c, "1", json!({"type": "greet", "payload": {}})).await;
    assert_eq!(
        e["message"],
        "invalid payload at `name`: missing field `name`"
    );
    assert_eq!(issue(&e), ("name", "missing field `name`"));
    // Absent payload: `{}` is tried, and it names the missing field too.
    let e = error_of(&c, "2", json!({"type": "greet"})).await;
    assert_eq!(issue(&e), ("name", "missing field `name`"));
}

#[tokio::test]
async fn wrong_type_names_the_field() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let e = error_of(&c, "1", json!({"type": "greet", "payload": {"name": 3}})).await;
    assert_eq!(
        e["message"],
        "invalid payload at `name`: invalid type: integer `3`, expected a string"
    );
    assert_eq!(
        issue(&e),
        ("name", "invalid type: integer `3`, expected a string")
    );
}

#[tokio::test]
async fn nested_paths() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let payload = json!({"items": [{"id": 1}, {"id": 2}, {"id": "x"}]});
    let e = error_of(&c, "1", json!({"type": "order", "payload": payload})).await;
    assert_eq!(
        issue(&e),
        ("items[2].id", "invalid type: string \"x\", expected u32")
    );
    let payload = json!({"items": [{"id": 1}, {"id": 2}, {}]});
    let e = error_of(&c, "2", json!({"type": "order", "payload": payload})).await;
    assert_eq!(
        e["message"],
        "invalid payload at `items[2].id`: missing field `id`"
    );
    assert_eq!(issue(&e), ("items[2].id", "missing field `id`"));
}

#[tokio::test]
async fn validate_failures_look_the_same() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let payload = json!({"items": [{"id": 1}, {"id": 0}]});
    let e = error_of(&c, "1", json!({"type": "order", "payload": payload})).await;
    assert_eq!(
        e["message"],
        "invalid payload at `items[1].id`: must be positive"
    );
    assert_eq!(issue(&e), ("items[1].id", "must be positive"));
}

#[tokio::test]
async fn the_payload_as_a_whole() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let e = error_of(&c, "1", json!({"type": "greet", "payload": "Ada"})).await;
    assert_eq!(
        issue(&e),
        ("", "invalid type: string \"Ada\", expected struct GreetIn")
    );
    assert_eq!(
        e["message"],
        "invalid payload: invalid type: string \"Ada\", expected struct GreetIn"
    );
    // A non-object input without payload: the refusal of `null`, not of `{}`.
    let e = error_of(&c, "2", json!({"type": "shout"})).await;
    assert_eq!(issue(&e), ("", "invalid type: null, expected a string"));
}
