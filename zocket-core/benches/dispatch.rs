//! Dispatch of one RPC, from the frame text the adapter hands over to the reply bytes
//! the driver writes, through the public adapter seam (`Server::handshake`,
//! `Accepted::serve`) over an in-memory transport. Run: `cargo bench -p zocket-core --bench dispatch`.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = common::server();
    let (inbox, out) = rt.block_on(common::rpc_client(&server));
    let mut group = c.benchmark_group("dispatch");
    for (name, request, expected) in [common::ECHO, common::NUM, common::NUM_SYNC] {
        let req = common::frame(request);
        rt.block_on(async {
            inbox.push(req.clone());
            assert_eq!(out.next().await.as_str(), expected);
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        inbox.push(req.clone());
                        std::hint::black_box(out.next().await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = dispatch
}
criterion_main!(benches);
