//! The handshake: admission (RFC 6455 validation) and the header mapping of
//! `Server::handshake` with the reference app's headers type; see `checks/handshake.rs`
//! (the input format and the invariants, shared with the regression test of the normal
//! suite).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

#[path = "../checks/handshake.rs"]
mod checks;

/// Built once: the runtime and the server.
static WORLD: LazyLock<checks::World> = LazyLock::new(checks::World::new);

fuzz_target!(|data: &[u8]| {
    checks::run(&WORLD, data);
});
