//! Run ids. A run id is our own name for
//! one Codex turn: it sorts by start time as a plain string, reads well in a
//! file listing, and is safe as a file name, so it is parsed strictly.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Month, OffsetDateTime, Time};

use super::StoreError;

/// `YYYYMMDD-HHMMSS-mmm-xxxxxx`: the UTC start time to the millisecond, then
/// random hex. An example, for error messages.
pub const RUN_ID_EXAMPLE: &str = "20261121-052301-482-7f3a9c";

/// Random bytes after the time: 2^24 values make two runs started in the
/// same millisecond (by any number of sidecars) collide with negligible odds.
const RANDOM_BYTES: usize = 3;

/// Where the dashes sit in a run id; every other byte is a digit (time) or a
/// lowercase hex digit (the random part, after the last dash).
const DASHES: [usize; 3] = [8, 15, 19];

/// The whole length: fixed, which is what lets ids sort as strings.
const RUN_ID_LEN: usize = 19 + 1 + RANDOM_BYTES * 2;

/// An error quotes at most this many characters of a bad id: enough to
/// recognise it, while a megabyte pasted as a run id is not echoed back
/// whole into a reply and a log.
const QUOTED_BAD_ID_CHARS: usize = 64;

/// One Codex turn as this crate names it. Serialized as its string; parsing
/// (and so deserializing) accepts the exact shape only, so a run id read from
/// a client or a file can never name a path outside the run directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

impl RunId {
    /// A fresh id for a run starting now.
    pub fn generate() -> RunId {
        RunId::from_parts(OffsetDateTime::now_utc(), random_bytes())
    }

    fn from_parts(at: OffsetDateTime, random: [u8; RANDOM_BYTES]) -> RunId {
        let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        RunId(format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}-{:03}-{hex}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond(),
        ))
    }

    pub fn parse(value: &str) -> Result<RunId, StoreError> {
        let bad = |reason| StoreError::BadRunId {
            value: quoted(value),
            reason,
        };
        if value.is_empty() {
            return Err(bad("it is empty"));
        }
        if value.len() != RUN_ID_LEN {
            return Err(bad("it is not 26 characters long"));
        }
        let bytes = value.as_bytes();
        for (at, &byte) in bytes.iter().enumerate() {
            let fits = if DASHES.contains(&at) {
                byte == b'-'
            } else if at < DASHES[2] {
                byte.is_ascii_digit()
            } else {
                byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
            };
            if !fits {
                return Err(bad(
                    "it is not YYYYMMDD-HHMMSS-mmm then 6 lowercase hex digits",
                ));
            }
        }
        let number = |from: usize, to: usize| {
            bytes[from..to]
                .iter()
                .fold(0u32, |sum, &digit| sum * 10 + u32::from(digit - b'0'))
        };
        let date = Month::try_from(number(4, 6) as u8).ok().and_then(|month| {
            Date::from_calendar_date(number(0, 4) as i32, month, number(6, 8) as u8).ok()
        });
        let time = Time::from_hms_milli(
            number(9, 11) as u8,
            number(11, 13) as u8,
            number(13, 15) as u8,
            number(16, 19) as u16,
        );
        if date.is_none() || time.is_err() {
            return Err(bad("its date and time do not exist"));
        }
        Ok(RunId(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<RunId, StoreError> {
        RunId::parse(value)
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let value = String::deserialize(deserializer)?;
        RunId::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// `value` as a bad-id error quotes it: cut to [`QUOTED_BAD_ID_CHARS`].
fn quoted(value: &str) -> String {
    crate::text::cut(value, QUOTED_BAD_ID_CHARS)
}

fn random_bytes() -> [u8; RANDOM_BYTES] {
    let mut bytes = [0u8; RANDOM_BYTES];
    if let Err(error) = getrandom::fill(&mut bytes) {
        // Never seen on Linux; the ids only need to differ, not be secret, so
        // the clock's nanoseconds, our pid and a counter are enough.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        tracing::warn!(%error, "no OS randomness for a run id; using the clock");
        let mixed = u64::from(OffsetDateTime::now_utc().nanosecond())
            ^ u64::from(std::process::id()).rotate_left(20)
            ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed);
        let mixed = mixed.to_le_bytes();
        bytes.copy_from_slice(&mixed[..RANDOM_BYTES]);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn generated_ids_have_the_shape_and_parse() {
        let id = RunId::generate();
        assert_eq!(id.as_str().len(), RUN_ID_LEN);
        assert_eq!(RunId::parse(id.as_str()).unwrap(), id);
        assert_ne!(RunId::generate(), RunId::generate());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RunId>("\"../etc\"").is_err());
    }

    #[test]
    fn ids_sort_by_time_as_strings() {
        let times = [
            datetime!(2025-12-31 23:59:59.999 UTC),
            datetime!(2026-01-01 00:00:00.000 UTC),
            datetime!(2026-01-01 00:00:00.001 UTC),
            datetime!(2026-01-01 00:00:01.000 UTC),
            datetime!(2026-11-21 05:23:01.482 UTC),
        ];
        let ids: Vec<String> = times
            .iter()
            .rev()
            .map(|at| RunId::from_parts(*at, [0xff, 0, 0x10]).to_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids.into_iter().rev().collect::<Vec<_>>());
        assert_eq!(
            RunId::from_parts(times[4], [0x7f, 0x3a, 0x9c]).as_str(),
            RUN_ID_EXAMPLE
        );
    }

    #[test]
    fn parse_rejects_anything_but_the_exact_shape() {
        let bad = [
            "",
            "../x",
            "a/b",
            "20261121-052301-482-7f3a9c/..",
            "../261121-052301-482-7f3a9c",
            "20261121-052301-482-7F3A9C",
            "20261121-052301-482-7f3a9",
            "20261121-052301-482-7f3a9c0",
            "20261121_052301_482_7f3a9c",
            "2026112-1052301-482-7f3a9c",
            "20261121-052301-482-7f3a9g",
            " 0261121-052301-482-7f3a9c",
            "20261121-052301-482-7f3a9\n",
            "20261121-052301-482-7f3a9c.jsonl",
            "20261321-052301-482-7f3a9c",
            "20260230-052301-482-7f3a9c",
            "20261121-245901-482-7f3a9c",
            "20261121-056001-482-7f3a9c",
            "2026112١-052301-482-7f3a9c",
        ];
        for value in bad {
            let error = RunId::parse(value).unwrap_err();
            assert!(
                matches!(&error, StoreError::BadRunId { value: v, .. } if v == value),
                "{value:?}: {error}"
            );
            assert!(error.to_string().contains("bad run id"), "{error}");
        }
        assert!(RunId::parse(RUN_ID_EXAMPLE).is_ok());

        let huge = "9".repeat(1 << 20);
        let error = RunId::parse(&huge).unwrap_err().to_string();
        assert!(error.len() < 300, "the error echoes {} bytes", error.len());
    }
}
