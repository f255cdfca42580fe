//! Property test (issue 9): any sequence of join / leave / send / disconnect operations
//! from several virtual clients delivers each event to exactly the members of its
//! target at that moment, once.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use zocket_core::testing::{TestClient, TestServer};
use zocket_core::{Connect, Context, Cx, Event, Message, Reject, Router};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Target {
    Rooms(Vec<String>),
    Ids(Vec<String>),
    All,
}

message!(Join, "join", String, bool);
message!(Leave, "leave", String, bool);
message!(Send, "send", (Target, u64), ());
message!(Barrier, "barrier", (), ());

enum Said {}
impl Event for Said {
    const NAME: &'static str = "said";
    type Payload = u64;
}

struct Anyone;
impl Context for Anyone {
    type Headers = serde_json::Value;
    type State = ();
    async fn connect(_: Connect<'_, Self>) -> Result<Self, Reject> {
        Ok(Anyone)
    }
}

fn router() -> Router<Anyone> {
    Router::new()
        .on::<Join>(|cx: Cx<Anyone>, room: String| async move { cx.rooms().join(&room) })
        .on::<Leave>(|cx: Cx<Anyone>, room: String| async move {
            Ok::<_, Reject>(cx.rooms().leave(&room))
        })
        .on::<Send>(|cx: Cx<Anyone>, (target, seq): (Target, u64)| async move {
            let out = cx.send::<Said>(seq);
            match target {
                Target::Rooms(rooms) => out.to_room(rooms),
                Target::Ids(ids) => out.to(ids),
                Target::All => out.broadcast(),
            }
            .check()?;
            Ok::<_, Reject>(())
        })
        .on::<Barrier>(|_cx: Cx<Anyone>, ()| async { Ok::<_, Reject>(()) })
}

const CLIENTS: usize = 4;
const ROOMS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Join(usize, usize),
    Leave(usize, usize),
    ToRooms(usize, Vec<usize>),
    ToIds(usize, Vec<usize>),
    Broadcast(usize),
    Disconnect(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    let r = 0..ROOMS.len();
    prop_oneof![
        3 => (c.clone(), r.clone()).prop_map(|(c, r)| Op::Join(c, r)),
        2 => (c.clone(), r.clone()).prop_map(|(c, r)| Op::Leave(c, r)),
        3 => (c.clone(), proptest::collection::vec(r, 0..4)).prop_map(|(c, r)| Op::ToRooms(c, r)),
        2 => (c.clone(), proptest::collection::vec(0..CLIENTS, 0..4)).prop_map(|(c, i)| Op::ToIds(c, i)),
        1 => c.clone().prop_map(Op::Broadcast),
        1 => c.prop_map(Op::Disconnect),
    ]
}

async fn run(ops: Vec<Op>) {
    let app = TestServer::new(router());
    let mut clients: Vec<Option<TestClient>> = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..CLIENTS {
        let c = app.connect([("userName", "x")]).await.unwrap();
        // Wait for the welcome (the id), via a round trip.
        c.call::<Barrier>(()).await.unwrap();
        ids.push(c.client_id().to_string());
        clients.push(Some(c));
    }
    // The model: rooms of each live client; expected deliveries per client.
    let mut rooms: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); CLIENTS];
    let mut expected: Vec<BTreeMap<u64, usize>> = vec![BTreeMap::new(); CLIENTS];
    let mut seq = 0u64;
    for op in ops {
        let sender = match &op {
            Op::Join(c, _)
            | Op::Leave(c, _)
            | Op::ToRooms(c, _)
            | Op::ToIds(c, _)
            | Op::Broadcast(c)
            | Op::Disconnect(c) => *c,
        };
        let Some(client) = clients[sender].as_ref() else {
            continue;
        };
        match op {
            Op::Join(c, r) => {
                let joined = client.call::<Join>(ROOMS[r].into()).await.unwrap();
                assert_eq!(joined, rooms[c].insert(r));
            }
            Op::Leave(c, r) => {
                let left = client.call::<Leave>(ROOMS[r].into()).await.unwrap();
                assert_eq!(left, rooms[c].remove(&r));
            }
            Op::ToRooms(_, rs) => {
                seq += 1;
                let target = Target::Rooms(rs.iter().map(|&r| ROOMS[r].to_owned()).collect());
                client.call::<Send>((target, seq)).await.unwrap();
                for (i, live) in clients.iter().enumerate() {
                    if live.is_some() && rs.iter().any(|r| rooms[i].contains(r)) {
                        *expected[i].entry(seq).or_default() += 1;
                    }
                }
            }
            Op::ToIds(_, who) => {
                seq += 1;
                let target = Target::Ids(who.iter().map(|&i| ids[i].clone()).collect());
                client.call::<Send>((target, seq)).await.unwrap();
                for (i, live) in clients.iter().enumerate() {
                    if live.is_some() && who.contains(&i) {
                        *expected[i].entry(seq).or_default() += 1;
                    }
                }
            }
            Op::Broadcast(_) => {
                seq += 1;
                client.call::<Send>((Target::All, seq)).await.unwrap();
                for (i, live) in clients.iter().enumerate() {
                    if live.is_some() {
                        *expected[i].entry(seq).or_default() += 1;
                    }
                }
            }
            Op::Disconnect(c) => {
                client.close().await;
                client.closed().await.unwrap();
                // Gone from the hub before the next operation: wait for the count.
                let handle = app.server().handle();
                let live = clients.iter().flatten().count() - 1;
                while handle.local_connections() != live {
                    tokio::task::yield_now().await;
                }
                clients[c] = None;
                rooms[c].clear();
            }
        }
    }
    for (i, client) in clients.iter().enumerate() {
        let Some(client) = client else { continue };
        // Its own reply comes after every event queued for it before.
        client.call::<Barrier>(()).await.unwrap();
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        for (name, payload) in client.drain_events() {
            assert_eq!(name, "said");
            *got.entry(payload.parse().unwrap()).or_default() += 1;
        }
        assert_eq!(
            got, expected[i],
            "client {i}: received vs. expected (seq -> times)"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn each_event_reaches_exactly_the_members_of_its_target_once(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
