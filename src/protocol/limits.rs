//! What Codex tells about the account and the connection as a whole: the
//! rate-limit windows (`account/rateLimits/updated`) and warnings
//! (`warning`, `configWarning`). Same shapes in Codex 0.169.0 and 0.171.0
//! (checked with `app-server generate-json-schema`).

use serde::{Deserialize, Serialize};

/// One rate-limit window as Codex reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitWindow {
    pub used_percent: i32,
    /// The window's length.
    #[serde(default)]
    pub window_duration_mins: Option<i64>,
    /// Unix seconds.
    #[serde(default)]
    pub resets_at: Option<i64>,
}

/// The windows of `account/rateLimits/updated` (and of
/// `account/rateLimits/read`'s `rateLimits`). An update is sparse: a window
/// it leaves out keeps its last value ([`RateLimits::merge`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    #[serde(default)]
    pub primary: Option<RateLimitWindow>,
    #[serde(default)]
    pub secondary: Option<RateLimitWindow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitsUpdated {
    pub rate_limits: RateLimits,
}

impl RateLimits {
    /// What is known once `update` came: its windows, else the ones before.
    pub fn merge(self, update: RateLimits) -> RateLimits {
        RateLimits {
            primary: update.primary.or(self.primary),
            secondary: update.secondary.or(self.secondary),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.secondary.is_none()
    }

    /// The compact form replies carry: per window, one short line such as
    /// `"12%/300m until 2026-12-08T05:00Z"` (under 40 bytes).
    pub fn compact(&self) -> CompactRateLimits {
        CompactRateLimits {
            primary: self.primary.map(|window| window.compact()),
            secondary: self.secondary.map(|window| window.compact()),
        }
    }
}

impl RateLimitWindow {
    fn compact(&self) -> String {
        let mut line = format!("{}%", self.used_percent);
        if let Some(minutes) = self.window_duration_mins {
            line.push_str(&format!("/{minutes}m"));
        }
        if let Some(at) = self
            .resets_at
            .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
        {
            // To the minute: a window resets on the minute at the finest.
            let stamp = crate::timestamp::rfc3339(at);
            line.push_str(&format!(" until {}Z", stamp.get(..16).unwrap_or(&stamp)));
        }
        line
    }
}

/// [`RateLimits`] as a reply shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactRateLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
}

/// `warning`: about one thread when it names one, else the connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningNote {
    pub message: String,
    #[serde(default)]
    pub thread_id: Option<String>,
}

/// `configWarning`: the config Codex read has a problem.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigWarningNote {
    pub summary: String,
    #[serde(default)]
    pub details: Option<String>,
}

impl ConfigWarningNote {
    pub fn line(&self) -> String {
        match &self.details {
            Some(details) => format!("{}: {details}", self.summary),
            None => self.summary.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_update_keeps_the_window_it_leaves_out() {
        let before: RateLimits = serde_json::from_value(serde_json::json!({
            "primary": {"usedPercent": 10, "windowDurationMins": 300, "resetsAt": 1_800_000_000},
            "secondary": {"usedPercent": 40}
        }))
        .unwrap();
        let update: RateLimits =
            serde_json::from_value(serde_json::json!({"primary": {"usedPercent": 12}})).unwrap();
        let merged = before.merge(update);
        assert_eq!(merged.primary.map(|w| w.used_percent), Some(12));
        assert_eq!(merged.secondary.map(|w| w.used_percent), Some(40));
        let compact = before.compact();
        assert_eq!(
            compact.primary.as_deref(),
            Some("10%/300m until 2027-01-15T08:00Z")
        );
        assert_eq!(compact.secondary.as_deref(), Some("40%"));
    }
}
