//! Rows for the picker's tests: a fixed catalog and a fixed clock, so every
//! snapshot is the same on every machine and every day.

use std::path::PathBuf;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::store::PendingRow;
use crate::store::catalog::{Catalog, RunRow};
use crate::store::{RunId, RunStatus};

/// The tests' "now": 2026-11-21 12:00:00 UTC.
pub fn now() -> OffsetDateTime {
    datetime!(2026-11-21 12:00:00 UTC)
}

/// A row with only what every row has; tests fill in the rest.
pub fn row(run_id: &str, title: &str, status: RunStatus) -> RunRow {
    let run_id = RunId::parse(run_id).expect("fixture run ids are valid");
    RunRow {
        status,
        ..RunRow::new(run_id, title, "/home/ada/projects/api")
    }
}

/// Three running runs (one waiting for approval, one with a wide-character
/// title, one with a long title) and five finished ones, newest first.
pub fn mixed() -> Catalog {
    let waiting = RunRow {
        thread_id: Some("019a7c2e-5b1d-7f30-9e44-2c8d1a6b3f70".to_string()),
        started_at: Some("2026-11-21T11:55:00.000Z".to_string()),
        total_tokens: Some(12_345),
        progress: Some("running cargo test".to_string()),
        last_message: Some(
            "I renamed ConfigLoader to Settings and updated the twelve call sites. \
             Before running the whole suite I need your approval to run cargo test \
             across the workspace, which also builds the benchmarks."
                .to_string(),
        ),
        pending_approval: Some(Box::new(PendingRow {
            approval_id: "appr-1".to_string(),
            kind: "command".to_string(),
            summary: "cargo test --workspace".to_string(),
        })),
        app_server_url: Some("ws://127.0.0.1:41234".to_string()),
        app_server_token_file: None,
        ..row(
            "20261121-115500-000-a1b2c3",
            "Rename the config loader and update every caller",
            RunStatus::Running,
        )
    };
    let wide = RunRow {
        thread_id: Some("019a7c30-0000-7000-8000-000000000002".to_string()),
        started_at: Some("2026-11-21T11:58:30.000Z".to_string()),
        total_tokens: Some(950),
        cwd: PathBuf::from("/home/ada/projects/web"),
        ..row(
            "20261121-115830-000-0a0b0c",
            "修复登录页面的错误并添加测试用例以及文档",
            RunStatus::Running,
        )
    };
    let long = RunRow {
        thread_id: Some("019a7b00-0000-7000-8000-000000000003".to_string()),
        started_at: Some("2026-11-21T09:12:00.000Z".to_string()),
        progress: Some("editing docs/migration.md".to_string()),
        ..row(
            "20261121-091200-000-d4e5f6",
            "Write the migration guide for v2 of the public HTTP API, with examples for each endpoint",
            RunStatus::Running,
        )
    };
    let finished = |run_id: &str, title: &str, status, duration_ms, total_tokens| RunRow {
        thread_id: Some(format!("019a0000-0000-7000-8000-{}", &run_id[20..])),
        started_at: Some("2026-11-21T08:00:00.000Z".to_string()),
        ended_at: Some("2026-11-21T08:10:00.000Z".to_string()),
        duration_ms,
        total_tokens,
        ..row(run_id, title, status)
    };
    let completed = RunRow {
        last_message: Some("Added six tests for the catalog reader; all pass.".to_string()),
        ..finished(
            "20261121-080000-000-111111",
            "Add tests for the catalog reader",
            RunStatus::Completed,
            Some(41_000),
            Some(8_200),
        )
    };
    let failed = RunRow {
        error: Some("the model stream ended before the turn completed".to_string()),
        ..finished(
            "20261121-070000-000-222222",
            "Upgrade ratatui to 0.30",
            RunStatus::Failed,
            Some(754_000),
            Some(1_234_567),
        )
    };
    let interrupted = finished(
        "20261121-060000-000-333333",
        "Profile the picker with 100k runs 🚀",
        RunStatus::Interrupted,
        Some(3_000),
        None,
    );
    let timed_out = finished(
        "20261121-050000-000-444444",
        "Long refactor of the actor supervisor",
        RunStatus::TimedOut,
        Some(3_600_000),
        Some(2_000_000),
    );
    // Failed before Codex gave it a thread: no thread, no duration.
    let no_thread = RunRow {
        thread_id: None,
        duration_ms: None,
        started_at: Some("2026-11-21T04:00:00.000Z".to_string()),
        ended_at: Some("2026-11-21T04:00:02.000Z".to_string()),
        error: Some("model `gpt-9` does not exist".to_string()),
        ..row(
            "20261121-040000-000-555555",
            "Try an unknown model",
            RunStatus::Failed,
        )
    };
    Catalog {
        rows: vec![
            waiting,
            wide,
            long,
            completed,
            failed,
            interrupted,
            timed_out,
            no_thread,
        ],
        problems: Vec::new(),
    }
}

/// `count` finished runs, newest first, for the size test.
pub fn many(count: usize) -> Catalog {
    let rows = (0..count)
        .map(|at| {
            let run_id = format!("20261120-000000-000-{:06x}", count - at);
            let status = if at % 10 == 0 {
                RunStatus::Running
            } else {
                RunStatus::Completed
            };
            RunRow {
                started_at: Some("2026-11-21T11:00:00.000Z".to_string()),
                duration_ms: Some(60_000),
                total_tokens: Some(at as u64),
                ..row(&run_id, &format!("run number {}", count - at), status)
            }
        })
        .collect();
    Catalog {
        rows,
        problems: Vec::new(),
    }
}
