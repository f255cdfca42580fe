//! The `frames` check, shared by the fuzz target (`fuzz_targets/frames.rs`) and the
//! regression test of the normal suite (`examples/tests/fuzz_regressions.rs`), which
//! replays `fuzz/regressions/frames/`.
//!
//! Input: the first byte picks the role (`user`, `admin`, `moderator`); the rest, split
//! at newlines, is up to 32 text frames sent by one virtual client of the reference
//! router, followed by a sentinel RPC. Invariants:
//!
//! - no panic, except the reference app's deliberate `fail.panic` (answered `INTERNAL`);
//! - every RPC gets exactly one reply: each `rpcId` of the input (frames that decode
//!   with an `rpcId`, and those refused for a missing `type` that carried a string one)
//!   is answered by as many `__rpc_res` / `__rpc_err` as it was sent, the sentinel
//!   included, unless a limit closed the connection (1008 / 1009, with a close frame);
//! - every server frame is a JSON object with a string `type`;
//! - once the client has closed, the connection ends (its admission slot is freed) and
//!   the server holds nothing of it: no connection, no hub entry, no room.
//!
//! The world (runtime, server) is built once; its clock is paused (tokio auto-advances
//! it whenever every task waits), so handlers that sleep (`delayedEcho`, `slow.sleep`)
//! and every timeout cost no wall time, and the state is back to empty after each input.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use zocket_core::Server;
use zocket_core::hub::LocalHub;
use zocket_core::protocol::{FrameError, decode_client_frame, decode_server_frame};
use zocket_core::testing::{ConnectOptions, TestError, TestServer};
use zocket_examples::reference::{self, RefCtx};

/// The sentinel RPC sent after the input's frames.
pub const SENTINEL: &str =
    r#"{"type":"bench.echo","payload":"sentinel","rpcId":"__fuzz_sentinel"}"#;

/// The most frames taken from one input.
pub const MAX_FRAMES: usize = 32;

/// Virtual time allowed for the replies and for the connection to end (the paused
/// clock jumps; this only bounds a hang).
const WAIT: Duration = Duration::from_secs(120);

/// Built once per process.
pub struct World {
    rt: tokio::runtime::Runtime,
    app: TestServer<RefCtx>,
    hub: Arc<LocalHub>,
}

impl World {
    /// A current-thread runtime with a paused clock and the reference server.
    pub fn new() -> World {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let hub = Arc::new(LocalHub::new());
        let app = rt.block_on(async {
            let server = Server::builder(reference::router())
                .hub(hub.clone())
                .build();
            TestServer::from_server(server)
        });
        World { rt, app, hub }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// The `rpcId`s of the client frames, with how many times each was sent.
fn expected_replies<'a>(frames: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut want: HashMap<String, usize> = HashMap::new();
    for f in frames {
        let id = match decode_client_frame(f) {
            Ok(frame) => frame.rpc_id.map(|id| id.into_owned()),
            Err(FrameError::MissingType { rpc_id }) => rpc_id,
            Err(_) => None,
        };
        if let Some(id) = id {
            *want.entry(id).or_default() += 1;
        }
    }
    want
}

/// Run one input; panics when an invariant does not hold.
pub fn run(world: &World, data: &[u8]) {
    let Some((&role, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let frames: Vec<&str> = text.split('\n').take(MAX_FRAMES).collect();
    let role = ["user", "admin", "moderator"][role as usize % 3];
    let want = expected_replies(frames.iter().copied().chain([SENTINEL]));
    world.rt.block_on(async {
        let client = world
            .app
            .connect_with(
                [("userName", "fuzz"), ("userRole", role)],
                ConnectOptions {
                    timeout: WAIT,
                    ..ConnectOptions::default()
                },
            )
            .await
            .expect("the fixed headers are accepted");
        for frame in &frames {
            if client.send_raw(*frame).is_err() {
                break;
            }
        }
        let _ = client.send_raw(SENTINEL);
        // Every reply, counted per rpcId, until each RPC has its own.
        let mut got: HashMap<String, usize> = HashMap::new();
        let mut missing = want.len();
        let waited = tokio::time::timeout(
            WAIT,
            client.wait_frame(|f| {
                if let Ok(sf) = decode_server_frame(f)
                    && matches!(&*sf.kind, "__rpc_res" | "__rpc_err")
                {
                    let id = sf.rpc_id.as_deref().unwrap_or_default().to_owned();
                    let n = got.entry(id.clone()).or_default();
                    *n += 1;
                    if want.get(&id) == Some(n) {
                        missing -= 1;
                    }
                }
                missing == 0
            }),
        )
        .await;
        match waited {
            Ok(Ok(_)) => {
                for (id, n) in &got {
                    if want.get(id) != Some(n) {
                        let sent: Vec<&&str> = frames.iter().filter(|f| f.contains(&**id)).collect();
                        let answers: Vec<String> = client
                            .frames()
                            .into_iter()
                            .filter(|f| f.contains(&**id))
                            .collect();
                        panic!(
                            "replies for rpcId {id:?}: {n}, sent {:?}; frames sent with it: {sent:?}; answers: {answers:?}",
                            want.get(id)
                        );
                    }
                }
            }
            Ok(Err(TestError::Closed)) => {
                let close = client.closed().await.expect("closed");
                let code = close.map(|c| c.code);
                assert!(
                    matches!(code, Some(1008 | 1009)),
                    "closed without a limit: {code:?}"
                );
            }
            Ok(Err(e)) => panic!("an RPC got no reply: {e}; replies {got:?}, sent {want:?}"),
            Err(_) => panic!("no reply within {WAIT:?} (virtual); replies {got:?}, sent {want:?}"),
        }
        for f in client.frames() {
            let v: serde_json::Value = serde_json::from_str(&f).expect("server frames are JSON");
            assert!(v.get("type").and_then(|t| t.as_str()).is_some(), "{f}");
        }
        client.close().await;
        drop(client);
        // Reset: this input's connection has ended before the next input starts, and
        // left nothing behind.
        tokio::time::timeout(WAIT, world.app.server().wait_until(|s| s.admitted().0 == 0))
            .await
            .expect("the connection ends once the client closed");
        assert_eq!(world.app.server().handle().local_connections(), 0);
        assert!(
            world.hub.local_ids().is_empty(),
            "a hub entry outlived its connection"
        );
        assert!(
            world.hub.local_rooms().is_empty(),
            "a room outlived its members"
        );
    });
}
