//! Raw HTTP/1.1 over a TCP socket: WebSocket upgrade requests (accepted or refused,
//! byte for byte as sent), plain `GET`s of a page or a metrics endpoint.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// The `Sec-WebSocket-Key` of RFC 6455's example, and the accept value it gets.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// An HTTP answer: the status line and headers, and the body.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The head (status line and headers) as sent.
    pub head: String,
    /// The body (JSON for refusals); empty for a `101`.
    pub body: String,
}

impl HttpAnswer {
    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Send `request` (raw bytes) and read the answer: the head, then `content-length`
/// bytes of body, or (without one, and not a `101`) everything until the peer closes
/// (de-chunked when `Transfer-Encoding: chunked`).
pub async fn send(addr: SocketAddr, request: &str) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the head ended: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut answer = HttpAnswer {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status in {head:?}")),
            head,
            body: String::new(),
        };
        let mut body = buf[end + 4..].to_vec();
        match answer.header("content-length") {
            Some(length) => {
                let length: usize = length.parse().unwrap();
                while body.len() < length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed inside the body");
                    body.extend_from_slice(&chunk[..n]);
                }
            }
            None if answer.status != 101 => {
                let _ = stream.read_to_end(&mut body).await;
            }
            None => {}
        }
        let chunked = answer
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        answer.body = String::from_utf8_lossy(&body).into_owned();
        if chunked {
            answer.body = dechunk(&answer.body);
        }
        answer
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("an HTTP answer in time")
}

/// The body of a `Transfer-Encoding: chunked` answer read to its end.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// `GET path` with `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str) -> HttpAnswer {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A WebSocket upgrade request: `line` (e.g. `GET / HTTP/1.1`) and the five headers
/// RFC 6455 asks for, with `overrides` replacing them by name (a `None` value drops the
/// header; a new name is added).
pub fn upgrade_request(line: &str, overrides: &[(&str, Option<&str>)]) -> String {
    let mut headers = vec![
        ("Host", Some("localhost")),
        ("Connection", Some("Upgrade")),
        ("Upgrade", Some("websocket")),
        ("Sec-WebSocket-Version", Some("13")),
        ("Sec-WebSocket-Key", Some(SAMPLE_KEY)),
    ];
    for (name, value) in overrides {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name, *value));
    }
    let mut out = format!("{line}\r\n");
    for (name, value) in headers {
        if let Some(value) = value {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("\r\n");
    out
}

/// Send a valid WebSocket upgrade request for `path_and_query` and read the answer.
pub async fn upgrade(addr: SocketAddr, path_and_query: &str) -> HttpAnswer {
    send(
        addr,
        &upgrade_request(&format!("GET {path_and_query} HTTP/1.1"), &[]),
    )
    .await
}
