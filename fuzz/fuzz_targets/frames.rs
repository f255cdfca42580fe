//! Frame decoding + dispatch against the reference router: see `checks/frames.rs` (the
//! input format and the invariants, shared with the regression test of the normal
//! suite).
#![no_main]

use std::sync::{LazyLock, Once};

use libfuzzer_sys::fuzz_target;

#[path = "../checks/frames.rs"]
mod checks;

/// Built once: the runtime and the server (each input resets to an empty server).
static WORLD: LazyLock<checks::World> = LazyLock::new(checks::World::new);

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
    checks::run(&WORLD, data);
});
