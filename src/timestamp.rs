//! The one way this crate writes a point in time, and reads one back: RFC 3339
//! in UTC to the millisecond, `2026-11-21T05:23:01.482Z`. Fixed width, so the
//! timestamps in the audit, the indexes and the keeper's state file sort as
//! plain strings, and a reader never meets two spellings of the same instant.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, moved to UTC first. Written by hand
/// rather than through a format description: it cannot fail, and the width
/// is fixed (the time crate's own RFC 3339 output drops trailing zeros of the
/// fraction, which would break sorting as strings).
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond(),
    )
}

/// Now, as [`rfc3339`] writes it.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Any RFC 3339 timestamp (ours, or another writer's with more digits or an
/// offset); `None` when `text` is not one, so one odd record never stops a
/// reader.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_fixed_instant_is_written_exactly() {
        assert_eq!(
            rfc3339(datetime!(2026-11-21 05:23:01.482 UTC)),
            "2026-11-21T05:23:01.482Z"
        );
        // Zeros are kept: the width never changes.
        assert_eq!(
            rfc3339(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05.000Z"
        );
        // Finer than a millisecond is cut, not rounded: a timestamp never
        // moves into the next millisecond (or second, or day).
        assert_eq!(
            rfc3339(datetime!(2025-12-31 23:59:59.999_999_999 UTC)),
            "2025-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn another_offset_is_written_in_utc() {
        assert_eq!(
            rfc3339(datetime!(2026-11-21 07:23:01.482 +02:00)),
            "2026-11-21T05:23:01.482Z"
        );
    }

    #[test]
    fn timestamps_are_utc_millis() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-11-21T05:23:01.482Z".len(), "{now}");
        assert!(now.ends_with('Z'));
        let parsed =
            OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339).unwrap();
        assert!((OffsetDateTime::now_utc() - parsed).whole_seconds().abs() < 5);
    }

    #[test]
    fn what_is_written_reads_back_and_sorts_as_strings() {
        let times = [
            datetime!(2025-12-31 23:59:59.999 UTC),
            datetime!(2026-01-01 00:00:00.000 UTC),
            datetime!(2026-01-01 00:00:00.001 UTC),
            datetime!(2026-01-01 00:00:01.000 UTC),
        ];
        let written: Vec<String> = times.iter().map(|at| rfc3339(*at)).collect();
        let mut sorted = written.clone();
        sorted.sort();
        assert_eq!(sorted, written);
        for (at, text) in times.iter().zip(&written) {
            assert_eq!(parse(text), Some(*at), "{text}");
        }
        assert_eq!(
            parse("2026-11-21T07:23:01.123456+02:00"),
            Some(datetime!(2026-11-21 05:23:01.123456 UTC))
        );
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse(""), None);
    }
}
