// A real Zocket server for zocket-client's doc tests (`include!`d by them, hidden):
// zocket-hyper on a free port of 127.0.0.1. `doc_server().await` returns its URL.
//
// Messages: `greet` ({name} -> "Hello, NAME!"), `rooms.join` ({roomId} -> the rooms),
// `rooms.say` ({roomId, content}: the event `rooms.message` {roomId, userName, content}
// to the room), `shout` (a string, broadcast as the event `message`).
pub async fn doc_server() -> String {
    use zocket_core::{Connect, Context, Cx, Event, Message, Reject, Router, Server};

    #[derive(serde::Deserialize)]
    struct Headers {
        #[serde(default, rename = "userName")]
        user_name: Option<String>,
    }
    struct User {
        name: String,
    }
    impl Context for User {
        type Headers = Headers;
        type State = ();
        async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
            Ok(User {
                name: conn.headers.user_name.unwrap_or_default(),
            })
        }
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    struct GreetIn {
        name: String,
    }
    enum Greet {}
    impl Message for Greet {
        const NAME: &'static str = "greet";
        type Input = GreetIn;
        type Output = String;
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    struct JoinIn {
        #[serde(rename = "roomId")]
        room_id: String,
    }
    enum Join {}
    impl Message for Join {
        const NAME: &'static str = "rooms.join";
        type Input = JoinIn;
        type Output = Vec<String>;
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    struct SayIn {
        #[serde(rename = "roomId")]
        room_id: String,
        content: String,
    }
    enum Say {}
    impl Message for Say {
        const NAME: &'static str = "rooms.say";
        type Input = SayIn;
        type Output = ();
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    struct RoomMsg {
        #[serde(rename = "roomId")]
        room_id: String,
        #[serde(rename = "userName")]
        user_name: String,
        content: String,
    }
    enum RoomMessage {}
    impl Event for RoomMessage {
        const NAME: &'static str = "rooms.message";
        type Payload = RoomMsg;
    }
    enum Shout {}
    impl Message for Shout {
        const NAME: &'static str = "shout";
        type Input = String;
        type Output = ();
    }
    enum Broadcast {}
    impl Event for Broadcast {
        const NAME: &'static str = "message";
        type Payload = String;
    }
    async fn greet(_: Cx<User>, input: GreetIn) -> Result<String, Reject> {
        Ok(format!("Hello, {}!", input.name))
    }
    async fn join(cx: Cx<User>, input: JoinIn) -> Result<Vec<String>, Reject> {
        cx.rooms().join(&input.room_id)?;
        Ok(cx.rooms().current())
    }
    async fn say(cx: Cx<User>, input: SayIn) -> Result<(), Reject> {
        let msg = RoomMsg {
            room_id: input.room_id.clone(),
            user_name: cx.name.clone(),
            content: input.content,
        };
        let _ = cx.send::<RoomMessage>(msg).to_room(input.room_id);
        Ok(())
    }
    async fn shout(cx: Cx<User>, text: String) -> Result<(), Reject> {
        let _ = cx.send::<Broadcast>(text).broadcast();
        Ok(())
    }

    let router = Router::<User>::new()
        .on::<Greet>(greet)
        .on::<Join>(join)
        .on::<Say>(say)
        .on::<Shout>(shout);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(zocket_hyper::serve(listener, Server::new(router)));
    format!("ws://{addr}/")
}
