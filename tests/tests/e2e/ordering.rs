//! Ordering: calls of one connection run concurrently (a slow one delays no later one), and what one connection sends is handled in order.
//!
//! Each scenario is written once against [`Harness`] and runs in-process, on
//! `zocket-warp` and on `zocket-hyper` (test names `in_process::*`, `warp::*`,
//! `hyper::*`).

use serde_json::json;
use zocket_core::Server;
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::Harness;

fn app() -> Server<RefCtx> {
    Server::new(reference::router())
}

async fn slow_sleep_does_not_delay_a_later_greet<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    let slow = a.send_rpc("slow.sleep", Some(json!({"ms": 2000}))).await;
    let fast = a.send_rpc("greet", Some(json!({"name": "quick"}))).await;
    // The greet's reply is the first frame: the sleeping handler does not hold it up.
    let first = a.recv().await;
    assert_eq!(first["rpcId"], fast, "{first}");
    assert_eq!(first["payload"], "Hello, quick!");
    let second = a.recv().await;
    assert_eq!(second["rpcId"], slow, "{second}");
    assert_eq!(second["payload"], 2000);
}

async fn join_then_message_stay_ordered<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let mut a = app.client("userName=ada").await;
    // Pipelined without waiting for any reply: each message must see the join before it.
    let rooms: Vec<String> = (0..20).map(|i| format!("room-{i}")).collect();
    let mut frames = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        frames.push(
            json!({"type": "rooms.join", "payload": {"roomId": room}, "rpcId": format!("j{i}")}),
        );
        frames.push(json!({"type": "rooms.message", "payload": {"roomId": room, "content": format!("m{i}")}, "rpcId": format!("m{i}")}));
    }
    a.send_all(frames).await;
    for (i, room) in rooms.iter().enumerate() {
        let joined = a.recv().await;
        assert_eq!(joined["type"], "rooms.joined", "{joined}");
        assert_eq!(joined["payload"]["roomId"], room.as_str());
        let reply = a.recv().await;
        assert_eq!(reply["rpcId"], format!("j{i}"), "{reply}");
        assert_eq!(reply["type"], "__rpc_res", "{reply}");
        let message = a.recv().await;
        assert_eq!(message["type"], "rooms.message", "{message}");
        assert_eq!(message["payload"]["content"], format!("m{i}"));
        let reply = a.recv().await;
        assert_eq!(reply["rpcId"], format!("m{i}"), "{reply}");
        assert_eq!(
            reply["type"], "__rpc_res",
            "the message saw the join: {reply}"
        );
    }
}

zocket_tests::scenarios!(RefCtx;
    all: [slow_sleep_does_not_delay_a_later_greet, join_then_message_stay_ordered],
);
