//! Fan-out of one event to the 1000 members of a room through the default `LocalHub`:
//! from `ServerHandle::send(..).to_room(..)` until every member's writer has handed the
//! frame to its transport. Run: `cargo bench -p zocket-core --bench fanout`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::Notify;

const MEMBERS: usize = 1000;

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let count = Arc::new(AtomicUsize::new(0));
    let target = Arc::new(AtomicUsize::new(usize::MAX));
    let notify = Arc::new(Notify::new());
    let server = common::server();
    rt.block_on(async {
        for _ in 0..MEMBERS {
            let out = common::Outbox::counting(count.clone(), target.clone(), notify.clone());
            let inbox = common::open(&server, out).await;
            inbox.push(common::frame(r#"{"type":"bench.join","rpcId":"j"}"#));
        }
        // welcome + join reply per member
        while count.load(Ordering::Relaxed) < 2 * MEMBERS {
            tokio::task::yield_now().await;
        }
    });
    let handle = server.handle();
    let payload = || common::TickPayload {
        seq: 1,
        pad: "x".repeat(64),
    };
    c.bench_function("fanout_1000_members", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let p = payload();
                    let base = count.load(Ordering::Relaxed);
                    target.store(base + MEMBERS, Ordering::Relaxed);
                    let start = Instant::now();
                    let d = handle.send::<common::Tick>(p).to_room("r");
                    std::hint::black_box(d);
                    while count.load(Ordering::Relaxed) < base + MEMBERS {
                        notify.notified().await;
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = fanout
}
criterion_main!(benches);
