//! Codex's own ids, kept apart from other strings inside the crate. A
//! thread id is Codex's name for a conversation (what `codex resume` and
//! the chat tools call a session); it travels on the wire as the plain
//! string Codex gave, so the type is serde-transparent and the JSON stays
//! byte for byte what it was.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A Codex thread id: opaque, never parsed; Codex alone makes them.
/// `Default` (empty) only so wire params can derive `Default`; a request
/// always fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThreadId(String);

impl ThreadId {
    pub fn new(id: impl Into<String>) -> ThreadId {
        ThreadId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ThreadId {
    fn from(id: String) -> ThreadId {
        ThreadId(id)
    }
}

impl From<&str> for ThreadId {
    fn from(id: &str) -> ThreadId {
        ThreadId(id.to_string())
    }
}

impl From<&ThreadId> for ThreadId {
    fn from(id: &ThreadId) -> ThreadId {
        id.clone()
    }
}

/// Lets a map keyed by thread id be asked with the `&str` a notification
/// carries, without an allocation per event.
impl Borrow<str> for ThreadId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ThreadId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ThreadId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ThreadId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for ThreadId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_bare_string() {
        let id = ThreadId::new("019a-thread");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""019a-thread""#);
        let back: ThreadId = serde_json::from_str(r#""019a-thread""#).unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "019a-thread");
    }

    #[test]
    fn a_map_by_thread_id_answers_a_str() {
        let mut routes = std::collections::HashMap::new();
        routes.insert(ThreadId::new("th"), 1);
        assert_eq!(routes.get("th"), Some(&1));
    }
}
