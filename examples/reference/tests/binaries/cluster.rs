//! Several `reference` processes on one Redis (`--redis URL --node NAME`) behave as
//! one server: room messages, private messages by client id, broadcasts, cluster-wide
//! member lists and disconnect by id reach exactly the right clients, once each,
//! whichever process the sender and the recipients are connected to.
//!
//! "Once each" is checked with a marker: after the events under test, one more
//! broadcast; every client's next frame must be that marker, so a duplicate or stray
//! event fails the test. Subscriptions are asynchronous (a join never waits for Redis),
//! so before a cross-node send the test waits for the receiving process's debug log line
//! saying the channel is subscribed.

#[path = "../../../../zocket-redis/tests/support/redis.rs"]
mod redis_support;

use serde_json::{Value, json};
use zocket_tests::support::process::Process;
use zocket_tests::support::{Ended, RawClient};

/// A running `reference` process in a cluster; killed on drop.
struct Node {
    process: Process,
    addr: std::net::SocketAddr,
    prefix: String,
}

impl Node {
    async fn start(prefix: &str, name: &str, adapter: &str) -> Node {
        let mut process = Process::spawn(
            env!("CARGO_BIN_EXE_reference"),
            &[
                "--addr",
                "127.0.0.1:0",
                "--adapter",
                adapter,
                "--redis",
                redis_support::shared(),
                "--node",
                name,
            ],
            &[
                ("ZOCKET_REDIS_PREFIX", prefix),
                ("RUST_LOG", "info,zocket_redis=debug"),
            ],
        );
        let (_, addr) = process.addr_line("listening on ws://", "/").await;
        Node {
            process,
            addr,
            prefix: prefix.to_owned(),
        }
    }

    async fn client(&self, query: &str) -> RawClient {
        let c = RawClient::connect(self.addr, query).await;
        self.subscribed(&format!("client:{}", c.client_id)).await;
        c
    }

    /// Wait (bounded) until this process has subscribed `{prefix}:{what}` (its debug
    /// log line says so).
    async fn subscribed(&self, what: &str) {
        let want = format!(" subscribed channel={}:{what}", self.prefix);
        // An event wait on the process's stderr lines (the line ends with `want`).
        self.process.log.wait_for_line(&[&want]).await;
    }
}

/// Joins `room` and reads the caller's own `rooms.joined`.
async fn join(c: &mut RawClient, room: &str) {
    c.ok("rooms.join", json!({"roomId": room})).await;
    assert_eq!(c.event("rooms.joined").await["roomId"], room);
}

/// The marker check: one broadcast from `from`; each client's next frame is it.
async fn nothing_else(from: &mut RawClient, clients: &mut [&mut RawClient], marker: &str) {
    from.ok("trigger", json!(marker)).await;
    assert_eq!(from.event("message").await, json!(marker));
    for c in clients.iter_mut() {
        assert_eq!(c.event("message").await, json!(marker), "{}", c.client_id);
    }
}

fn sorted(ids: &[&str]) -> Value {
    let mut v: Vec<&str> = ids.to_vec();
    v.sort();
    json!(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_behave_as_one_server() {
    let prefix = redis_support::unique_prefix("three");
    let n = [
        Node::start(&prefix, "n0", "warp").await,
        Node::start(&prefix, "n1", "hyper").await,
        Node::start(&prefix, "n2", "warp").await,
    ];
    let mut a = n[0].client("userName=ann").await;
    let mut b = n[1].client("userName=bob").await;
    let mut c = n[2].client("userName=cat").await;
    let mut d = n[1].client("userName=dan").await;
    let mut e = n[2].client("userName=eve&userRole=admin").await;

    // Room r on all three nodes; every join is announced to the members so far.
    join(&mut a, "r").await;
    n[0].subscribed("room:r").await;
    join(&mut b, "r").await;
    assert_eq!(a.event("rooms.joined").await["userName"], "bob");
    n[1].subscribed("room:r").await;
    join(&mut c, "r").await;
    for x in [&mut a, &mut b] {
        assert_eq!(x.event("rooms.joined").await["userName"], "cat");
    }
    n[2].subscribed("room:r").await;
    // Room s on node 1 only (b is in both r and s).
    join(&mut b, "s").await;
    join(&mut d, "s").await;
    assert_eq!(b.event("rooms.joined").await["userName"], "dan");
    n[1].subscribed("room:s").await;

    // A room message from every node reaches the three members once.
    for (sender, text) in [
        (&mut a, "from-n0"),
        (&mut b, "from-n1"),
        (&mut e, "from-n2"),
    ] {
        sender
            .ok("chat.room", json!({"roomId": "r", "message": text}))
            .await;
    }
    // (No order between different senders on different nodes.)
    for x in [&mut a, &mut b, &mut c] {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(x.event("chat.room").await["message"].clone());
        }
        got.sort_by_key(|v| v.to_string());
        assert_eq!(
            got,
            vec![json!("from-n0"), json!("from-n1"), json!("from-n2")]
        );
    }
    // To two rooms at once: b (in both) gets it once.
    e.ok(
        "notification.send",
        json!({"type": "info", "message": "two rooms", "rooms": ["r", "s"]}),
    )
    .await;
    for x in [&mut a, &mut b, &mut c, &mut d] {
        assert_eq!(
            x.event("notification.receive").await["message"],
            "two rooms"
        );
    }
    // Private messages by client id, across nodes and within one.
    let (a_id, b_id, c_id, d_id) = (
        a.client_id.clone(),
        b.client_id.clone(),
        c.client_id.clone(),
        d.client_id.clone(),
    );
    a.ok(
        "chat.private",
        json!({"targetUserId": d_id, "message": "a->d"}),
    )
    .await;
    c.ok(
        "chat.private",
        json!({"targetUserId": a_id, "message": "c->a"}),
    )
    .await;
    b.ok(
        "chat.private",
        json!({"targetUserId": d_id, "message": "b->d"}),
    )
    .await;
    let mut got = vec![
        d.event("chat.private").await["message"].clone(),
        d.event("chat.private").await["message"].clone(),
    ];
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, vec![json!("a->d"), json!("b->d")]);
    assert_eq!(a.event("chat.private").await["message"], "c->a");
    // Broadcast from node 1 reaches everyone on every node once.
    d.ok("trigger", json!("hello all")).await;
    for x in [&mut a, &mut b, &mut c, &mut d, &mut e] {
        assert_eq!(x.event("message").await, json!("hello all"));
    }

    // Cluster-wide member lists, asked on any node.
    for x in [&mut e, &mut a] {
        assert_eq!(
            x.ok("rooms.members", json!({"roomId": "r"})).await,
            Some(json!({"members": sorted(&[&a_id, &b_id, &c_id]), "count": 3}))
        );
    }
    assert_eq!(
        c.ok("rooms.members", json!({"roomId": "s"})).await,
        Some(json!({"members": sorted(&[&b_id, &d_id]), "count": 2}))
    );
    assert_eq!(
        a.ok("connection.isConnected", json!({"clientId": d_id}))
            .await,
        Some(json!(true))
    );
    assert_eq!(
        a.ok("connection.isConnected", json!({"clientId": "nobody"}))
            .await,
        Some(json!(false))
    );

    // Disconnect by id: only staff; d (node 1) closed from node 2 with the code and
    // reason, nobody else.
    assert_eq!(
        a.err("admin.disconnect", json!({"clientId": d_id})).await["code"],
        "FORBIDDEN"
    );
    assert_eq!(
        e.err("admin.disconnect", json!({"clientId": d_id, "code": 999}))
            .await["code"],
        "INVALID_INPUT"
    );
    assert_eq!(
        e.ok(
            "admin.disconnect",
            json!({"clientId": d_id, "code": 4001, "reason": "kicked"})
        )
        .await,
        Some(json!(true))
    );
    let (ended, frames) = d.ended().await;
    assert_eq!(ended, Ended::Close(4001, "kicked".into()), "{frames:?}");
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(
        e.ok("admin.disconnect", json!({"clientId": "nobody"}))
            .await,
        Some(json!(false))
    );
    // Node 1's later event to r arrives after its membership update for d (one ordered
    // queue), so the member list of s is up to date once a has it.
    b.ok("chat.room", json!({"roomId": "r", "message": "after"}))
        .await;
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(x.event("chat.room").await["message"], "after");
    }
    assert_eq!(
        a.ok("rooms.members", json!({"roomId": "s"})).await,
        Some(json!({"members": [b_id], "count": 1}))
    );
    assert_eq!(
        a.ok("connection.isConnected", json!({"clientId": d_id}))
            .await,
        Some(json!(false))
    );

    nothing_else(&mut a, &mut [&mut b, &mut c, &mut e], "end").await;
    drop(n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_room_fanout_once_each_in_order() {
    let prefix = redis_support::unique_prefix("two");
    let n = [
        Node::start(&prefix, "left", "hyper").await,
        Node::start(&prefix, "right", "warp").await,
    ];
    // Four members on each node, one outsider per node.
    let mut members = Vec::new();
    for i in 0..8 {
        let mut m = n[i % 2].client(&format!("userName=m{i}")).await;
        m.ok("rooms.join", json!({"roomId": "big"})).await;
        members.push(m);
    }
    n[0].subscribed("room:big").await;
    n[1].subscribed("room:big").await;
    // Everyone's own and earlier joins may or may not have been seen remotely while the
    // room channel was being subscribed: drain the rooms.joined events with a marker.
    let mut out0 = n[0].client("userName=o0").await;
    let mut out1 = n[1].client("userName=o1").await;
    out0.ok("bench.fanout", json!({"roomId": "big", "seq": -1}))
        .await;
    for m in members.iter_mut() {
        loop {
            let f = m.recv().await;
            if f["type"] == "bench.tick" {
                assert_eq!(f["payload"]["seq"], -1);
                break;
            }
            assert_eq!(f["type"], "rooms.joined", "{f}");
        }
    }
    // 50 events from each outsider (one per node), interleaved: every member gets all
    // 100 once, each sender's in the order sent.
    for seq in 0..50 {
        out0.send(
            json!({"type": "bench.fanout", "payload": {"roomId": "big", "from": 0, "seq": seq}}),
        )
        .await;
        out1.send(
            json!({"type": "bench.fanout", "payload": {"roomId": "big", "from": 1, "seq": seq}}),
        )
        .await;
    }
    for m in members.iter_mut() {
        let mut next = [0i64; 2];
        for _ in 0..100 {
            let tick = m.event("bench.tick").await;
            let from = tick["from"].as_u64().unwrap() as usize;
            assert_eq!(tick["seq"], next[from], "sender {from} out of order");
            next[from] += 1;
        }
    }
    let (first, rest) = members.split_at_mut(1);
    let mut others: Vec<&mut RawClient> = rest.iter_mut().collect();
    others.push(&mut out0);
    others.push(&mut out1);
    nothing_else(&mut first[0], &mut others, "done").await;
}
