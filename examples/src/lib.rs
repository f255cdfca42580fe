//! Examples of Zocket for Rust.
//!
//! - [`reference`]: the reference app of REFERENCE_APP.md (contract, context,
//!   middleware and the complete router), served by the `reference` binary and used by
//!   the client tests.
//! - [`chat`]: the chat example with its browser page.
#![warn(missing_docs)]

pub mod chat;
pub mod reference;

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
