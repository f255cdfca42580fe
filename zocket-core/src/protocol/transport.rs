//! The transport seam: what an adapter converts its WebSocket's messages to and from,
//! so that no transport type reaches the engine.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// A complete text frame ready to be written to a socket: always valid UTF-8 JSON.
///
/// Cheap to clone (reference counted), so one encoded event is shared by every
/// recipient's queue.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(pub(super) Bytes);

impl Text {
    /// The frame's bytes (valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The frame as a string (no check: a `Text` is valid UTF-8 by construction).
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees UTF-8: `From<String>`/`From<&str>` take
        // strings, `TryFrom<Bytes>` checks, and `from_utf8_unchecked`'s caller promises it.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
    /// Adopt bytes that the transport has already checked to be UTF-8 (a WebSocket text
    /// frame as tungstenite delivers it), without copying or checking them again.
    ///
    /// # Safety
    /// `bytes` must be valid UTF-8; [`Text::as_str`] relies on it.
    pub unsafe fn from_utf8_unchecked(bytes: Bytes) -> Self {
        Self(bytes)
    }
    /// The underlying shared bytes (valid UTF-8), for adapters.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}
impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}
/// Adopts bytes that a transport already holds (no copy), after checking they are
/// valid UTF-8.
///
/// ```
/// use bytes::Bytes;
/// use zocket_core::protocol::Text;
/// let text = Text::try_from(Bytes::from_static(b"{\"type\":\"ping\"}")).unwrap();
/// assert_eq!(text.as_str(), "{\"type\":\"ping\"}");
/// assert!(Text::try_from(Bytes::from_static(&[0xff, 0xfe])).is_err());
/// ```
impl TryFrom<Bytes> for Text {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WebSocket frame as the connection driver sees it. Adapters convert their
/// framework's message type to and from this, so no transport type leaks into core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// A text frame.
    Text(Text),
    /// A binary frame (not part of v1: answered with `BAD_REQUEST`).
    Binary(Bytes),
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A close frame with an optional code and reason.
    Close(Option<CloseFrame>),
}

/// A close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code (1000 normal, 1001 going away, 1008 policy, 1009 too big, 1013 try again later).
    pub code: u16,
    /// The reason text (at most 123 bytes on the wire).
    pub reason: Cow<'static, str>,
}

/// Why an adapter's socket stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A message exceeded the configured maximum (closes with 1009).
    #[error("message too big")]
    MessageTooBig,
    /// Any other transport failure.
    #[error("transport error: {0}")]
    Other(String),
}
