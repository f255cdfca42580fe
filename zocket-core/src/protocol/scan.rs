//! The fast path of client frame decoding: the envelope of the frames clients send
//! (`{"type":"..","payload":..,"rpcId":".."}`, keys in any order, JSON whitespace
//! anywhere) read in one pass over its bytes, without building a serde deserializer.
//!
//! It accepts a frame only when its envelope is exactly valid JSON of the common shape:
//! the keys `type`, `payload` and `rpcId`, each at most once and none other; `type` a
//! string and `rpcId` a string or `null`, neither with escapes or control characters;
//! nothing after the object. Anything else (escapes, other keys, other value types,
//! duplicates, malformed text) is left to [`decode_client_frame`], which decides it
//! exactly as before.
//!
//! The payload's JSON is not checked here: the route's input decoding checks it
//! (serde_json accepts a value only when the whole text is one valid JSON value), and a
//! frame whose payload does not decode is decoded again by [`decode_client_frame`], so
//! that invalid JSON is answered as a malformed frame, not as invalid input. In the
//! canonical key order the payload is not even walked: its extent is what lies between
//! `"payload":` and a last member `,"rpcId":"<plain id>"` (or the closing brace), found
//! from the end of the frame. If that text is one JSON value, the frame is exactly that
//! object (JSON's grammar is unambiguous); if it is not (another key after the payload,
//! say), the full decoder reads the frame. So a frame is dispatched only if the whole
//! text is valid JSON, and gets the same answer by either path.
//!
//! [`decode_client_frame`]: super::decode_client_frame

/// A client frame whose envelope was read by [`scan_client_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScannedFrame<'a> {
    /// The route name (`type`).
    pub(crate) kind: &'a str,
    /// The payload's text, `None` when absent or `null`: its JSON is **not** checked yet.
    pub(crate) payload: Option<&'a str>,
    /// The RPC id, when the frame is an RPC.
    pub(crate) rpc_id: Option<&'a str>,
}

/// Read the envelope of a frame of the common shape (see the [module docs](self)), or
/// `None` when the frame needs the full decoder.
pub(crate) fn scan_client_frame(text: &str) -> Option<ScannedFrame<'_>> {
    canonical(text).or_else(|| any_order(text))
}

/// The frame exactly as clients write it (`JSON.stringify({type, payload, rpcId})`,
/// `serde_json` likewise): keys in this order, no whitespace, `rpcId` a string or
/// left out.
fn canonical(text: &str) -> Option<ScannedFrame<'_>> {
    let b = text.as_bytes();
    let (kind, mut i) = plain_str(text, prefix(b, 0, b"{\"type\":")?)?;
    if let Some(at) = prefix(b, i, b",\"payload\":") {
        // The payload's extent from the end, without walking the payload: what is left
        // before a last member `,"rpcId":"<plain id>"`, or else before the closing brace.
        // If that text is one JSON value (which the route's input decoding checks), the
        // frame is exactly this object and the payload is that value; if it is not, the
        // frame is the full decoder's (see `dispatch`).
        const NULL_ID: &[u8; 14] = b",\"rpcId\":null}";
        let (end, rpc_id) = match tail_rpc_id(text) {
            Some((comma, id)) => (comma, Some(id)),
            None if b.ends_with(NULL_ID) => (b.len() - NULL_ID.len(), None),
            None => (b.len().checked_sub(1).filter(|&e| b[e] == b'}')?, None),
        };
        let value = text.get(at..end)?.trim_matches(is_json_ws);
        return Some(ScannedFrame {
            kind,
            payload: unless_null(value),
            rpc_id,
        });
    }
    let mut rpc_id = None;
    if let Some(at) = prefix(b, i, b",\"rpcId\":") {
        let (id, end) = plain_str(text, at)?;
        rpc_id = Some(id);
        i = end;
    }
    (i + 1 == b.len() && b[i] == b'}').then_some(ScannedFrame {
        kind,
        payload: None,
        rpc_id,
    })
}

/// A last member `,"rpcId":"<id>"` right before the final `}`, its id plain (no quote,
/// backslash or control character): the index of its comma, and the id.
fn tail_rpc_id(text: &str) -> Option<(usize, &str)> {
    const KEY: &[u8; 9] = b",\"rpcId\":";
    let b = text.as_bytes();
    // The id's closing quote.
    let close = b.len().checked_sub(2)?;
    if b[close..] != *b"\"}" {
        return None;
    }
    let mut open = close;
    loop {
        open = open.checked_sub(1)?;
        match b[open] {
            b'"' => break,
            b'\\' => return None,
            c if c < 0x20 => return None,
            _ => {}
        }
    }
    let comma = open.checked_sub(KEY.len())?;
    if b[comma..open] != *KEY {
        return None;
    }
    // Between two ASCII quotes of `text`: char boundaries.
    Some((comma, text.get(open + 1..close)?))
}

/// JSON whitespace (the byte class [`WS`]).
fn is_json_ws(c: char) -> bool {
    c.is_ascii() && CLASS[c as usize] & WS != 0
}

/// A payload's text, `None` for `null` (an absent payload).
fn unless_null(value: &str) -> Option<&str> {
    (value != "null").then_some(value)
}

/// The index after `p` if `b` has `p` at `i` (a fixed-size compare).
#[inline(always)]
fn prefix<const N: usize>(b: &[u8], i: usize, p: &[u8; N]) -> Option<usize> {
    let here = <[u8; N]>::try_from(b.get(i..i + N)?).ok()?;
    (here == *p).then_some(i + N)
}

/// Any key order and JSON whitespace anywhere.
fn any_order(text: &str) -> Option<ScannedFrame<'_>> {
    let b = text.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    let mut kind: Option<&str> = None;
    let mut payload: Option<Option<&str>> = None;
    let mut rpc_id: Option<Option<&str>> = None;
    loop {
        let (key, at) = key(b, i)?;
        i = ws(b, at);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        match key {
            b"type" if kind.is_none() => {
                let (value, at) = plain_str(text, i)?;
                kind = Some(value);
                i = at;
            }
            b"rpcId" if rpc_id.is_none() => {
                if let Some(end) = prefix(b, i, b"null") {
                    rpc_id = Some(None);
                    i = end;
                } else {
                    let (value, at) = plain_str(text, i)?;
                    rpc_id = Some(Some(value));
                    i = at;
                }
            }
            b"payload" if payload.is_none() => {
                let (value, end) = payload_at(text, i)?;
                payload = Some(value);
                i = end;
            }
            // A repeated key.
            _ => return None,
        }
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    if ws(b, i + 1) != b.len() {
        return None;
    }
    Some(ScannedFrame {
        kind: kind?,
        payload: payload.flatten(),
        rpc_id: rpc_id.flatten(),
    })
}

/// Byte classes, one bit each, for the scanning loops.
const WS: u8 = 1;
/// Ends the contents of a plain string: `"`, backslash, a control character.
const STR_STOP: u8 = 2;
/// Matters inside a bracketed value: `"`, `{`, `}`, `[`, `]`.
const NEST: u8 = 4;
/// Ends a number or literal: `,`, `}`, `]`, whitespace.
const SCALAR_END: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = STR_STOP;
        c += 1;
    }
    t[b' ' as usize] = WS | SCALAR_END;
    t[b'\t' as usize] = WS | SCALAR_END | STR_STOP;
    t[b'\n' as usize] = WS | SCALAR_END | STR_STOP;
    t[b'\r' as usize] = WS | SCALAR_END | STR_STOP;
    t[b'"' as usize] = STR_STOP | NEST;
    t[b'\\' as usize] = STR_STOP;
    t[b'{' as usize] = NEST;
    t[b'[' as usize] = NEST;
    t[b'}' as usize] = NEST | SCALAR_END;
    t[b']' as usize] = NEST | SCALAR_END;
    t[b',' as usize] = SCALAR_END;
    t
};

/// The index of the first byte at or after `i` whose class has one of `bits`, or the
/// length of `b`.
#[inline(always)]
fn find(b: &[u8], i: usize, bits: u8) -> usize {
    match b.get(i..) {
        Some(rest) => {
            i + rest
                .iter()
                .position(|&c| CLASS[usize::from(c)] & bits != 0)
                .unwrap_or(rest.len())
        }
        None => b.len(),
    }
}

/// The index of the first `"`, backslash or control character at or after `i`, or the
/// length of `b`: eight bytes at a time (the usual bit tricks: a byte of `v` is zero, or
/// below 0x20, where `(v - 0x01..) & !v` has its top bit set; the lowest such byte is
/// exact).
#[inline(always)]
fn str_stop(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    while let Some(word) = b.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let hits = hits & TOPS;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    find(b, i, STR_STOP)
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    // Frames rarely hold whitespace: check one byte before looping.
    while b.get(i).is_some_and(|&c| CLASS[usize::from(c)] & WS != 0) {
        i += 1;
    }
    i
}

/// The key at `i` when it is one of the three known ones, written plainly.
#[inline(always)]
fn key(b: &[u8], i: usize) -> Option<(&'static [u8], usize)> {
    if let Some(end) = prefix(b, i, b"\"type\"") {
        Some((b"type", end))
    } else if let Some(end) = prefix(b, i, b"\"payload\"") {
        Some((b"payload", end))
    } else {
        // Another key, or a known one spelt with escapes, is the full decoder's.
        prefix(b, i, b"\"rpcId\"").map(|end| (&b"rpcId"[..], end))
    }
}

/// A string at `i` without escapes or control characters: its contents and the index
/// after its closing quote; `None` for anything else.
#[inline(always)]
fn plain_str(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = str_stop(b, i + 1);
    if b.get(end) != Some(&b'"') {
        return None;
    }
    // Between two ASCII quotes of `text`: char boundaries.
    Some((text.get(i + 1..end)?, end + 1))
}

/// The payload value at `i` (`None` for `null`; not checked to be valid JSON) and the
/// index after it.
#[inline(always)]
fn payload_at(text: &str, i: usize) -> Option<(Option<&str>, usize)> {
    let end = skip_value(text.as_bytes(), i)?;
    let value = text.get(i..end)?;
    Some((unless_null(value), end))
}

/// The index after the JSON value that starts at `i`, found by its brackets and
/// strings only (not checked to be valid JSON); `None` when the text ends first.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_str(b, i),
        b'{' | b'[' => {
            let mut depth = 1usize;
            let mut j = i + 1;
            loop {
                j = find(b, j, NEST);
                match *b.get(j)? {
                    b'"' => {
                        j = skip_str(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    _ => {
                        // `}` or `]`.
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                }
                j += 1;
            }
        }
        _ => {
            // A number, `true`, `false` or `null`: up to the next delimiter.
            let end = find(b, i, SCALAR_END);
            (end > i).then_some(end)
        }
    }
}

/// The index after the string that starts at `i` (escapes skipped, not checked).
fn skip_str(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        // A quote or a backslash (control characters are for the full check).
        j = str_stop(b, j);
        match *b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode_client_frame;

    fn scan(text: &str) -> Option<(String, Option<String>, Option<String>)> {
        scan_client_frame(text).map(|f| {
            (
                f.kind.to_owned(),
                f.payload.map(str::to_owned),
                f.rpc_id.map(str::to_owned),
            )
        })
    }

    fn of(
        kind: &str,
        payload: Option<&str>,
        rpc: Option<&str>,
    ) -> Option<(String, Option<String>, Option<String>)> {
        Some((kind.into(), payload.map(Into::into), rpc.map(Into::into)))
    }

    #[test]
    fn str_stop_finds_the_first_stop_at_any_offset() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..=len {
                    let mut v: Vec<u8> = (0..len).map(|k| b'a' + (k % 26) as u8).collect();
                    // Bytes that are close to the stops but are not: space, `#`, `]`, 0x7f, 0xc3.
                    for (k, c) in [b' ', b'#', b']', 0x7f, 0xc3].iter().enumerate() {
                        if k * 3 < v.len() && k * 3 < at {
                            v[k * 3] = *c;
                        }
                    }
                    let expected = if at < len {
                        v[at] = stop;
                        at
                    } else {
                        len
                    };
                    for from in 0..=at.min(len) {
                        assert_eq!(str_stop(&v, from), expected, "{v:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_common_shapes() {
        assert_eq!(
            scan(r#"{"type":"chat.send","payload":{"text":"hi, \"you\" }"},"rpcId":"7"}"#),
            of("chat.send", Some(r#"{"text":"hi, \"you\" }"}"#), Some("7"))
        );
        assert_eq!(
            scan(" {\n \"rpcId\" : \"a\" ,\t\"payload\":[1,[2,{}]] , \"type\":\"x\"}\r\n"),
            of("x", Some("[1,[2,{}]]"), Some("a"))
        );
        assert_eq!(scan(r#"{"type":"x"}"#), of("x", None, None));
        assert_eq!(
            scan(r#"{"type":"x","payload":null,"rpcId":null}"#),
            of("x", None, None)
        );
        assert_eq!(
            scan(r#"{"type":"x","payload":12.5e3}"#),
            of("x", Some("12.5e3"), None)
        );
        assert_eq!(
            scan(r#"{"type":"x","payload":"s}"}"#),
            of("x", Some(r#""s}""#), None)
        );
        assert_eq!(
            scan(r#"{"type":"é","payload":true}"#),
            of("é", Some("true"), None)
        );
    }

    /// In the canonical order the payload is what lies before the last member: a payload
    /// that holds what looks like one is still the payload, as the full decoder reads it.
    #[test]
    fn the_payload_is_found_from_the_end() {
        for (text, payload, rpc) in [
            (
                r#"{"type":"x","payload":{"a":",\"rpcId\":\"z\"}"},"rpcId":"7"}"#,
                r#"{"a":",\"rpcId\":\"z\"}"}"#,
                Some("7"),
            ),
            (
                r#"{"type":"x","payload":{"rpcId":"z"}}"#,
                r#"{"rpcId":"z"}"#,
                None,
            ),
            (
                r#"{"type":"x","payload":{"rpcId":"z"},"rpcId":"7"}"#,
                r#"{"rpcId":"z"}"#,
                Some("7"),
            ),
            (
                r#"{"type":"x","payload":"\"}","rpcId":"}"}"#,
                r#""\"}""#,
                Some("}"),
            ),
            (
                r#"{"type":"x","payload": [1] ,"rpcId":"7"}"#,
                "[1]",
                Some("7"),
            ),
            (r#"{"type":"x","payload":2,"rpcId":null}"#, "2", None),
        ] {
            assert_eq!(scan(text), of("x", Some(payload), rpc), "{text}");
            let full = decode_client_frame(text).expect(text);
            assert_eq!(full.payload.map(|p| p.get()), Some(payload), "{text}");
            assert_eq!(full.rpc_id.as_deref(), rpc, "{text}");
        }
        // Another member after the payload, or an id with an escape: what is left is
        // not one JSON value, and the full decoder reads the frame.
        for text in [
            r#"{"type":"x","payload":1,"other":2,"rpcId":"7"}"#,
            r#"{"type":"x","payload":1,"rpcId":"7","other":2}"#,
            r#"{"type":"x","payload":1,"rpcId":"a\"b"}"#,
        ] {
            let fast = scan_client_frame(text).expect(text);
            let p = fast.payload.expect(text);
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(p).is_err(),
                "{text}"
            );
            assert!(decode_client_frame(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn everything_else_is_left_to_the_full_decoder() {
        for text in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"type":"x",}"#,
            r#"{"type":"x"} x"#,
            r#"{"type":"x"}}"#,
            r#"{"type":"x\u002ey"}"#,
            r#"{"type":"x","rpcId":"a\"b"}"#,
            r#"{"type":"x","rpcId":1}"#,
            r#"{"type":3}"#,
            r#"{"type":null}"#,
            r#"{"type":"x","type":"y"}"#,
            r#"{"type":"x","payload":1,"payload":2}"#,
            r#"{"type":"x","other":1}"#,
            "{\"type\":\"a\tb\"}",
            r#"{"type":"x","payload":{"a":1}"#,
            r#"{"type":"x","payload":"#,
            r#"{"type":"x","payload":,"rpcId":"1"}"#,
            r#"{"type" "x"}"#,
            r#"{"type":"x","rpcId":nullx}"#,
        ] {
            // Not read, or read with a payload that is not one JSON value: the route's
            // input decoding refuses that, and the frame goes to the full decoder.
            let left = scan_client_frame(text).is_none_or(|f| {
                f.payload
                    .is_some_and(|p| serde_json::from_str::<serde::de::IgnoredAny>(p).is_err())
            });
            assert!(left, "{text}: {:?}", scan(text));
        }
    }

    #[test]
    fn the_canonical_shape_and_any_order_agree() {
        for text in [
            r#"{"type":"x","payload":{"a":[1,"}"]},"rpcId":"7"}"#,
            r#"{"type":"x","payload":null,"rpcId":"7"}"#,
            r#"{"type":"x","rpcId":"7"}"#,
            r#"{"type":"x","payload":3}"#,
            r#"{"type":"x"}"#,
        ] {
            assert!(canonical(text).is_some(), "{text}");
            assert_eq!(canonical(text), any_order(text), "{text}");
        }
        for text in [
            r#"{"type":"x","rpcId":"7","payload":1}"#,
            r#"{"type":"x","rpcId":null}"#,
            r#"{"type":"x"} "#,
            r#"{"type":"x"}}"#,
            r#"{"type":"x","payload":1,"#,
        ] {
            assert_eq!(canonical(text), None, "{text}");
        }
        assert!(any_order(r#"{"type":"x","rpcId":"7","payload":1}"#).is_some());
    }

    /// Whatever the fast path accepts, the full decoder accepts the same way, when the
    /// payload is valid JSON (which the route's input decoding checks).
    #[test]
    fn agrees_with_the_full_decoder() {
        for text in [
            r#"{"type":"a.b","payload":{"x":[1,2,"]"]},"rpcId":"7"}"#,
            r#"{ "payload" : "p" , "type" : "t" }"#,
            r#"{"rpcId":null,"type":"t","payload":null}"#,
            r#"{"type":"t","payload":[{"a":{"b":[]}}],"rpcId":"x y"}"#,
        ] {
            let fast = scan_client_frame(text).expect(text);
            let full = decode_client_frame(text).expect(text);
            assert_eq!(fast.kind, full.kind);
            assert_eq!(fast.payload, full.payload.map(|p| p.get()));
            assert_eq!(fast.rpc_id, full.rpc_id.as_deref());
        }
    }

    mod differential {
        use proptest::prelude::*;

        use super::super::*;
        use crate::protocol::decode_client_frame;

        fn frame() -> impl Strategy<Value = String> {
            let kind = prop::sample::select(vec![
                "\"a.b\"",
                "\"\"",
                "\"x\\\"y\"",
                "\"\\u00e9\"",
                "null",
                "1",
                "\"tab\there\"",
            ]);
            let value = prop::sample::select(vec![
                "\"a.b\"",
                "\"x\\\"y\"",
                "null",
                "1",
                "-2.5e3",
                "true",
                "{}",
                "[]",
                "{\"k\":[1,{\"z\":\"}\"}]}",
                "[1,2}",
                "{\"k\":tru}",
                "\"unterminated",
                "{\"a\":1,}",
                "\"tab\there\"",
                "{\"k\":\"\\q\"}",
            ]);
            let key = prop::sample::select(vec![
                "\"type\"",
                "\"payload\"",
                "\"rpcId\"",
                "\"typ\\u0065\"",
                "\"other\"",
            ]);
            let ws = prop::sample::select(vec!["", "", "", " ", "\n\t"]);
            (
                kind,
                prop::option::of(value.clone()),
                prop::option::of(prop::sample::select(vec!["\"7\"", "\"a b\"", "null", "3"])),
                prop::option::weighted(0.2, (key, value)),
                prop::collection::vec(ws, 8),
                any::<u8>(),
                any::<usize>(),
            )
                .prop_map(|(kind, payload, rpc, extra, ws, mutation, at)| {
                    let mut members = vec![format!("\"type\":{kind}")];
                    if let Some(p) = payload {
                        members.push(format!("\"payload\":{p}"));
                    }
                    if let Some(r) = rpc {
                        members.push(format!("\"rpcId\":{r}"));
                    }
                    if let Some((k, v)) = extra {
                        members.push(format!("{k}:{v}"));
                    }
                    // Any order, mostly the canonical one.
                    let n = members.len();
                    members.rotate_left(if mutation % 2 == 0 { 0 } else { at % n });
                    let body: Vec<String> = members
                        .iter()
                        .enumerate()
                        .map(|(i, m)| format!("{}{m}{}", ws[i % 8], ws[(i + 3) % 8]))
                        .collect();
                    let mut s = format!("{}{{{}}}{}", ws[6], body.join(","), ws[7]);
                    // Sometimes one byte inserted or removed (ASCII: stays a str).
                    let at = at % (s.len() + 1);
                    match mutation % 8 {
                        0 => {
                            let alphabet = b"{}[]\",:\\ n";
                            let c = alphabet[usize::from(mutation) % alphabet.len()];
                            s.insert(at, char::from(c));
                        }
                        1 if at < s.len() => {
                            s.remove(at);
                        }
                        _ => {}
                    }
                    s
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// What the scanner reads with a payload that is one JSON value (or none),
            /// the full decoder reads the same way: such a frame is dispatched by the
            /// fast path. A payload that is not (the route's input decoding refuses it)
            /// sends the frame to the full decoder.
            #[test]
            fn the_scanner_never_disagrees_with_serde(text in frame()) {
                if let Some(fast) = scan_client_frame(&text) {
                    let payload_is_json = fast
                        .payload
                        .is_none_or(|p| serde_json::from_str::<serde::de::IgnoredAny>(p).is_ok());
                    if payload_is_json {
                        let full = decode_client_frame(&text);
                        prop_assert!(full.is_ok(), "{}", text);
                        let full = full.unwrap();
                        prop_assert_eq!(fast.kind, &*full.kind);
                        prop_assert_eq!(fast.payload, full.payload.map(|p| p.get()));
                        prop_assert_eq!(fast.rpc_id, full.rpc_id.as_deref());
                    }
                }
            }
        }
    }
}
