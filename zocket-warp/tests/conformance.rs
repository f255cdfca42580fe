//! The adapter conformance kit of zocket-core (`zocket_core::testing::conformance`)
//! against zocket-warp: the filter at `/`, served by `zocket_warp::serve` and by warp's
//! own `warp::serve`.

use zocket_core::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_warp_serve_passes_the_conformance_checks() {
    conformance::check(|server, listener| {
        zocket_warp::serve(listener, zocket_warp::upgrade(server.clone()), server)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_serve_passes_the_conformance_checks() {
    conformance::check(|server, listener| {
        warp::serve(zocket_warp::upgrade(server))
            .incoming(listener)
            .run()
    })
    .await;
}
