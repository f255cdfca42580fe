//! Several nodes (each a `Server` with its own `RedisHub`) in one test process, on a
//! real Redis: room, private and broadcast delivery exactly once whichever node the
//! sender and recipients are on, order, cluster-wide membership, disconnect by id,
//! expiry of a crashed node, and a Redis outage (kill, restart on the same port).

#[path = "support/redis.rs"]
mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use zocket_core::hub::Hub;
use zocket_core::protocol::CloseFrame;
use zocket_core::testing::{TestClient, TestServer};
use zocket_core::{
    ClientId, Connect, Context, Cx, Event, HubError, Message, Reject, Router, Server,
};
use zocket_redis::{RedisHub, RedisHubConfig};

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
message!(Join, "join", String, Vec<String>);
message!(Leave, "leave", String, Vec<String>);
message!(ToRooms, "to_rooms", (Vec<String>, u32), ());
message!(ToClient, "to_client", (String, u32), ());
message!(ToAll, "to_all", u32, ());
enum Tick {}
impl Event for Tick {
    const NAME: &'static str = "tick";
    type Payload = u32;
}

#[derive(Deserialize)]
struct Headers {}
struct User;
impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> {
        Ok(User)
    }
}

fn router() -> Router<User> {
    Router::<User>::new()
        .on::<Join>(|cx: Cx<User>, room: String| async move {
            cx.rooms().join(&room)?;
            Ok::<_, Reject>(cx.rooms().current())
        })
        .on::<Leave>(|cx: Cx<User>, room: String| async move {
            cx.rooms().leave(&room);
            Ok::<_, Reject>(cx.rooms().current())
        })
        .on::<ToRooms>(|cx: Cx<User>, (rooms, n): (Vec<String>, u32)| async move {
            let _ = cx.send::<Tick>(n).to_room(rooms);
            Ok::<_, Reject>(())
        })
        .on::<ToClient>(|cx: Cx<User>, (id, n): (String, u32)| async move {
            let _ = cx.send::<Tick>(n).to(id);
            Ok::<_, Reject>(())
        })
        .on::<ToAll>(|cx: Cx<User>, n: u32| async move {
            let _ = cx.send::<Tick>(n).broadcast();
            Ok::<_, Reject>(())
        })
}

struct Node {
    hub: Arc<RedisHub>,
    app: TestServer<User>,
}

impl Node {
    async fn start(cfg: RedisHubConfig) -> Node {
        let hub = RedisHub::connect(cfg).await.expect("redis hub connects");
        let server = Server::builder(router()).hub(hub.clone()).build();
        Node {
            hub,
            app: TestServer::from_server(server),
        }
    }
    async fn client(&self, rooms: &[&str]) -> TestClient {
        let c = self
            .app
            .connect(Vec::<(String, String)>::new())
            .await
            .unwrap();
        for r in rooms {
            c.call::<Join>((*r).to_owned()).await.unwrap();
        }
        c
    }
    /// Subscriptions confirmed and membership written: remote events and queries see
    /// this node's connections from now on.
    async fn ready(&self) {
        self.hub.settled().await;
        self.hub.flush().await;
    }
}

fn config(prefix: &str, name: &str) -> RedisHubConfig {
    RedisHubConfig::new(redis_support::shared())
        .prefix(prefix)
        .node_name(name)
}

async fn cluster(test: &str, n: usize) -> Vec<Node> {
    let prefix = redis_support::unique_prefix(test);
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(Node::start(config(&prefix, &format!("n{i}"))).await);
    }
    nodes
}

/// After the real events, a marker broadcast from node 0: every client's next `Tick` is
/// the marker, so any duplicate or stray event shows up as a wrong value.
async fn assert_nothing_more(nodes: &[Node], clients: &[&TestClient]) {
    for n in nodes {
        n.ready().await;
    }
    let marker = nodes[0].client(&[]).await;
    marker.call::<ToAll>(999_999).await.unwrap();
    for c in clients {
        assert_eq!(
            c.next::<Tick>().await.unwrap(),
            999_999,
            "a duplicate or stray event"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_events_reach_every_member_once_on_every_node() {
    let nodes = cluster("rooms", 3).await;
    let a0 = nodes[0].client(&["a"]).await;
    let ab1 = nodes[1].client(&["a", "b"]).await;
    let b2 = nodes[2].client(&["b"]).await;
    let ab2 = nodes[2].client(&["a", "b"]).await;
    let none1 = nodes[1].client(&[]).await;
    for n in &nodes {
        n.ready().await;
    }
    // From each node in turn, to both rooms: each member once, none to the outsider.
    for (i, n) in nodes.iter().enumerate() {
        let sender = n.client(&[]).await;
        sender
            .call::<ToRooms>((vec!["a".into(), "b".into(), "a".into()], i as u32))
            .await
            .unwrap();
        for c in [&a0, &ab1, &b2, &ab2] {
            assert_eq!(c.next::<Tick>().await.unwrap(), i as u32);
        }
    }
    // One room only.
    let s = nodes[1].client(&[]).await;
    s.call::<ToRooms>((vec!["b".into()], 7)).await.unwrap();
    for c in [&ab1, &b2, &ab2] {
        assert_eq!(c.next::<Tick>().await.unwrap(), 7);
    }
    assert_nothing_more(&nodes, &[&a0, &ab1, &b2, &ab2, &none1]).await;
    let st = nodes[0].app.server().stats();
    assert!(st.cluster_published >= 3, "{st:?}");
    assert!(nodes[2].app.server().stats().cluster_received >= 3);
    assert_eq!(st.cluster_send_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_and_broadcasts_cross_nodes_once_and_in_order() {
    let nodes = cluster("private", 2).await;
    let x = nodes[0].client(&[]).await;
    let y = nodes[1].client(&[]).await;
    let z = nodes[1].client(&[]).await;
    for n in &nodes {
        n.ready().await;
    }
    // x (node 0) to y (node 1), 200 in a row: all, once, in order; z gets none.
    for i in 0..200 {
        x.emit::<ToClient>((y.client_id().to_string(), i)).unwrap();
    }
    for i in 0..200 {
        assert_eq!(y.next::<Tick>().await.unwrap(), i);
    }
    // Same node: z to y.
    z.call::<ToClient>((y.client_id().to_string(), 500))
        .await
        .unwrap();
    assert_eq!(y.next::<Tick>().await.unwrap(), 500);
    // Unknown id: nothing.
    x.call::<ToClient>(("nobody".into(), 501)).await.unwrap();
    // Broadcast from node 1 reaches everyone once, the sender too.
    z.call::<ToAll>(600).await.unwrap();
    for c in [&x, &y, &z] {
        assert_eq!(c.next::<Tick>().await.unwrap(), 600);
    }
    assert_nothing_more(&nodes, &[&x, &y, &z]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_is_cluster_wide_and_disconnect_reaches_the_right_node() {
    let nodes = cluster("members", 2).await;
    let h0 = nodes[0].app.server().handle();
    let a = nodes[0].client(&["r"]).await;
    let b = nodes[1].client(&["r", "s"]).await;
    let c = nodes[1].client(&[]).await;
    for n in &nodes {
        n.ready().await;
    }
    let mut want = vec![a.client_id(), b.client_id()];
    want.sort();
    assert_eq!(h0.members("r").await.unwrap(), want);
    assert_eq!(h0.member_count("r").await.unwrap(), 2);
    assert_eq!(h0.members("s").await.unwrap(), vec![b.client_id()]);
    assert_eq!(h0.member_count("nothing").await.unwrap(), 0);
    assert!(h0.is_connected(&c.client_id()).await.unwrap());
    assert!(!h0.is_connected(&ClientId::from("nobody")).await.unwrap());

    // Leave on node 1 is seen from node 0.
    b.call::<Leave>("r".into()).await.unwrap();
    nodes[1].ready().await;
    assert_eq!(h0.members("r").await.unwrap(), vec![a.client_id()]);

    // Disconnect b (on node 1) from node 0: b only.
    assert_eq!(h0.disconnect(&b.client_id(), 4000, "bye").await, Ok(true));
    assert_eq!(
        b.closed().await.unwrap(),
        Some(CloseFrame {
            code: 4000,
            reason: "bye".into()
        })
    );
    assert_eq!(
        h0.disconnect(&b.client_id(), 5000, "").await,
        Err(HubError::InvalidCloseCode(5000))
    );
    assert_eq!(
        h0.disconnect(&ClientId::from("nobody"), 1000, "").await,
        Ok(false)
    );
    // b is gone everywhere once node 1 has unregistered it.
    let h1 = nodes[1].app.server().handle();
    tokio::time::timeout(Duration::from_secs(5), async {
        while h1.local_connections() != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("node 1 unregisters b");
    nodes[1].ready().await;
    assert!(!h0.is_connected(&b.client_id()).await.unwrap());
    assert_eq!(h0.members("s").await.unwrap(), Vec::<ClientId>::new());
    assert_nothing_more(&nodes, &[&a, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_members_expire_within_the_ttl() {
    let prefix = redis_support::unique_prefix("expiry");
    let ttl = Duration::from_millis(600);
    let cfg = |name: &str| {
        config(&prefix, name)
            .heartbeat(Duration::from_millis(100))
            .membership_ttl(ttl)
    };
    let n0 = Node::start(cfg("n0")).await;
    let n1 = Node::start(cfg("n1")).await;
    let b = n1.client(&["r"]).await;
    n1.ready().await;
    let h0 = n0.app.server().handle();
    assert_eq!(h0.member_count("r").await.unwrap(), 1);
    // A heartbeat or two later the records are still there (refreshed, not expired).
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(h0.member_count("r").await.unwrap(), 1);
    assert!(h0.is_connected(&b.client_id()).await.unwrap());

    // "Crash" node 1: its hub's tasks stop with no goodbye (the records stay in Redis).
    let crashed = Instant::now();
    let Node { hub, app } = n1;
    drop(app);
    drop(hub);
    drop(b);
    let deadline = ttl + Duration::from_millis(500);
    loop {
        let n = h0.member_count("r").await.unwrap();
        if n == 0 {
            break;
        }
        assert!(
            crashed.elapsed() < deadline,
            "the crashed node's member is still listed after {:?}",
            crashed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_close_removes_the_nodes_records_at_once() {
    let nodes = cluster("close", 2).await;
    let _b = nodes[1].client(&["r"]).await;
    nodes[1].ready().await;
    let h0 = nodes[0].app.server().handle();
    assert_eq!(h0.member_count("r").await.unwrap(), 1);
    nodes[1].hub.close().await;
    assert_eq!(h0.member_count("r").await.unwrap(), 0);
    assert_eq!(nodes[1].hub.local_connections(), 1, "local state untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_local_delivery_goes_on_failures_counted_then_it_resumes() {
    let port = redis_support::free_port();
    let mut redis = redis_support::TestRedis::start(port);
    let prefix = redis_support::unique_prefix("outage");
    let cfg = |name: &str| {
        RedisHubConfig::new(redis.url.clone())
            .prefix(&prefix)
            .node_name(name)
            .heartbeat(Duration::from_millis(200))
            .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(400))
            .command_timeout(Duration::from_millis(500))
    };
    let n0 = Node::start(cfg("n0")).await;
    let n1 = Node::start(cfg("n1")).await;
    let a = n0.client(&["r"]).await;
    let b = n1.client(&["r"]).await;
    n0.ready().await;
    n1.ready().await;
    a.call::<ToRooms>((vec!["r".into()], 1)).await.unwrap();
    assert_eq!(a.next::<Tick>().await.unwrap(), 1);
    assert_eq!(b.next::<Tick>().await.unwrap(), 1);

    redis.kill();
    // Local delivery keeps working; the cross-node part fails and is counted.
    let before = n0.app.server().stats().cluster_send_failures;
    for i in 2..12 {
        a.call::<ToRooms>((vec!["r".into()], i)).await.unwrap();
        assert_eq!(a.next::<Tick>().await.unwrap(), i);
    }
    n0.hub.flush().await;
    let failed = n0.app.server().stats().cluster_send_failures - before;
    assert_eq!(
        failed, 10,
        "every cross-node send during the outage is counted"
    );
    // Membership queries say Redis is unavailable instead of answering wrongly.
    assert!(matches!(
        n0.app.server().handle().members("r").await,
        Err(HubError::Unavailable(_))
    ));
    // A client that joins during the outage is subscribed once Redis is back.
    let late = n1.client(&["late"]).await;

    let _redis = redis_support::TestRedis::start(port);
    // Both nodes re-subscribe every channel their connections need.
    n0.ready().await;
    n1.ready().await;
    assert!(n0.hub.subscriber_sessions() >= 2, "node 0 reconnected");
    assert!(n1.hub.subscriber_sessions() >= 2, "node 1 reconnected");
    a.call::<ToRooms>((vec!["r".into()], 100)).await.unwrap();
    assert_eq!(a.next::<Tick>().await.unwrap(), 100);
    assert_eq!(b.next::<Tick>().await.unwrap(), 100, "delivery resumed");
    a.call::<ToRooms>((vec!["late".into()], 101)).await.unwrap();
    assert_eq!(late.next::<Tick>().await.unwrap(), 101);
    a.call::<ToClient>((b.client_id().to_string(), 102))
        .await
        .unwrap();
    assert_eq!(b.next::<Tick>().await.unwrap(), 102);
    // The membership records were rewritten into the new (empty) Redis.
    let mut want = vec![a.client_id(), b.client_id()];
    want.sort();
    assert_eq!(n0.app.server().handle().members("r").await.unwrap(), want);
    assert_eq!(
        n0.app.server().handle().members("late").await.unwrap(),
        vec![late.client_id()]
    );
    // Nothing from the outage arrives late (at most once): b's next event is the marker.
    assert_nothing_more(&[n0, n1], &[&a, &b, &late]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_keeps_its_connection_across_keepalive_pings() {
    let prefix = redis_support::unique_prefix("pings");
    let cfg = |name: &str| config(&prefix, name).heartbeat(Duration::from_millis(20));
    let n0 = Node::start(cfg("n0")).await;
    let n1 = Node::start(cfg("n1")).await;
    let b = n1.client(&["r"]).await;
    n1.ready().await;
    // Let a dozen keepalive pings and heartbeats go by (time passing is the point here).
    tokio::time::sleep(Duration::from_millis(250)).await;
    let a = n0.client(&[]).await;
    a.call::<ToRooms>((vec!["r".into()], 5)).await.unwrap();
    assert_eq!(b.next::<Tick>().await.unwrap(), 5);
    assert_eq!(n0.hub.subscriber_sessions(), 1, "no reconnect on node 0");
    assert_eq!(n1.hub.subscriber_sessions(), 1, "no reconnect on node 1");
    assert_eq!(n1.app.server().stats().cluster_send_failures, 0);
}
