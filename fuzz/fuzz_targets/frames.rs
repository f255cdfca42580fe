//! Frame decoding + dispatch against the reference router: the input is split at
//! newlines into text frames (at most 32), sent by one virtual client, followed by a
//! sentinel RPC. Invariants: no panic outside the reference app's deliberate
//! `fail.panic`, the sentinel is answered (or the connection was closed by a limit,
//! with a close frame), every server frame is a JSON object with a string `type`.
#![no_main]

use std::sync::{LazyLock, Once};

use libfuzzer_sys::fuzz_target;
use zocket_core::testing::TestServer;
use zocket_examples::reference::{self, RefCtx};

const SENTINEL: &str = r#"{"type":"bench.echo","payload":"sentinel","rpcId":"__fuzz_sentinel"}"#;

struct World {
    rt: tokio::runtime::Runtime,
    app: TestServer<RefCtx>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let app = rt.block_on(async { TestServer::new(reference::router()) });
    World { rt, app }
});

static HOOK: Once = Once::new();

/// Let the reference app's deliberate panic (answered `INTERNAL`) through; any other
/// panic reaches libFuzzer's hook (a finding).
fn install_hook() {
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.contains("deliberate panic from the reference app") {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let Some((&role, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let frames: Vec<&str> = text.split('\n').take(32).collect();
    let role = ["user", "admin", "moderator"][role as usize % 3];
    let world = &*WORLD;
    world.rt.block_on(async {
        let client = world
            .app
            .connect([("userName", "fuzz"), ("userRole", role)])
            .await
            .expect("the fixed headers are accepted");
        for frame in &frames {
            if client.send_raw(*frame).is_err() {
                break;
            }
        }
        let _ = client.send_raw(SENTINEL);
        match client
            .wait_frame(|f| f.contains("__fuzz_sentinel") && f.contains("__rpc_res"))
            .await
        {
            Ok(_) => {}
            Err(zocket_core::testing::TestError::Closed) => {
                let close = client.closed().await.expect("closed");
                let code = close.map(|c| c.code);
                assert!(
                    matches!(code, Some(1008 | 1009)),
                    "closed without a limit: {code:?}"
                );
            }
            Err(e) => panic!("the sentinel RPC got no reply: {e}"),
        }
        for f in client.frames() {
            let v: serde_json::Value = serde_json::from_str(&f).expect("server frames are JSON");
            assert!(v.get("type").and_then(|t| t.as_str()).is_some(), "{f}");
        }
        client.close().await;
    });
});
