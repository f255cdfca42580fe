//! `--metrics ADDR` of the example binaries: zocket-core's metrics (see
//! [`zocket_core::metric_names`]) recorded by `metrics-exporter-prometheus` and served in the
//! Prometheus text format at `http://ADDR/metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use warp::Filter;
use zocket_core::metric_names as names;

/// The bucket bounds of `zocket_rpc_duration_seconds`, in seconds (rendered as a
/// Prometheus histogram rather than a summary).
pub const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// How often histogram samples are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The Prometheus recorder could not be built or installed (e.g. another recorder is
    /// installed already).
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(#[from] BuildError),
    /// The address could not be bound.
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The running metrics endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// The bound address (the real port when port 0 was asked for).
    pub addr: SocketAddr,
    /// The recorder's handle (renders the same text the endpoint serves).
    pub handle: PrometheusHandle,
}

/// Install the Prometheus recorder process-wide (with the global label `node` when
/// given) and serve `GET /metrics` on `addr`; every other path is 404. Runs until the
/// process exits. Must be called inside a tokio runtime.
pub async fn serve(addr: SocketAddr, node: Option<&str>) -> Result<MetricsServer, MetricsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let mut builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(names::RPC_DURATION.to_owned()), RPC_BUCKETS)?;
    if let Some(node) = node {
        builder = builder.add_global_label("node", node);
    }
    let handle = builder.install_recorder()?;
    zocket_core::describe_metrics();

    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let render = handle.clone();
    let route = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            // Histogram samples recorded since the last upkeep are included.
            render.run_upkeep();
            warp::reply::with_header(
                render.render(),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
        });
    tokio::spawn(warp::serve(route).incoming(listener).run());
    tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    Ok(MetricsServer {
        addr: bound,
        handle,
    })
}
