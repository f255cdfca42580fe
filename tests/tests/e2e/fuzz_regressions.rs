//! The fuzz targets' inputs kept in the repository (`fuzz/regressions/<target>/`: the
//! seeds, and every input that ever found something), replayed through the same checks
//! as the fuzz targets (`fuzz/checks/*.rs`), in the normal suite.

use std::path::PathBuf;

#[path = "../../../fuzz/checks/frames.rs"]
mod frames;
#[path = "../../../fuzz/checks/handshake.rs"]
mod handshake;

/// The files of `fuzz/regressions/<target>/`, sorted; there must be some.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// Run every input of `target`, naming the one that fails.
fn replay(target: &str, run: impl Fn(&[u8])) {
    for (path, data) in corpus(target) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{}: {msg}", path.display());
        }
    }
}

#[test]
fn the_frames_regressions_keep_every_invariant() {
    let world = frames::World::new();
    replay("frames", |data| frames::run(&world, data));
}

#[test]
fn the_handshake_regressions_keep_every_invariant() {
    let world = handshake::World::new();
    replay("handshake", |data| handshake::run(&world, data));
}
