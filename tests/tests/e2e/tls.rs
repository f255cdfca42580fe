//! TLS end to end (issue 9): `wss://` with zocket-client (rustls) against
//! `zocket_hyper::serve_tls` and `zocket_warp::serve_tls`, with a self-signed
//! certificate made at test time (rcgen).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zocket_client::{Client, ConnectError, Reconnect};
use zocket_core::Server;
use zocket_examples::reference;
use zocket_hyper::rustls;
use zocket_hyper::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Cert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn self_signed() -> Cert {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert {
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
    }
}

fn server_config(cert: &Cert) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
            .unwrap(),
    )
}

#[derive(Debug, Clone, Copy)]
enum Adapter {
    Warp,
    Hyper,
}

async fn start_tls(adapter: Adapter, cert: &Cert) -> (Server<reference::RefCtx>, u16) {
    let server = Server::new(reference::router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = server_config(cert);
    match adapter {
        Adapter::Warp => {
            tokio::spawn(zocket_warp::serve_tls(
                listener,
                zocket_warp::upgrade(server.clone()),
                server.clone(),
                tls,
            ));
        }
        Adapter::Hyper => {
            tokio::spawn(zocket_hyper::serve_tls(listener, server.clone(), tls));
        }
    }
    (server, port)
}

fn builder(url: String) -> zocket_client::ClientBuilder {
    Client::builder(url)
        .reconnect(Reconnect::disabled())
        .connect_timeout(Duration::from_secs(10))
        .header("userName", "Ada")
}

#[tokio::test]
async fn wss_end_to_end_on_both_adapters() {
    let cert = self_signed();
    for adapter in [Adapter::Warp, Adapter::Hyper] {
        let (server, port) = start_tls(adapter, &cert).await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der.clone()).unwrap();

        // Trusting the certificate: a full session over TLS, with a secret header sent
        // as an HTTP header only.
        let client = builder(format!("wss://localhost:{port}/"))
            .tls_root_certificates(roots.clone())
            .header_only("token", "good")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{adapter:?}: {e}"));
        let hello = client
            .call_raw("greet", json!({"name": "TLS"}))
            .await
            .unwrap();
        assert_eq!(hello, json!("Hello, TLS!"), "{adapter:?}");
        assert_eq!(server.stats().connections_open, 1);
        client.close().await;

        // The same with a whole rustls ClientConfig.
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = builder(format!("wss://localhost:{port}/"))
            .tls_config(Arc::new(config))
            .connect()
            .await
            .unwrap();
        assert_eq!(
            client
                .call_raw("greet", json!({"name": "again"}))
                .await
                .unwrap(),
            json!("Hello, again!")
        );
        client.close().await;

        // The default roots (webpki) do not trust a self-signed certificate.
        let err = builder(format!("wss://localhost:{port}/"))
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::Transport(_)),
            "{adapter:?}: {err:?}"
        );
        // Plain ws:// to a TLS port is not a WebSocket.
        assert!(
            builder(format!("ws://localhost:{port}/"))
                .connect()
                .await
                .is_err()
        );
        server.shutdown().await;
    }
}
