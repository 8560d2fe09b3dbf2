//! `codex_wait`'s arguments as a wait: on one run (`run_id`, paged by
//! `offset`) or on several (`run_ids` and `mode`), with its slice.

use std::time::Duration;

use rmcp::model::CallToolResult;

use super::params::{WaitModeParam, WaitParams};
use super::replies;
use super::requests::{bounded, run_id};
use crate::actors::wait_many::WaitMode;
use crate::store::RunId;

/// Which runs a wait is on.
pub(super) enum WaitTarget {
    One { run_id: RunId, offset: usize },
    Many { ids: Vec<String>, mode: WaitMode },
}

/// A checked `codex_wait` call: its runs and its slice (`None` blocks).
pub(super) struct WaitRequest {
    pub target: WaitTarget,
    pub slice: Option<Duration>,
}

/// `params` as a wait; `default_slice` is the configured soft timeout.
pub(super) fn wait_request(
    params: WaitParams,
    default_slice: Option<Duration>,
) -> Result<WaitRequest, CallToolResult> {
    if let Some(ms) = params.soft_timeout_ms {
        bounded(ms, "soft_timeout_ms")?;
    }
    if let Some(ms) = params.timeout_ms {
        bounded(ms, "timeout_ms")?;
    }
    let slice =
        crate::wait_slice::wait_slice(params.soft_timeout_ms, params.timeout_ms, default_slice);
    let target = match (params.run_id, params.run_ids) {
        (Some(_), Some(_)) => {
            return Err(replies::failure(
                "give run_id (one run) or run_ids (several), not both",
            ));
        }
        (None, None) => return Err(replies::failure("run_id or run_ids is required")),
        (Some(id), None) => {
            if params.mode.is_some() {
                return Err(replies::failure("mode goes with run_ids, not run_id"));
            }
            WaitTarget::One {
                run_id: run_id(&id)?,
                offset: usize::try_from(params.offset.unwrap_or(0)).unwrap_or(usize::MAX),
            }
        }
        (None, Some(ids)) => {
            if params.offset.is_some() {
                return Err(replies::failure(
                    "offset pages one run's result: call codex_wait with its run_id and offset",
                ));
            }
            let mode = match params.mode {
                None | Some(WaitModeParam::Any) => WaitMode::Any,
                Some(WaitModeParam::All) => WaitMode::All,
            };
            WaitTarget::Many { ids, mode }
        }
    };
    Ok(WaitRequest { target, slice })
}
