//! What Codex says about the account and the connection rather than one
//! run: the last rate-limit figures and the recent connection-wide warnings
//! (`configWarning`, a `warning` naming no thread). The Supervisor writes
//! it as the notifications come; `codex_wrapper_check` reads it. A plain
//! lock held for a copy, never across an await, so no actor waits on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::protocol::limits::RateLimits;

/// Connection warnings kept for the check: the recent few are what a caller
/// can act on, and a config that warns at every connect repeats itself.
pub const RECENT_WARNINGS: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct News {
    pub rate_limits: RateLimits,
    /// Oldest first, distinct.
    pub warnings: VecDeque<String>,
}

/// Cheap to clone: one shared record.
#[derive(Debug, Clone, Default)]
pub struct AccountNews {
    inner: Arc<Mutex<News>>,
}

impl AccountNews {
    pub fn rate_limits(&self, update: RateLimits) {
        let mut news = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        news.rate_limits = news.rate_limits.merge(update);
    }

    pub fn warning(&self, line: String) {
        let mut news = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        news.warnings.retain(|seen| *seen != line);
        news.warnings.push_back(line);
        while news.warnings.len() > RECENT_WARNINGS {
            news.warnings.pop_front();
        }
    }

    pub fn snapshot(&self) -> News {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
