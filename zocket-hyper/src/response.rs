//! The responses the service writes: `101 Switching Protocols` and the JSON refusals
//! (the same status, headers and body in every adapter).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use zocket_core::HandshakeError;

use crate::service::ResponseBody;
use crate::socket;

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

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use zocket_core::{Context, Server};

    use crate::ZocketService;

    fn upgrade_request() -> http::request::Builder {
        Request::get("/")
            .header("host", "localhost")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn the_accept_key_is_derived_from_the_request_key() {
        let res = switching_protocols(&HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455's example key and accept value.
        assert_eq!(
            res.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    struct Nobody;
    impl Context for Nobody {
        type Headers = std::collections::HashMap<String, String>;
        type State = ();
        async fn connect(_: zocket_core::Connect<'_, Self>) -> Result<Self, zocket_core::Reject> {
            Ok(Nobody)
        }
    }

    async fn answer(service: &ZocketService<Nobody>, req: Request<()>) -> Response<ResponseBody> {
        service.handle(req).await.unwrap()
    }

    #[tokio::test]
    async fn requests_that_are_not_upgrades_are_refused_with_json() {
        let service = ZocketService::new(Server::new(zocket_core::Router::<Nobody>::new()));
        let post = Request::post("/").body(()).unwrap();
        let res = answer(&service, post).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");

        let mut old = upgrade_request().body(()).unwrap();
        *old.version_mut() = http::Version::HTTP_10;
        assert_eq!(
            answer(&service, old).await.status(),
            StatusCode::BAD_REQUEST
        );

        let mut old = upgrade_request().body(()).unwrap();
        old.headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let res = answer(&service, old).await;
        assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(res.headers()[header::SEC_WEBSOCKET_VERSION], "13");

        let mut short_key = upgrade_request().body(()).unwrap();
        short_key.headers_mut().insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("c2hvcnQ="),
        );
        assert_eq!(
            answer(&service, short_key).await.status(),
            StatusCode::BAD_REQUEST
        );

        // Valid, but the connection was not served with upgrades: a server error.
        let valid = upgrade_request().body(()).unwrap();
        assert_eq!(
            answer(&service, valid).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );

        let at_root = service.clone().with_path("/");
        let elsewhere = Request::get("/other").body(()).unwrap();
        let res = answer(&at_root, elsewhere).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn refusals_carry_the_handshake_status_and_body() {
        let res = refusal(&HandshakeError::Unauthorized("invalid token".into()));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let res = refusal(&HandshakeError::Unavailable {
            reason: "too many connections",
            retry_after: 7,
        });
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
    }
}
