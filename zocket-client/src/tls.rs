//! `wss://`: rustls with the `ring` provider; webpki roots unless configured.

use std::sync::Arc;

use tokio_tungstenite::Connector;

/// The connector for a `wss://` connection: the configured rustls config, else the
/// default one (webpki roots).
pub(crate) fn connector(config: Option<&Arc<rustls::ClientConfig>>) -> Connector {
    let config = match config {
        Some(c) => c.clone(),
        None => default_config(),
    };
    Connector::Rustls(config)
}

/// A client config trusting `roots`, with the `ring` provider (independent of any
/// process-wide default provider).
pub(crate) fn config_with_roots(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions");
    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
}

fn default_config() -> Arc<rustls::ClientConfig> {
    static DEFAULT: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            config_with_roots(roots)
        })
        .clone()
}
