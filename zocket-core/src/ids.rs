//! Client identifiers.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The server-assigned id of one connection: 128 random bits (122 from a v4 UUID),
/// unguessable, as 32 lowercase hex characters. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// A fresh random id (feature `server`).
    #[cfg(feature = "server")]
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string().into())
    }
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}
impl From<String> for ClientId {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}
impl From<&String> for ClientId {
    fn from(s: &String) -> Self {
        Self(s.as_str().into())
    }
}
impl From<&ClientId> for ClientId {
    fn from(s: &ClientId) -> Self {
        s.clone()
    }
}
impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
impl std::borrow::Borrow<str> for ClientId {
    fn borrow(&self) -> &str {
        &self.0
    }
}
