//! Log hygiene: secret handshake headers are redacted, client data is truncated.
//!
//! Every log line and span the library writes about a connection goes through these
//! helpers: values of secret headers (`token`, `authorization`, `proxy-authorization`,
//! `cookie`, plus [`ServerConfig::redact_headers`](crate::ServerConfig::redact_headers))
//! are printed as `<redacted>`, and strings and lists that come from a client are cut
//! to a bounded length.

use std::borrow::Cow;
use std::fmt;

/// The header names always redacted.
pub const ALWAYS_REDACTED: &[&str] = &["token", "authorization", "proxy-authorization", "cookie"];

/// The set of header names whose values are never logged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redaction {
    extra: Vec<String>,
}

impl Redaction {
    pub(crate) fn new(extra: &[String]) -> Self {
        Self {
            extra: extra.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether the value of header `name` must not be shown.
    pub(crate) fn is_secret(&self, name: &str) -> bool {
        ALWAYS_REDACTED.iter().any(|n| n.eq_ignore_ascii_case(name))
            || self.extra.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), with `…(N bytes)` appended
/// when it was longer.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…({} bytes)", &s[..end], s.len()))
}

/// A bounded `Display` of a list of client-provided strings: at most `max_items`
/// entries, each cut to `max_len` bytes, then `… (N more)`.
pub fn list<S: AsRef<str>>(
    items: &[S],
    max_items: usize,
    max_len: usize,
) -> impl fmt::Display + '_ {
    struct List<'a, S>(&'a [S], usize, usize);
    impl<S: AsRef<str>> fmt::Display for List<'_, S> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let List(items, max_items, max_len) = self;
            f.write_str("[")?;
            for (i, item) in items.iter().take(*max_items).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{:?}", truncate(item.as_ref(), *max_len))?;
            }
            if items.len() > *max_items {
                write!(f, ", … ({} more)", items.len() - max_items)?;
            }
            f.write_str("]")
        }
    }
    List(items, max_items, max_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised_in_any_case() {
        let r = Redaction::new(&["X-Api-Key".into()]);
        for name in [
            "token",
            "Authorization",
            "COOKIE",
            "x-api-key",
            "proxy-authorization",
        ] {
            assert!(r.is_secret(name), "{name}");
        }
        assert!(!r.is_secret("username"));
    }

    #[test]
    fn truncation_is_bounded_and_keeps_utf8() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(100);
        let t = truncate(&long, 11);
        assert!(
            t.starts_with(&"é".repeat(5)) && t.ends_with("…(200 bytes)"),
            "{t}"
        );
        let rooms: Vec<String> = (0..1000)
            .map(|i| format!("{i}{}", "x".repeat(1 << 10)))
            .collect();
        let shown = list(&rooms, 3, 8).to_string();
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.ends_with(", … (997 more)]"), "{shown}");
    }
}
