//! The soak in a short form (issue 9): a few hundred clients for a few seconds on both
//! adapters; every invariant of [`zocket_examples::soak`] must hold. The long run is
//! the `soak` binary.

use std::time::Duration;

use zocket_examples::soak::{self, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_keeps_every_invariant_on_both_adapters() {
    for hyper in [false, true] {
        let report = soak::run(SoakConfig {
            clients: 200,
            duration: Duration::from_secs(3),
            rooms: 10,
            hyper,
        })
        .await;
        assert!(report.ok(), "hyper={hyper}: {report:#?}");
        assert!(report.ticks > 0 && report.sessions > 200, "{report:#?}");
    }
}
