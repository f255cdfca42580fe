//! The binary envelope every node publishes: a small header, then the frame bytes
//! unchanged, so a receiving node delivers without decoding or re-encoding the frame.
//!
//! ```text
//! u8   version (1)
//! [16] sender instance id (a node ignores its own echo)
//! u8   kind: 0 event to one client, 1 event to rooms, 2 event to everyone,
//!            3 disconnect one client
//! kind 1:   u16 room count n, then n × (u16 length, UTF-8 name)   (big-endian)
//! kind 3:   u16 close code, then the UTF-8 reason to the end
//! kind 0-2: the encoded frame (UTF-8 JSON text) to the end
//! ```
//!
//! For an event to several rooms the same bytes are published on each room's channel;
//! the node receiving it on the channel of room *i* delivers to its local members of
//! room *i* that are in none of rooms 0..*i* (so a member of two target rooms gets it
//! once, with no state kept between the messages).

use bytes::{BufMut, Bytes, BytesMut};

/// The envelope format version.
const VERSION: u8 = 1;
/// Length of a node instance id.
pub(crate) const INSTANCE_LEN: usize = 16;

/// A node's unique id for one process lifetime (random; distinct from its name).
pub(crate) type Instance = [u8; INSTANCE_LEN];

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Client = 0,
    Rooms = 1,
    All = 2,
    Disconnect = 3,
}

/// A decoded envelope, borrowing from the message bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// An event for the client whose channel it arrived on.
    Client(&'a [u8]),
    /// An event for these rooms.
    Rooms(Vec<&'a str>, &'a [u8]),
    /// An event for everyone.
    All(&'a [u8]),
    /// Close the client whose channel it arrived on.
    Disconnect(u16, &'a str),
}

/// Why an envelope could not be read (a foreign or corrupt publisher on our channels).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("envelope truncated")]
    Truncated,
    #[error("unknown envelope version {0}")]
    Version(u8),
    #[error("unknown envelope kind {0}")]
    Kind(u8),
    #[error("envelope text is not UTF-8")]
    Utf8,
    #[error("too many rooms or too long a room name for one envelope")]
    TooLarge,
}

fn header(buf: &mut BytesMut, from: &Instance, kind: Kind) {
    buf.put_u8(VERSION);
    buf.put_slice(from);
    buf.put_u8(kind as u8);
}

/// An event envelope (kinds 0 and 2).
pub(crate) fn event(from: &Instance, kind: Kind, frame: &[u8]) -> Bytes {
    debug_assert!(matches!(kind, Kind::Client | Kind::All));
    let mut buf = BytesMut::with_capacity(2 + INSTANCE_LEN + frame.len());
    header(&mut buf, from, kind);
    buf.put_slice(frame);
    buf.freeze()
}

/// An event envelope for several rooms.
pub(crate) fn rooms(
    from: &Instance,
    rooms: &[String],
    frame: &[u8],
) -> Result<Bytes, EnvelopeError> {
    let n = u16::try_from(rooms.len()).map_err(|_| EnvelopeError::TooLarge)?;
    let names: usize = rooms.iter().map(|r| r.len() + 2).sum();
    let mut buf = BytesMut::with_capacity(4 + INSTANCE_LEN + names + frame.len());
    header(&mut buf, from, Kind::Rooms);
    buf.put_u16(n);
    for r in rooms {
        let len = u16::try_from(r.len()).map_err(|_| EnvelopeError::TooLarge)?;
        buf.put_u16(len);
        buf.put_slice(r.as_bytes());
    }
    buf.put_slice(frame);
    Ok(buf.freeze())
}

/// A disconnect command.
pub(crate) fn disconnect(from: &Instance, code: u16, reason: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + INSTANCE_LEN + reason.len());
    header(&mut buf, from, Kind::Disconnect);
    buf.put_u16(code);
    buf.put_slice(reason.as_bytes());
    buf.freeze()
}

/// The sender of an envelope, without decoding the rest.
pub(crate) fn sender(msg: &[u8]) -> Option<&[u8]> {
    msg.get(1..1 + INSTANCE_LEN)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, EnvelopeError> {
    let s = b.get(at..at + 2).ok_or(EnvelopeError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

/// Read an envelope. The frame part is returned as bytes (checked as UTF-8 when it
/// becomes a frame).
pub(crate) fn decode(msg: &[u8]) -> Result<Decoded<'_>, EnvelopeError> {
    let version = *msg.first().ok_or(EnvelopeError::Truncated)?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let kind_at = 1 + INSTANCE_LEN;
    let kind = *msg.get(kind_at).ok_or(EnvelopeError::Truncated)?;
    let body = kind_at + 1;
    let rest = |at: usize| msg.get(at..).ok_or(EnvelopeError::Truncated);
    match kind {
        0 => Ok(Decoded::Client(rest(body)?)),
        2 => Ok(Decoded::All(rest(body)?)),
        1 => {
            let n = u16_at(msg, body)? as usize;
            let mut at = body + 2;
            let mut names = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                let len = u16_at(msg, at)? as usize;
                at += 2;
                let name = msg.get(at..at + len).ok_or(EnvelopeError::Truncated)?;
                names.push(std::str::from_utf8(name).map_err(|_| EnvelopeError::Utf8)?);
                at += len;
            }
            Ok(Decoded::Rooms(names, rest(at)?))
        }
        3 => {
            let code = u16_at(msg, body)?;
            let reason = std::str::from_utf8(rest(body + 2)?).map_err(|_| EnvelopeError::Utf8)?;
            Ok(Decoded::Disconnect(code, reason))
        }
        k => Err(EnvelopeError::Kind(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Instance = [7; INSTANCE_LEN];

    #[test]
    fn round_trips() {
        let f = br#"{"type":"x","payload":1}"#;
        let e = event(&ME, Kind::Client, f);
        assert_eq!(sender(&e), Some(&ME[..]));
        assert_eq!(decode(&e), Ok(Decoded::Client(&f[..])));
        let e = event(&ME, Kind::All, f);
        assert_eq!(decode(&e), Ok(Decoded::All(&f[..])));
        let rs = vec!["a".to_owned(), "b:c".to_owned(), String::new()];
        let e = rooms(&ME, &rs, f).unwrap();
        assert_eq!(decode(&e), Ok(Decoded::Rooms(vec!["a", "b:c", ""], &f[..])));
        let e = disconnect(&ME, 4001, "kicked");
        assert_eq!(decode(&e), Ok(Decoded::Disconnect(4001, "kicked")));
    }

    #[test]
    fn refuses_corrupt_envelopes_without_panicking() {
        let f = b"{}";
        let good = rooms(&ME, &["room".to_owned()], f).unwrap();
        for cut in 0..good.len() - f.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(b""), Err(EnvelopeError::Truncated));
        let mut bad = good.to_vec();
        bad[0] = 9;
        assert_eq!(decode(&bad), Err(EnvelopeError::Version(9)));
        let mut bad = good.to_vec();
        bad[1 + INSTANCE_LEN] = 42;
        assert_eq!(decode(&bad), Err(EnvelopeError::Kind(42)));
        let mut bad = disconnect(&ME, 1000, "x").to_vec();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert_eq!(decode(&bad), Err(EnvelopeError::Utf8));
        let long = vec!["x".repeat(70_000)];
        assert_eq!(rooms(&ME, &long, f), Err(EnvelopeError::TooLarge));
    }
}
