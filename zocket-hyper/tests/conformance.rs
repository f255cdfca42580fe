//! The adapter conformance kit of zocket-core (`zocket_core::testing::conformance`)
//! against zocket-hyper: `zocket_hyper::serve`, and the service mounted at `/` in axum.

use zocket_core::testing::conformance;
use zocket_hyper::ZocketService;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_hyper_serve_passes_the_conformance_checks() {
    conformance::check(|server, listener| zocket_hyper::serve(listener, server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_in_axum_passes_the_conformance_checks() {
    conformance::check(|server, listener| async move {
        let app = axum::Router::new().route_service("/", ZocketService::new(server));
        let _ = axum::serve(listener, app).await;
    })
    .await;
}
