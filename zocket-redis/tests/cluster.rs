//! Several nodes (each a `Server` with its own `RedisHub`) in one test process, on a
//! real Redis: room, private and broadcast delivery exactly once whichever node the
//! sender and recipients are on, order, cluster-wide membership, disconnect by id,
//! expiry of a crashed node, and a Redis outage (kill, restart on the same port).
//!
//! What happens in Redis (a heartbeat refreshing a record, a record expiring, a member
//! removed) is waited for through Redis keyspace notifications ([`Keyspace`]), each wait
//! bounded, never with a fixed sleep or a polling loop.

#[path = "support/redis.rs"]
mod redis_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;

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

/// Redis keyspace notifications for the keys under one test's prefix: `(key, event)`
/// as Redis reports them (`set`, `expire`, `sadd`, `srem`, `expired`, ...), so that a
/// test waits for what Redis did instead of sleeping. Turns the notifications on
/// (adding the classes it needs to whatever the server has: `K` keyspace, `g` generic,
/// `$` string, `s` set, `x` expired).
struct Keyspace {
    rx: mpsc::UnboundedReceiver<(String, String)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Keyspace {
    async fn watch(prefix: &str) -> Keyspace {
        let client = redis::Client::open(redis_support::shared()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects");
        let current: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query_async(&mut conn)
            .await
            .expect("CONFIG GET notify-keyspace-events (the tests need keyspace notifications)");
        let mut flags = current.get(1).cloned().unwrap_or_default();
        for f in ['K', 'g', '$', 's', 'x'] {
            if !flags.contains(f) {
                flags.push(f);
            }
        }
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(&flags)
            .query_async(&mut conn)
            .await
            .expect("CONFIG SET notify-keyspace-events (the tests need keyspace notifications)");
        let mut pubsub = client.get_async_pubsub().await.expect("redis pub/sub");
        // Subscribed once this returns: nothing after it is missed.
        pubsub
            .psubscribe(format!("__keyspace@*__:{prefix}:*"))
            .await
            .expect("PSUBSCRIBE keyspace");
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let channel = msg.get_channel_name();
                let key = channel.split_once("__:").map_or(channel, |(_, k)| k);
                let event: String = msg.get_payload().unwrap_or_default();
                if tx.send((key.to_owned(), event)).is_err() {
                    return;
                }
            }
        });
        Keyspace { rx, _task: task }
    }

    /// Take notifications until `done(key, event)` says so; panics (naming `what`) if
    /// that takes longer than `within`.
    async fn wait(
        &mut self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&str, &str) -> bool,
    ) {
        let r = tokio::time::timeout(within, async {
            while let Some((key, event)) = self.rx.recv().await {
                if done(&key, &event) {
                    return true;
                }
            }
            false
        })
        .await;
        match r {
            Ok(true) => {}
            Ok(false) => panic!("keyspace notifications ended before: {what}"),
            Err(_) => panic!("not within {within:?}: {what}"),
        }
    }
}

/// The one key matching `pattern` (a test's own prefix), e.g. a node's members record.
async fn only_key(pattern: &str) -> String {
    let client = redis::Client::open(redis_support::shared()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "keys matching {pattern}: {keys:?}");
    keys.into_iter().next().unwrap_or_default()
}

/// A generous bound for things Redis does on its own clock (heartbeats, expiry): a
/// failure deadline, never waited out when the test passes.
const REDIS_WAIT: Duration = Duration::from_secs(10);

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
    // The marker's publish too.
    nodes[0].hub.flush().await;
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
    let prefix = redis_support::unique_prefix("members");
    let mut keyspace = Keyspace::watch(&prefix).await;
    let mut nodes = Vec::new();
    for i in 0..2 {
        nodes.push(Node::start(config(&prefix, &format!("n{i}"))).await);
    }
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
    // b is gone everywhere once node 1 has unregistered it: locally first, then its
    // record (the only client record removed in this test).
    let clients = format!("{prefix}:clients:");
    keyspace
        .wait(
            "node 1 removes b's client record",
            REDIS_WAIT,
            |key, event| key.starts_with(&clients) && event == "srem",
        )
        .await;
    assert_eq!(nodes[1].app.server().handle().local_connections(), 1);
    nodes[1].ready().await;
    assert!(!h0.is_connected(&b.client_id()).await.unwrap());
    assert_eq!(h0.members("s").await.unwrap(), Vec::<ClientId>::new());
    assert_nothing_more(&nodes, &[&a, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_members_expire_within_the_ttl() {
    let prefix = redis_support::unique_prefix("expiry");
    let mut keyspace = Keyspace::watch(&prefix).await;
    let (heartbeat, ttl) = (Duration::from_millis(100), Duration::from_millis(600));
    let cfg = |name: &str| {
        config(&prefix, name)
            .heartbeat(heartbeat)
            .membership_ttl(ttl)
    };
    let n0 = Node::start(cfg("n0")).await;
    // Node 1 runs on a runtime of its own, so that it can crash: dropping that runtime
    // stops every task of the node at once, with nothing more sent to Redis.
    let node1 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let n1_cfg = cfg("n1");
    // (`block_on` on a blocking thread: `TestServer::connect`'s future is not `Send`.)
    let (node1, n1, b) = tokio::task::spawn_blocking(move || {
        let (n1, b) = node1.block_on(async move {
            let n1 = Node::start(n1_cfg).await;
            let b = n1.client(&["r"]).await;
            n1.ready().await;
            (n1, b)
        });
        (node1, n1, b)
    })
    .await
    .unwrap();
    let h0 = n0.app.server().handle();
    assert_eq!(h0.member_count("r").await.unwrap(), 1);
    // Node 1's records: its liveness key, its clients, its members of `r`.
    let members = only_key(&format!("{prefix}:members:*:r")).await;
    let instance = members
        .strip_prefix(&format!("{prefix}:members:"))
        .and_then(|k| k.strip_suffix(":r"))
        .expect("members key layout")
        .to_owned();
    let records = [
        format!("{prefix}:node:{instance}"),
        format!("{prefix}:clients:{instance}"),
        members.clone(),
    ];

    // Heartbeats refresh the records: after more than two TTLs' worth of refreshes
    // (each at least one heartbeat after the last), they are still there.
    let mut refreshes = 0;
    let want = (2 * ttl.as_millis() / heartbeat.as_millis()) as usize + 1;
    keyspace
        .wait(
            "heartbeats refresh the members record",
            ttl * 2 + REDIS_WAIT,
            |key, event| {
                refreshes += usize::from(key == members && event == "expire");
                refreshes >= want
            },
        )
        .await;
    assert_eq!(h0.member_count("r").await.unwrap(), 1);
    assert!(h0.is_connected(&b.client_id()).await.unwrap());

    // Crash node 1: its runtime stops, no goodbye, no unregistration reaches Redis. Its
    // records stay until their TTL runs out; Redis reports each expiry.
    let crashed = Instant::now();
    node1.shutdown_background();
    drop((n1, b));
    let mut expired: HashMap<String, Duration> = HashMap::new();
    keyspace
        .wait(
            "the crashed node's records expire",
            ttl + REDIS_WAIT,
            |key, event| {
                if event == "expired" && records.iter().any(|r| r == key) {
                    expired.insert(key.to_owned(), crashed.elapsed());
                }
                expired.len() == records.len()
            },
        )
        .await;
    for (key, after) in &expired {
        // At most one TTL after the last heartbeat, plus Redis's expiry cycle (100 ms at
        // its default hz) and a margin for a loaded machine.
        assert!(
            *after <= ttl + Duration::from_millis(1500),
            "{key} expired {after:?} after the crash (ttl {ttl:?})"
        );
    }
    assert_eq!(h0.member_count("r").await.unwrap(), 0);
    assert_eq!(h0.members("r").await.unwrap(), Vec::<ClientId>::new());
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
    let mut keyspace = Keyspace::watch(&prefix).await;
    let cfg = |name: &str| config(&prefix, name).heartbeat(Duration::from_millis(20));
    let n0 = Node::start(cfg("n0")).await;
    let n1 = Node::start(cfg("n1")).await;
    let b = n1.client(&["r"]).await;
    n1.ready().await;
    // A dozen heartbeats of each node go by (each rewrites the node's liveness key; the
    // subscriber pings on the same interval): time passing is the point here.
    let node = format!("{prefix}:node:");
    let mut beats: HashMap<String, usize> = HashMap::new();
    keyspace
        .wait(
            "a dozen heartbeats of each node",
            REDIS_WAIT,
            |key, event| {
                if key.starts_with(&node) && event == "set" {
                    *beats.entry(key.to_owned()).or_default() += 1;
                }
                beats.len() == 2 && beats.values().all(|n| *n >= 12)
            },
        )
        .await;
    let a = n0.client(&[]).await;
    a.call::<ToRooms>((vec!["r".into()], 5)).await.unwrap();
    assert_eq!(b.next::<Tick>().await.unwrap(), 5);
    assert_eq!(n0.hub.subscriber_sessions(), 1, "no reconnect on node 0");
    assert_eq!(n1.hub.subscriber_sessions(), 1, "no reconnect on node 1");
    assert_eq!(n1.app.server().stats().cluster_send_failures, 0);
}
