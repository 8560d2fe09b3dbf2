//! How long one wait slice lasts: the one rule behind `codex_wait` and the
//! command line's `wait`, `run` and `resume`.

use std::time::Duration;

/// The slice for a wait asked with a soft timeout and a hard one (in ms),
/// or `None` to block until the run ends.
///
/// - No soft timeout: the configured default (`default`).
/// - A soft timeout of 0 blocks.
/// - A hard timeout caps the slice; 0 sets no cap, but still makes the wait
///   a bounded one (`Duration::MAX`), as it always has.
pub fn wait_slice(
    soft_ms: Option<u64>,
    hard_ms: Option<u64>,
    default: Option<Duration>,
) -> Option<Duration> {
    let soft = match soft_ms {
        Some(ms) => nonzero(ms),
        None => default,
    };
    match hard_ms {
        None => soft,
        Some(ms) => {
            let hard = nonzero(ms).unwrap_or(Duration::MAX);
            Some(soft.map_or(hard, |soft| soft.min(hard)))
        }
    }
}

fn nonzero(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Option<Duration> = Some(Duration::from_secs(30));

    #[test]
    fn the_soft_timeout_falls_back_to_the_default_and_zero_blocks() {
        assert_eq!(wait_slice(None, None, DEFAULT), DEFAULT);
        assert_eq!(wait_slice(None, None, None), None);
        assert_eq!(wait_slice(Some(0), None, DEFAULT), None);
        assert_eq!(
            wait_slice(Some(500), None, DEFAULT),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_hard_timeout_caps_the_slice() {
        assert_eq!(
            wait_slice(None, Some(1_000), DEFAULT),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_slice(Some(500), Some(1_000), None),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            wait_slice(Some(0), Some(2_000), None),
            Some(Duration::from_secs(2))
        );
        assert_eq!(wait_slice(Some(0), Some(0), None), Some(Duration::MAX));
        assert_eq!(wait_slice(None, Some(0), DEFAULT), DEFAULT);
    }
}
