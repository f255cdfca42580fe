//! The handshake's header mapping (PROTOCOL.md "Handshake", step 2): a field of the
//! application's headers type is filled from the query parameter of exactly its name,
//! else from the HTTP header whose name matches it case-insensitively.
//!
//! serde cannot list a type's field names in general, but a struct's `Deserialize` hands
//! them to [`Deserializer::deserialize_struct`] (after `rename`/`rename_all`). So the
//! headers are deserialised through [`HeadersDe`], which answers that call with an object
//! keyed by exactly those names. Every other shape (`HashMap<String, String>`,
//! `serde_json::Value`, `#[serde(flatten)]` parts) sees the merged map: HTTP headers with
//! lower-cased names, then query parameters, which win over a header of the same name.

use std::collections::HashMap;

use serde::Deserializer;
use serde::de::{DeserializeOwned, Visitor};
use serde_json::{Map, Value};

use super::handshake_error::HandshakeError;
use crate::protocol::HeaderIssue;

/// The handshake's strings: HTTP headers (names lower-cased) and query parameters (in
/// order; a later one of the same name wins).
pub(crate) struct Source<'a> {
    pub(crate) http: &'a HashMap<String, String>,
    pub(crate) query: &'a [(String, String)],
}

impl Source<'_> {
    /// One entry of the merged map: the last query parameter of that name, else the
    /// header.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| self.http.get(name).map(String::as_str))
    }

    /// Headers, then query parameters over them.
    fn merged(&self) -> Map<String, Value> {
        let mut map: Map<String, Value> = self
            .http
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for (k, v) in self.query {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        map
    }

    /// The merged map plus one entry per field: the query parameter of exactly that
    /// name, else the HTTP header matching it case-insensitively.
    fn for_fields(&self, fields: &[&str]) -> Map<String, Value> {
        let mut map = self.merged();
        for &field in fields {
            let from_query = self.query.iter().rev().find(|(k, _)| k == field);
            let value = match from_query {
                Some((_, v)) => Some(v),
                None => self
                    .http
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v),
            };
            if let Some(v) = value {
                map.insert(field.to_owned(), Value::String(v.clone()));
            }
        }
        map
    }
}

/// Deserialise the headers type; a mismatch is `INVALID_HEADERS` with the field's path.
pub(crate) fn deserialize<H: DeserializeOwned>(source: &Source<'_>) -> Result<H, HandshakeError> {
    serde_path_to_error::deserialize(HeadersDe(source)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        HandshakeError::InvalidHeaders {
            message: format!("invalid headers: {message}"),
            issues: vec![HeaderIssue {
                path: if path == "." { String::new() } else { path },
                message,
            }],
        }
    })
}

/// A deserializer over the handshake's strings; see the module docs.
struct HeadersDe<'s, 'a>(&'s Source<'a>);

macro_rules! forward_to_merged {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            Value::Object(self.0.merged()).$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for HeadersDe<'_, '_> {
    type Error = serde_json::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Value::Object(self.0.for_fields(fields)).deserialize_struct(name, fields, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Value::Object(self.0.merged()).deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Value::Object(self.0.merged()).deserialize_unit_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Value::Object(self.0.merged()).deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Value::Object(self.0.merged()).deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Value::Object(self.0.merged()).deserialize_enum(name, variants, visitor)
    }

    forward_to_merged!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct H {
        #[serde(default)]
        user_name: Option<String>,
        #[serde(default)]
        x_trace: Option<String>,
    }

    fn http(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect()
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn headers<T: DeserializeOwned>(h: &[(&str, &str)], q: &[(&str, &str)]) -> T {
        let (http, query) = (http(h), query(q));
        deserialize(&Source {
            http: &http,
            query: &query,
        })
        .unwrap()
    }

    #[test]
    fn an_http_header_fills_a_camel_case_field() {
        let h: H = headers(&[("UserName", "ada"), ("X-Trace", "t1")], &[]);
        assert_eq!(h.user_name.as_deref(), Some("ada"));
        assert_eq!(h.x_trace, None, "`x-trace` is not `xTrace`");
        let h: H = headers(&[("xtrace", "t1")], &[]);
        assert_eq!(h.x_trace.as_deref(), Some("t1"));
    }

    #[test]
    fn the_query_wins_and_matches_exactly() {
        let h: H = headers(&[("username", "header")], &[("userName", "query")]);
        assert_eq!(h.user_name.as_deref(), Some("query"));
        // A query parameter of another case is not the field's name: the header fills it.
        let h: H = headers(&[("username", "header")], &[("USERNAME", "query")]);
        assert_eq!(h.user_name.as_deref(), Some("header"));
        // The last of repeated query parameters wins.
        let h: H = headers(&[], &[("userName", "a"), ("userName", "b")]);
        assert_eq!(h.user_name.as_deref(), Some("b"));
    }

    #[test]
    fn maps_see_every_header_and_parameter() {
        let m: HashMap<String, String> = headers(&[("Host", "h"), ("a", "1")], &[("a", "2")]);
        assert_eq!(m["host"], "h");
        assert_eq!(m["a"], "2");
        let v: Value = headers(&[("host", "h")], &[]);
        assert_eq!(v["host"], "h");
    }

    #[test]
    fn a_mismatch_names_the_field() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Strict {
            user_role: Role,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Role {
            #[serde(rename = "admin")]
            Admin,
        }
        let (http, query) = (http(&[("userrole", "king")]), query(&[]));
        let err = deserialize::<Strict>(&Source {
            http: &http,
            query: &query,
        })
        .unwrap_err();
        let HandshakeError::InvalidHeaders { issues, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(issues[0].path, "userRole");
    }
}
