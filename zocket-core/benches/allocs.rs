//! Heap allocations per dispatched RPC, counted by a global allocator wrapper: from the
//! frame text the adapter hands over to the reply frame the driver writes (in-memory
//! transport that allocates nothing per frame). Prints allocations/op per route.
//! Run: `cargo bench -p zocket-core --bench allocs`.
//!
//! `bench.num` (a number in, a number out) has input and output values that allocate
//! nothing, so its count is the dispatcher's own plus the reply frame's buffer (one
//! allocation at best). `bench.num.sync` is the same by a plain-function handler
//! (`Router::on_sync`: no future). `bench.echo` adds what `serde_json::Value` allocates.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(
            new_size.saturating_sub(layout.size()) as u64,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot() -> (u64, u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        REALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less args; stay quick.
    let ops: u64 = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        1_000
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = common::server();
    let (inbox, out) = rt.block_on(common::rpc_client(&server));
    println!("allocations per dispatched RPC (frame text in, reply frame out), {ops} calls each:");
    for (name, request, expected) in [common::NUM, common::NUM_SYNC, common::ECHO] {
        let req = common::frame(request);
        rt.block_on(async {
            // Warm up: channel blocks, hash maps and buffers reach their steady size.
            for _ in 0..1_000 {
                inbox.push(req.clone());
                assert_eq!(out.next().await.as_str(), expected);
            }
            let (a0, r0, b0) = snapshot();
            for _ in 0..ops {
                inbox.push(req.clone());
                std::hint::black_box(out.next().await);
            }
            let (a1, r1, b1) = snapshot();
            println!(
                "  {name:<14} {:.2} allocations/op ({:.2} allocs + {:.2} reallocs), {:.0} bytes/op",
                (a1 - a0 + r1 - r0) as f64 / ops as f64,
                (a1 - a0) as f64 / ops as f64,
                (r1 - r0) as f64 / ops as f64,
                (b1 - b0) as f64 / ops as f64,
            );
        });
    }
}
