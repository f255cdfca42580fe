//! The reference app of Zocket for Rust, and what the example binaries share.
//!
//! - [`reference`](mod@reference): the reference app of REFERENCE_APP.md (contract, context,
//!   middleware and the complete router), served by the `reference` binary and used by
//!   the client tests and the client demo (`examples/client-demo`).
//! - [`prometheus`]: `--metrics ADDR` of the binaries (Prometheus scrape endpoint).
//! - [`soak`]: the soak run (many clients for a fixed time) and its invariants (the
//!   `soak` and `idle-probe` binaries).
//! - [`init_logging`], [`stop_signal`], [`run_until_stopped`], [`redis_hub`]: shared by
//!   every example binary (this package's and the chat example's, `examples/chat`).
#![warn(missing_docs)]

pub mod prometheus;
pub mod reference;
pub mod soak;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); colours only on a terminal.
/// Shared by the example binaries.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on Ctrl-C, or SIGTERM on Unix. Shared by the example binaries.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The shutdown of an example server: wait for Ctrl-C or SIGTERM, shut the Zocket
/// server down gracefully (in-flight calls finish, sockets close with 1001), then stop
/// the HTTP server and wait up to 5 s for it.
pub async fn run_until_stopped<C: zocket_core::Context>(
    server: &zocket_core::Server<C>,
    stop_http: tokio::sync::oneshot::Sender<()>,
    http: tokio::task::JoinHandle<()>,
) {
    stop_signal().await;
    tracing::info!("shutting down: finishing in-flight calls, then closing sockets (1001)");
    server.shutdown().await;
    let _ = stop_http.send(());
    match tokio::time::timeout(std::time::Duration::from_secs(5), http).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("HTTP connections still open after 5 s; exiting anyway"),
    }
    tracing::info!("stopped");
}

/// Connect the distributed hub for the example binaries' `--redis URL` (and `--node
/// NAME`): key prefix from the environment variable `ZOCKET_REDIS_PREFIX` (default
/// `zocket`), so separate clusters (e.g. parallel tests) can share one Redis.
pub async fn redis_hub(
    url: &str,
    node: Option<&str>,
) -> Result<std::sync::Arc<zocket_redis::RedisHub>, zocket_redis::RedisHubError> {
    let mut cfg = zocket_redis::RedisHubConfig::new(url);
    if let Ok(prefix) = std::env::var("ZOCKET_REDIS_PREFIX") {
        cfg = cfg.prefix(prefix);
    }
    if let Some(node) = node {
        cfg = cfg.node_name(node);
    }
    let hub = zocket_redis::RedisHub::connect(cfg).await?;
    tracing::info!(node = hub.node_name(), "distributed hub on redis");
    Ok(hub)
}
