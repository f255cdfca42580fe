//! [`Endpoint`]: where to connect, with the handshake headers as query parameters and
//! HTTP headers.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request};
use tracing::debug;
use zocket_core::protocol::VERSION;

use crate::error::ConnectError;

/// The name of the version header and query parameter.
const VERSION_HEADER: &str = "x-zocket-version";

/// Whether a header's value is a secret: never logged, never shown by `Debug`.
pub(crate) fn is_secret_header(name: &str) -> bool {
    ["token", "authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Where to connect: the URL with the headers as query parameters, plus the headers that
/// are valid HTTP headers.
pub(crate) struct Endpoint {
    url: url::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) tls: bool,
}

impl Endpoint {
    /// `http_only`: names of headers sent as HTTP headers only, never in the URL.
    pub(crate) fn new(
        url: &str,
        headers: &[(String, String)],
        http_only: &[String],
    ) -> Result<Self, ConnectError> {
        let mut parsed =
            url::Url::parse(url).map_err(|e| ConnectError::InvalidUrl(format!("{url}: {e}")))?;
        let scheme = match parsed.scheme() {
            "ws" | "http" => "ws",
            "wss" | "https" => "wss",
            other => {
                return Err(ConnectError::InvalidUrl(format!(
                    "{url}: unsupported scheme `{other}` (expected ws:// or wss://)"
                )));
            }
        };
        if scheme == "wss" && !cfg!(feature = "tls") {
            return Err(ConnectError::InvalidUrl(format!(
                "{url}: wss:// needs zocket-client's `tls` feature (on by default)"
            )));
        }
        if parsed.scheme() != scheme && parsed.set_scheme(scheme).is_err() {
            return Err(ConnectError::InvalidUrl(format!(
                "{url}: cannot use scheme {scheme}"
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConnectError::InvalidUrl(format!("{url}: no host")));
        }
        let user_sets_version = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(VERSION_HEADER));
        let mut all: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !user_sets_version {
            all.push((VERSION_HEADER, VERSION));
        }
        let is_http_only = |k: &str| http_only.iter().any(|n| n == k);
        {
            let mut query = parsed.query_pairs_mut();
            for (k, v) in &all {
                if !is_http_only(k) {
                    query.append_pair(k, v);
                }
            }
        }
        let mut http_headers = Vec::new();
        for (k, v) in all {
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(name), Ok(mut value)) => {
                    if is_secret_header(k) || is_http_only(k) {
                        value.set_sensitive(true);
                    }
                    http_headers.push((name, value))
                }
                _ if is_http_only(k) => {
                    return Err(ConnectError::InvalidUrl(format!(
                        "header `{k}` is to be sent as an HTTP header only, but its name or value is not valid in HTTP"
                    )));
                }
                _ => debug!(
                    header = k,
                    "not a valid HTTP header; sent as a query parameter only"
                ),
            }
        }
        Ok(Self {
            tls: scheme == "wss",
            url: parsed,
            headers: http_headers,
        })
    }

    pub(crate) fn request(&self) -> Result<Request<()>, ConnectError> {
        let mut req = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::InvalidUrl(format!("{}: {e}", self.url)))?;
        let headers = req.headers_mut();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_go_to_query_and_http() {
        let t = Endpoint::new(
            "ws://127.0.0.1:1/ws?a=1",
            &[
                ("userName".into(), "Ada Lovelace".into()),
                ("bad name".into(), "x".into()),
            ],
            &[],
        )
        .unwrap();
        let req = t.request().unwrap();
        let uri = req.uri().to_string();
        assert!(uri.contains("a=1"), "{uri}");
        assert!(uri.contains("userName=Ada+Lovelace"), "{uri}");
        assert!(uri.contains("bad+name=x"), "{uri}");
        assert!(uri.contains("x-zocket-version=1"), "{uri}");
        assert_eq!(req.headers().get("username").unwrap(), "Ada Lovelace");
        assert_eq!(req.headers().get("x-zocket-version").unwrap(), VERSION);
    }

    #[test]
    fn http_only_headers_never_reach_the_url() {
        let t = Endpoint::new(
            "ws://127.0.0.1:1/",
            &[
                ("token".into(), "s3cret".into()),
                ("userName".into(), "Ada".into()),
            ],
            &["token".into()],
        )
        .unwrap();
        let req = t.request().unwrap();
        let uri = req.uri().to_string();
        assert!(!uri.contains("s3cret") && !uri.contains("token"), "{uri}");
        assert!(uri.contains("userName=Ada"), "{uri}");
        let token = req.headers().get("token").unwrap();
        assert_eq!(token, "s3cret");
        assert!(token.is_sensitive());
        // A header that cannot travel as HTTP is an error, not silently put in the URL.
        assert!(matches!(
            Endpoint::new(
                "ws://h/",
                &[("bad name".into(), "x".into())],
                &["bad name".into()]
            ),
            Err(ConnectError::InvalidUrl(_))
        ));
    }

    #[test]
    fn bad_urls() {
        assert!(matches!(
            Endpoint::new("nope", &[], &[]),
            Err(ConnectError::InvalidUrl(_))
        ));
        assert!(matches!(
            Endpoint::new("ftp://x/", &[], &[]),
            Err(ConnectError::InvalidUrl(_))
        ));
        assert!(Endpoint::new("http://localhost:3000", &[], &[]).is_ok());
    }
}
