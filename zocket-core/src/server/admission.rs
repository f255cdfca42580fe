//! Admission control, before the upgrade: the RFC 6455 §4.2.1 checks of an upgrade
//! request ([`validate_upgrade`]) and the connection slots ([`Slots`], counted in total
//! and per remote IP).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::handshake_error::HandshakeError;
use crate::stats::{Stats, inc};

/// The HTTP version of an upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/0.9.
    Http09,
    /// HTTP/1.0: refused (RFC 6455 requires HTTP/1.1 or later).
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2 (WebSockets over HTTP/2 use extended CONNECT, RFC 8441, which no adapter
    /// serves; such a request is refused as not a GET).
    H2,
    /// HTTP/3.
    H3,
}

/// What [`validate_upgrade`] looks at: the request line and the headers, as the adapter's HTTP
/// stack parsed them.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeRequest<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The HTTP version.
    pub version: HttpVersion,
    /// Every header as `(name, value)`; names in any case.
    pub headers: &'a [(String, String)],
}

impl UpgradeRequest<'_> {
    fn header(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (any occurrence) holds `token`, ignoring case.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

fn bad(message: &'static str) -> HandshakeError {
    HandshakeError::BadRequest(message)
}

/// RFC 6455 §4.2.1: whether the request is a valid WebSocket opening handshake. In
/// order: `GET`, HTTP/1.1 or later, `Host`, `Upgrade: websocket`, `Connection: upgrade`,
/// a `Sec-WebSocket-Key` that decodes to 16 bytes (all `400 BAD_REQUEST`), then
/// `Sec-WebSocket-Version: 13` (else `426` with `Sec-WebSocket-Version: 13`).
///
/// Both adapters call it with what their HTTP stack parsed, then
/// [`Server::handshake`](crate::Server::handshake), which takes a connection slot (held
/// by [`Accepted`](crate::Accepted), then by the served connection, freed when it ends).
/// So every adapter refuses the same requests with the same status and JSON body
/// (PROTOCOL.md, handshake):
///
/// | refusal | status | body `error` |
/// |---|---|---|
/// | not a GET, HTTP/1.0, no `Host`, no `Upgrade: websocket`, no `Connection: upgrade`, a `Sec-WebSocket-Key` that is not 16 base64 bytes | `400` | `BAD_REQUEST` |
/// | `Sec-WebSocket-Version` other than 13 | `426` with `Sec-WebSocket-Version: 13` | `BAD_REQUEST` |
/// | over [`ServerConfig::max_connections`](crate::ServerConfig::max_connections) or [`max_connections_per_ip`](crate::ServerConfig::max_connections_per_ip), or shutting down | `503` with `Retry-After` | `UNAVAILABLE` |
///
/// ```
/// use zocket_core::{HttpVersion, UpgradeRequest, validate_upgrade};
/// let headers = vec![
///     ("host".to_owned(), "example.com".to_owned()),
///     ("upgrade".to_owned(), "websocket".to_owned()),
///     ("connection".to_owned(), "Upgrade".to_owned()),
///     ("sec-websocket-key".to_owned(), "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
///     ("sec-websocket-version".to_owned(), "13".to_owned()),
/// ];
/// let req = UpgradeRequest { method: "GET", version: HttpVersion::Http11, headers: &headers };
/// assert!(validate_upgrade(&req).is_ok());
///
/// let old = UpgradeRequest { version: HttpVersion::Http10, ..req };
/// assert_eq!(validate_upgrade(&old).unwrap_err().status(), 400);
/// ```
pub fn validate_upgrade(req: &UpgradeRequest<'_>) -> Result<(), HandshakeError> {
    if req.method != "GET" {
        return Err(bad("a WebSocket upgrade must be a GET request"));
    }
    if req.version < HttpVersion::Http11 {
        return Err(bad("a WebSocket upgrade needs HTTP/1.1 or later"));
    }
    if req.header("host").all(|h| h.trim().is_empty()) {
        return Err(bad("missing Host header"));
    }
    if !req.has_token("upgrade", "websocket") {
        return Err(bad("missing `Upgrade: websocket`"));
    }
    if !req.has_token("connection", "upgrade") {
        return Err(bad("missing `Connection: upgrade`"));
    }
    let mut keys = req.header("sec-websocket-key");
    match (keys.next(), keys.next()) {
        (Some(key), None) if key_is_valid(key) => {}
        (None, _) => return Err(bad("missing Sec-WebSocket-Key")),
        _ => return Err(bad("Sec-WebSocket-Key must be 16 base64-encoded bytes")),
    }
    let mut versions = req.header("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.trim() == "13" => Ok(()),
        _ => Err(HandshakeError::UnsupportedVersion),
    }
}

fn key_is_valid(key: &str) -> bool {
    let key = key.trim();
    // 16 bytes are 24 base64 characters; a longer value is refused before decoding.
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

/// The connection counters of one server: in total and per remote IP.
#[derive(Debug)]
pub(crate) struct Slots {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<SlotState>,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct SlotState {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why no slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Total,
    PerIp,
}

impl Slots {
    pub(crate) fn new(max_total: usize, max_per_ip: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            state: Mutex::new(SlotState::default()),
            stats,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a slot for a connection from `ip` (none: counted in the total only).
    pub(crate) fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Full> {
        let ip = ip.map(|ip| ip.to_canonical());
        let mut st = self.lock();
        if st.total >= self.max_total {
            inc(&self.stats.admission_full);
            return Err(Full::Total);
        }
        if let Some(ip) = ip {
            let n = st.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                if *n == 0 {
                    st.per_ip.remove(&ip);
                }
                inc(&self.stats.admission_full);
                return Err(Full::PerIp);
            }
            *n += 1;
        }
        st.total += 1;
        drop(st);
        self.stats.changed();
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections holding a slot now.
    pub(crate) fn total(&self) -> usize {
        self.lock().total
    }

    /// Remote IPs holding at least one slot now.
    pub(crate) fn ips(&self) -> usize {
        self.lock().per_ip.len()
    }
}

/// One admitted connection's place in the limits; freed on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = st.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    st.per_ip.remove(&ip);
                }
            }
        }
        drop(st);
        self.slots.stats.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<(String, String)> {
        [
            ("Host", "localhost"),
            ("Upgrade", "WebSocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn check(method: &str, version: HttpVersion, h: &[(String, String)]) -> Option<u16> {
        validate_upgrade(&UpgradeRequest {
            method,
            version,
            headers: h,
        })
        .err()
        .map(|e| e.status())
    }

    fn without(name: &str) -> Vec<(String, String)> {
        headers()
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .collect()
    }

    fn with(name: &str, value: &str) -> Vec<(String, String)> {
        let mut h = without(name);
        h.push((name.to_owned(), value.to_owned()));
        h
    }

    #[test]
    fn a_valid_request_passes() {
        assert_eq!(check("GET", HttpVersion::Http11, &headers()), None);
        assert_eq!(check("GET", HttpVersion::H3, &headers()), None);
    }

    #[test]
    fn each_rfc_6455_requirement_is_checked() {
        use HttpVersion::*;
        assert_eq!(check("POST", Http11, &headers()), Some(400));
        assert_eq!(check("get", Http11, &headers()), Some(400));
        assert_eq!(check("GET", Http10, &headers()), Some(400));
        assert_eq!(check("GET", Http09, &headers()), Some(400));
        assert_eq!(check("GET", Http11, &without("host")), Some(400));
        assert_eq!(check("GET", Http11, &with("host", " ")), Some(400));
        assert_eq!(check("GET", Http11, &without("upgrade")), Some(400));
        assert_eq!(check("GET", Http11, &with("upgrade", "h2c")), Some(400));
        assert_eq!(check("GET", Http11, &without("connection")), Some(400));
        assert_eq!(
            check("GET", Http11, &with("connection", "close")),
            Some(400)
        );
        assert_eq!(
            check("GET", Http11, &without("sec-websocket-key")),
            Some(400)
        );
        for key in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZSE=",
            "!!!!!!!!!!!!!!!!!!!!!!==",
        ] {
            assert_eq!(
                check("GET", Http11, &with("sec-websocket-key", key)),
                Some(400),
                "{key:?}"
            );
        }
        let mut two_keys = headers();
        two_keys.push((
            "sec-websocket-key".into(),
            "AAAAAAAAAAAAAAAAAAAAAA==".into(),
        ));
        assert_eq!(check("GET", Http11, &two_keys), Some(400));
        assert_eq!(
            check("GET", Http11, &without("sec-websocket-version")),
            Some(426)
        );
        assert_eq!(
            check("GET", Http11, &with("sec-websocket-version", "8")),
            Some(426)
        );
        let e = validate_upgrade(&UpgradeRequest {
            method: "GET",
            version: Http11,
            headers: &with("sec-websocket-version", "8"),
        })
        .unwrap_err();
        assert_eq!(
            e.response_headers(),
            vec![("sec-websocket-version", "13".to_owned())]
        );
        assert!(
            e.body().starts_with(r#"{"error":"BAD_REQUEST""#),
            "{}",
            e.body()
        );
    }

    #[test]
    fn slots_count_in_total_and_per_ip_and_free_on_drop() {
        let stats = Arc::new(Stats::default());
        let slots = Slots::new(3, 2, stats.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let a6: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = slots.acquire(Some(a)).unwrap();
        let s2 = slots.acquire(Some(a6)).unwrap();
        assert_eq!(slots.acquire(Some(a)).unwrap_err(), Full::PerIp);
        let s3 = slots.acquire(Some(b)).unwrap();
        assert_eq!(slots.acquire(None).unwrap_err(), Full::Total);
        assert_eq!((slots.total(), slots.ips()), (3, 2));
        drop(s1);
        let s4 = slots.acquire(Some(a)).unwrap();
        drop((s2, s3, s4));
        assert_eq!((slots.total(), slots.ips()), (0, 0));
        assert_eq!(stats.snapshot().admission_full, 2);
    }
}
