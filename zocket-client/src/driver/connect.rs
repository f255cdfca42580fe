//! One connection attempt: TCP (and TLS), the WebSocket handshake, and what a refusal
//! means.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::endpoint::Endpoint;
use crate::config::ClientConfig;
use crate::error::{ConnectError, HandshakeRejection};

/// The WebSocket of one connection.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One connection attempt, within the connect timeout.
pub(crate) async fn open(endpoint: &Endpoint, config: &ClientConfig) -> Result<Ws, ConnectError> {
    let request = endpoint.request()?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes);
    #[cfg(feature = "tls")]
    let connector = if endpoint.tls {
        Some(crate::tls::connector(config.tls.as_ref()))
    } else {
        None
    };
    #[cfg(not(feature = "tls"))]
    let connector = None;
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, connector);
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Err(_) => Err(ConnectError::Timeout(config.connect_timeout)),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(classify(e)),
    }
}

/// Map a tungstenite connect error to a [`ConnectError`]: client-error statuses are
/// rejections (never retried), everything else is a transport error.
fn classify(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            if (400..500).contains(&status) && status != 408 && status != 429 {
                ConnectError::Rejected(HandshakeRejection::from_response(
                    status,
                    response.body().as_deref(),
                ))
            } else {
                ConnectError::Transport(format!("HTTP status {status}").into())
            }
        }
        tungstenite::Error::Url(u) => ConnectError::InvalidUrl(u.to_string()),
        other => ConnectError::Transport(Box::new(other)),
    }
}
