//! The responses the service writes: `101 Switching Protocols` and the JSON refusals
//! (the same status, headers and body in every adapter).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use zocket_core::HandshakeError;

use crate::socket;

/// The body of every response [`ZocketService`](crate::ZocketService) produces (empty
/// for `101`, JSON for refusals).
pub type ResponseBody = Full<Bytes>;

/// Every header as a `(name, value)` pair; a value that is not UTF-8 is decoded lossily.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub(crate) fn switching_protocols(key: &HeaderValue) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    // The accept key is base64, always a valid header value.
    if let Ok(accept) = HeaderValue::from_str(&socket::accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

fn json_response(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A JSON error body; `message` is always a fixed text of this crate (no escaping needed).
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        format!(r#"{{"error":"{code}","message":"{message}"}}"#),
    )
}

/// The response to a refused handshake: the status, the JSON body and the headers of
/// [`HandshakeError`] (the same in every adapter).
pub(crate) fn refusal(error: &HandshakeError) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = json_response(status, error.body());
    for (name, value) in error.response_headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}
