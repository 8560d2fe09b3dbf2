//! Index and pointer lines as the catalog reads them: views that borrow
//! their strings from the line, so a string is copied only when a row keeps
//! it. Reading 200,000 lines then allocates little beyond the rows.
//!
//! [`IndexRecord`](crate::store::IndexRecord) and
//! [`PointerRecord`](crate::store::PointerRecord) write these lines and stay
//! the format's definition; a test checks that the views know every field
//! they write. Unknown fields are ignored, as a newer version may add some.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::store::{IndexEvent, RunStatus};

/// A string of the line: borrowed, unless JSON escapes in it had to be
/// undone.
#[derive(Debug)]
pub(super) struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(text))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(text.to_owned()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(text))
            }
        }

        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

/// A line of `index.jsonl` (`IndexRecord`); `turnId` is not listed, so not
/// read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexLine<'a> {
    pub event: IndexEvent,
    #[serde(borrow)]
    pub run_id: Text<'a>,
    #[serde(borrow, default)]
    pub thread_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub title: Text<'a>,
    #[serde(borrow)]
    pub cwd: Text<'a>,
    pub status: RunStatus,
    #[serde(borrow)]
    pub at: Text<'a>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(borrow, default)]
    pub error: Option<Text<'a>>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(borrow, default)]
    pub last_message: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub endpoint: Option<Text<'a>>,
}

/// A line of the pointer index (`PointerRecord`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PointerLine<'a> {
    #[serde(borrow)]
    pub run_id: Text<'a>,
    #[serde(borrow)]
    pub project_root: Text<'a>,
    #[serde(borrow)]
    pub run_dir: Text<'a>,
    #[serde(borrow, default)]
    pub thread_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub title: Option<Text<'a>>,
    pub status: RunStatus,
    #[serde(borrow)]
    pub at: Text<'a>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(borrow, default)]
    pub endpoint: Option<Text<'a>>,
}

/// Fields the records write that the views leave unread on purpose.
#[cfg(test)]
pub(super) const UNREAD_INDEX_FIELDS: [&str; 1] = ["turnId"];

/// A run id (`YYYYMMDD-HHMMSS-mmm-xxxxxx`) as a number that sorts the same:
/// each of its 23 digits (time, then random hex) one nibble. Keys the join
/// of a run's lines without a string per run. `None` when the text does not
/// have a run id's shape; a new row still parses its id strictly
/// (`RunId::parse`), so only ids that passed that are ever matched.
pub(super) fn run_key(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    let [date @ .., b'-'] = bytes.get(..9)? else {
        return None;
    };
    let [time @ .., b'-'] = bytes.get(9..16)? else {
        return None;
    };
    let [millis @ .., b'-'] = bytes.get(16..20)? else {
        return None;
    };
    let random = bytes.get(20..)?;
    if random.len() != 6 {
        return None;
    }
    let mut key = 0u128;
    for &byte in date.iter().chain(time).chain(millis) {
        if !byte.is_ascii_digit() {
            return None;
        }
        key = key << 4 | u128::from(byte - b'0');
    }
    for &byte in random {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        key = key << 4 | u128::from(digit);
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IndexRecord, PointerRecord, RunId};
    use serde_json::Value;

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// A record with every field set, written, then read through the view:
    /// every value comes back, and no field is unknown to the view.
    #[test]
    fn the_views_read_every_field_the_records_write() {
        let index = IndexRecord {
            endpoint: None,
            event: IndexEvent::End,
            run_id: RunId::parse("20261121-052301-482-7f3a9c").unwrap(),
            thread_id: Some("th".into()),
            turn_id: Some("tu".into()),
            title: "Say \"hi\"\nthen stop".into(),
            cwd: "/p".into(),
            status: RunStatus::Failed,
            at: "T".into(),
            duration_ms: Some(5),
            error: Some("boom".into()),
            total_tokens: Some(7),
            last_message: Some("line one\nline two".into()),
        };
        let line = serde_json::to_string(&index).unwrap();
        let view: IndexLine<'_> = serde_json::from_str(&line).unwrap();
        let seen = serde_json::json!({
            "event": view.event, "runId": view.run_id.as_str(),
            "threadId": view.thread_id.map(Text::into_string),
            "turnId": "tu", "title": view.title.as_str(), "cwd": view.cwd.as_str(),
            "status": view.status, "at": view.at.as_str(), "durationMs": view.duration_ms,
            "error": view.error.map(Text::into_string), "totalTokens": view.total_tokens,
            "lastMessage": view.last_message.map(Text::into_string),
        });
        let written: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            keys(&written),
            keys(&seen),
            "a field the view does not know"
        );
        assert_eq!(written, seen);
        assert!(
            UNREAD_INDEX_FIELDS
                .iter()
                .all(|field| written.get(field).is_some())
        );

        let pointer = PointerRecord {
            endpoint: None,
            run_id: index.run_id.clone(),
            project_root: "/p".into(),
            run_dir: "/p/runs".into(),
            thread_id: Some("th".into()),
            title: Some("t".into()),
            status: RunStatus::Completed,
            at: "T".into(),
            total_tokens: Some(7),
            duration_ms: Some(5),
        };
        let line = serde_json::to_string(&pointer).unwrap();
        let view: PointerLine<'_> = serde_json::from_str(&line).unwrap();
        let seen = serde_json::json!({
            "runId": view.run_id.as_str(), "projectRoot": view.project_root.as_str(),
            "runDir": view.run_dir.as_str(), "threadId": view.thread_id.map(Text::into_string),
            "title": view.title.map(Text::into_string), "status": view.status,
            "at": view.at.as_str(), "totalTokens": view.total_tokens,
            "durationMs": view.duration_ms,
        });
        let written: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            keys(&written),
            keys(&seen),
            "a field the view does not know"
        );
        assert_eq!(written, seen);
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let line = br#"{"runId":"x","projectRoot":"/p","runDir":"/r","title":"a\nb","status":"running","at":"T"}"#;
        let view: PointerLine<'_> = serde_json::from_slice(line).unwrap();
        assert!(matches!(view.run_dir.0, Cow::Borrowed("/r")));
        assert!(
            matches!(view.title.map(|title| title.0), Some(Cow::Owned(text)) if text == "a\nb")
        );
    }

    #[test]
    fn run_keys_sort_as_run_ids_do() {
        let ids = [
            "20251231-235959-999-ffffff",
            "20261121-052301-482-000000",
            "20261121-052301-482-7f3a9c",
            "20261121-052301-483-000001",
        ];
        let keys: Vec<u128> = ids.iter().map(|id| run_key(id).unwrap()).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
        for bad in [
            "",
            "../../etc",
            "20261121-052301-482-7F3A9C",
            "20261121_052301-482-7f3a9c",
            "2026112a-052301-482-7f3a9c",
        ] {
            assert_eq!(run_key(bad), None, "{bad}");
        }
    }
}
