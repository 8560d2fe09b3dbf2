//! Finding a run that no live actor has: its project, thread and state, from
//! the project index, the pointer index, then the audit files themselves.
//! Blocking file reads; callers run these on the blocking pool.

use std::path::{Path, PathBuf};

use crate::actors::run_state::{RunRecord, RunSettings};
use crate::actors::types::{RunResult, RunStatus};
use crate::config::Config;
use crate::protocol::ServerNotification;
use crate::protocol::ThreadId;
use crate::store::{self, ActiveRecord, AuditEvent, IndexEvent, IndexRecord, RunId};

/// Where a run lives and how far it got.
#[derive(Debug, Clone)]
pub struct Located {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub cwd: PathBuf,
    pub run_dir: PathBuf,
    /// Its end record, when it has one.
    pub ended: Option<IndexRecord>,
    /// Its `active/` record, when it is listed as running.
    pub active: Option<ActiveRecord>,
}

/// Looks the run up: in the project index of `cwd_hint` (or the run-dir
/// override), then the pointer index, then the audit files.
pub fn locate(config: &Config, run_id: &RunId, cwd_hint: Option<&Path>) -> Option<Located> {
    let hinted_dirs: Vec<PathBuf> = cwd_hint
        .map(|cwd| config.run_dir(cwd))
        .into_iter()
        .chain(config.run_dir_override.clone())
        .collect();
    for run_dir in &hinted_dirs {
        if let Some(located) = from_index(run_dir, run_id) {
            return Some(located);
        }
    }
    let pointer = store::read_pointer(&config.pointer_index())
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|record| &record.run_id == run_id);
    if let Some(pointer) = pointer {
        let run_dir = pointer.run_dir.clone();
        if let Some(located) = from_index(&run_dir, run_id) {
            return Some(located);
        }
        if let Some(thread_id) = pointer.thread_id.clone() {
            return Some(Located {
                run_id: run_id.clone(),
                thread_id: ThreadId::from(thread_id),
                cwd: pointer.project_root.clone(),
                active: active_record(&run_dir, run_id),
                run_dir,
                ended: None,
            });
        }
    }
    hinted_dirs
        .iter()
        .find_map(|run_dir| from_audit_file(run_dir, run_id, cwd_hint))
}

fn from_index(run_dir: &Path, run_id: &RunId) -> Option<Located> {
    let records: Vec<IndexRecord> = store::read_index(run_dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|record| &record.run_id == run_id)
        .collect();
    let first = records.first()?;
    Some(Located {
        run_id: run_id.clone(),
        thread_id: ThreadId::from(records.iter().find_map(|record| record.thread_id.clone())?),
        cwd: first.cwd.clone(),
        run_dir: run_dir.to_path_buf(),
        ended: records
            .iter()
            .rev()
            .find(|record| record.event == IndexEvent::End)
            .cloned(),
        active: active_record(run_dir, run_id).map(|mut active| {
            // Written before the turn started: the index has the turn.
            if active.turn_id.is_none() {
                active.turn_id = records.iter().find_map(|record| record.turn_id.clone());
            }
            active
        }),
    })
}

/// The last resort: an audit file whose index records were lost.
fn from_audit_file(run_dir: &Path, run_id: &RunId, cwd_hint: Option<&Path>) -> Option<Located> {
    let thread_id = store::read_events(run_dir, run_id)
        .unwrap_or_default()
        .iter()
        .find_map(|record| match &record.event {
            AuditEvent::Notification { params, .. } | AuditEvent::ServerRequest { params, .. } => {
                params
                    .get("threadId")
                    .and_then(|id| id.as_str())
                    .map(str::to_string)
            }
            _ => None,
        })?;
    Some(Located {
        run_id: run_id.clone(),
        thread_id: ThreadId::from(thread_id),
        cwd: cwd_hint.map(Path::to_path_buf).unwrap_or_default(),
        run_dir: run_dir.to_path_buf(),
        ended: None,
        active: active_record(run_dir, run_id),
    })
}

fn active_record(run_dir: &Path, run_id: &RunId) -> Option<ActiveRecord> {
    store::list_active(run_dir)
        .unwrap_or_default()
        .into_iter()
        .find(|record| &record.run_id == run_id)
}

/// The project a thread last ran in, from the pointer index.
pub fn project_of_thread(config: &Config, thread_id: &ThreadId) -> Option<PathBuf> {
    store::read_pointer(&config.pointer_index())
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|record| record.thread_id.as_deref() == Some(thread_id.as_str()))
        .map(|record| record.project_root)
}

/// The result of a run that ended, rebuilt from its audit: the events are
/// folded exactly as the live run folded them; the end record's status and
/// error are authoritative.
pub fn finished_result(located: &Located, end: &IndexRecord) -> RunResult {
    let settings = RunSettings::unknown();
    let mut record = RunRecord::new(
        located.run_id.clone(),
        end.title.clone(),
        String::new(),
        located.cwd.clone(),
        settings,
        located.thread_id.clone(),
    );
    record.turn_id = end.turn_id.clone();
    for record_line in store::read_events(&located.run_dir, &located.run_id).unwrap_or_default() {
        if let AuditEvent::Notification { method, params } = record_line.event {
            record.apply(&ServerNotification::new(method, params));
        }
    }
    let mut result = record.result();
    result.status = end.status;
    result.error = end.error.clone().or(result.error);
    result.duration_ms = end.duration_ms.unwrap_or(result.duration_ms);
    result
}

/// Runs listed as running for `app_server_url` whose owning sidecar is gone:
/// the ones a new sidecar should adopt.
pub fn orphans(config: &Config, app_server_url: &str) -> Vec<Located> {
    let mut seen = std::collections::HashSet::new();
    let mut orphans = Vec::new();
    let pointers = store::read_pointer(&config.pointer_index()).unwrap_or_default();
    for pointer in pointers.into_iter().rev() {
        if !seen.insert(pointer.run_id.clone()) || pointer.status != RunStatus::Running {
            continue;
        }
        let Some(located) = from_index(&pointer.run_dir, &pointer.run_id) else {
            continue;
        };
        let orphaned = located.ended.is_none()
            && located.active.as_ref().is_some_and(|active| {
                active.app_server_url == app_server_url && !process_alive(active.pid)
            });
        if orphaned {
            orphans.push(located);
        }
    }
    orphans
}

/// Whether a process with this pid runs (and is not a zombie), as the
/// [`crate::process_table`] sees it.
pub fn process_alive(pid: u32) -> bool {
    crate::process_table::alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditRecord, RunAudit};
    use std::collections::HashMap;

    fn config(pointer: &Path, run_dir: Option<&Path>) -> Config {
        let mut env = HashMap::from([
            ("HOME".to_string(), "/nonexistent".to_string()),
            (
                "CODEX_MCP_WRAPPER_POINTER_DIR".to_string(),
                pointer.display().to_string(),
            ),
        ]);
        if let Some(run_dir) = run_dir {
            env.insert(
                "CODEX_MCP_WRAPPER_RUN_DIR".into(),
                run_dir.display().to_string(),
            );
        }
        Config::from_lookup(|name| env.get(name).cloned()).unwrap()
    }

    #[test]
    fn a_run_with_only_its_audit_file_still_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("runs");
        let run_id = RunId::generate();
        let audit = RunAudit::open(&run_dir, &run_id).unwrap();
        audit
            .append_record(&AuditRecord::now(AuditEvent::Notification {
                method: "turn/started".into(),
                params: serde_json::json!({"threadId": "th-from-audit", "turn": {"id": "t"}}),
            }))
            .unwrap();
        let config = config(&dir.path().join("pointer"), Some(&run_dir));
        let located = locate(&config, &run_id, None).expect("found in the audit file");
        assert_eq!(located.thread_id, "th-from-audit");
        assert!(locate(&config, &RunId::generate(), None).is_none());
    }

    /// A run's active record is written before its turn starts, so its
    /// first version has no turn; the index start line, written once the
    /// turn started, has it, and a look-up hands it on (an interrupt from
    /// another sidecar needs it).
    #[test]
    fn an_active_record_without_its_turn_gets_it_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("runs");
        let run_id = RunId::generate();
        let audit = RunAudit::open(&run_dir, &run_id).unwrap();
        audit
            .write_active(&ActiveRecord {
                turn_id: None,
                ..ActiveRecord::for_test(&run_id, dir.path())
            })
            .unwrap();
        store::append_index(
            &run_dir,
            &IndexRecord {
                turn_id: Some("turn-from-index".into()),
                ..IndexRecord::for_test(&run_id, IndexEvent::Start, dir.path())
            },
        )
        .unwrap();
        let config = config(&dir.path().join("pointer"), Some(&run_dir));
        let located = locate(&config, &run_id, None).expect("found in the index");
        let active = located.active.expect("listed as running");
        assert_eq!(active.turn_id.as_deref(), Some("turn-from-index"));
    }

    #[test]
    fn the_pointer_index_resolves_runs_of_other_projects() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("elsewhere");
        let config = config(&dir.path().join("pointer"), None);
        let run_dir = config.run_dir(&project);
        let run_id = RunId::generate();
        for event in [IndexEvent::Start, IndexEvent::End] {
            store::append_index(
                &run_dir,
                &IndexRecord {
                    thread_id: Some("th-elsewhere".into()),
                    turn_id: None,
                    ..IndexRecord::for_test(&run_id, event, project.clone())
                },
            )
            .unwrap();
        }
        store::append_pointer(
            &config.pointer_index(),
            &store::PointerRecord {
                endpoint: None,
                run_id: run_id.clone(),
                project_root: project.clone(),
                run_dir: run_dir.clone(),
                thread_id: Some("th-elsewhere".into()),
                title: None,
                status: RunStatus::Completed,
                at: crate::timestamp::now_rfc3339(),
                total_tokens: None,
                duration_ms: None,
            },
        )
        .unwrap();
        // No hint of the project: found through the pointer index.
        let located = locate(&config, &run_id, None).expect("found");
        assert_eq!(located.thread_id, "th-elsewhere");
        assert_eq!(located.cwd, project);
        assert_eq!(
            located.ended.map(|end| end.status),
            Some(RunStatus::Completed)
        );
    }
}
