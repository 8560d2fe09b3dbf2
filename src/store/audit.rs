//! One run's files (event log, stderr log, summary, active marker), the
//! project index and the per-user pointer index, and their readers. Where
//! each file lives is [`super::paths`]' to say.

use std::io;
use std::path::{Path, PathBuf};

use super::StoreError;
use super::disk_records::{
    ActiveRecord, AuditEvent, AuditRecord, IndexEvent, IndexRecord, PointerRecord,
};
use super::files::{
    append_json_line, append_json_line_with, append_lines, create_owned_dir, create_private_dir,
    open_append_nofollow, read_jsonl, refuse_symlink, replace_atomic, write_atomic,
};
use super::group_sync::Sync;
use super::paths::{ACTIVE_DIR, ACTIVE_SUFFIX, RunPaths, index_path};
use super::run_id::RunId;
use super::summary::{RunSummary, render_markdown};
use crate::timestamp::now_rfc3339;

/// Keeps the audit (prompts, outputs, maybe secrets) out of every commit.
const GITIGNORE: &str = ".gitignore";
const GITIGNORE_CONTENT: &[u8] = b"*\n";
/// The writer of one run's files. Cheap to hold: it keeps no file open, so
/// many runs (and processes) can write the shared files side by side.
#[derive(Debug, Clone)]
pub struct RunAudit {
    run_dir: PathBuf,
    run_id: RunId,
    paths: RunPaths,
}

impl RunAudit {
    /// Prepares `run_dir` (owner-only, with its `.gitignore` and `active/`)
    /// and creates the run's logs ([`RunAudit::create_logs`]).
    pub fn open(run_dir: &Path, run_id: &RunId) -> Result<RunAudit, StoreError> {
        let audit = RunAudit::prepare(run_dir, run_id)?;
        audit.create_logs()?;
        Ok(audit)
    }

    /// Prepares `run_dir` (owner-only, with its `.gitignore` and `active/`),
    /// creating no file of the run yet. A symbolic link where the store
    /// writes (the run directory, `active/`, `.gitignore`, `index.jsonl`)
    /// is refused here, before the run starts, so the caller hears why;
    /// every append also opens with `O_NOFOLLOW`, which closes the race of
    /// a link planted later.
    pub fn prepare(run_dir: &Path, run_id: &RunId) -> Result<RunAudit, StoreError> {
        prepare_run_dir(run_dir)?;
        create_owned_dir(&run_dir.join(ACTIVE_DIR))?;
        refuse_symlink(&index_path(run_dir))?;
        Ok(RunAudit {
            run_dir: run_dir.to_path_buf(),
            run_id: run_id.clone(),
            paths: RunPaths::new(run_dir, run_id),
        })
    }

    /// Creates the run's event log and stderr log, empty. Every run has its
    /// stderr log, empty when nothing was said: a missing file would read as
    /// "not recorded". Creating a file is a journal operation (0.1 to 0.3 ms
    /// here): done apart from [`RunAudit::prepare`], the audit writer does it
    /// while `turn/start` is on its way, not after.
    pub fn create_logs(&self) -> Result<(), StoreError> {
        open_append_nofollow(&self.paths.stderr, false)?;
        open_append_nofollow(&self.paths.events, false)?;
        Ok(())
    }

    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn paths(&self) -> &RunPaths {
        &self.paths
    }

    /// Logs `event`, stamped as received now.
    pub fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.append_record(&AuditRecord::now(event.clone()))
    }

    /// Logs an event stamped by whoever received it ([`AuditRecord::now`]),
    /// for a caller whose writes may lag behind the events.
    pub fn append_record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        append_json_line(&self.paths.events, record)
    }

    /// Logs several stamped events, in order, with one append: one open,
    /// lock and write for the lot instead of one each, which is what a
    /// stream of deltas costs otherwise.
    pub fn append_records(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut lines = Vec::new();
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(|source| StoreError::Encode {
                path: self.paths.events.clone(),
                source,
            })?;
            lines.push(b'\n');
        }
        if lines.is_empty() {
            return Ok(());
        }
        append_lines(&self.paths.events, &lines)
    }

    /// Logs a line of text (app-server stderr, an error notification). Each
    /// of its lines gets the time, and all go in one append, so a multi-line
    /// message stays together.
    pub fn append_stderr(&self, line: &str) -> Result<(), StoreError> {
        let at = now_rfc3339();
        let mut text = String::with_capacity(line.len() + at.len() + 2);
        for part in line.trim_end_matches(['\r', '\n']).split('\n') {
            text.push_str(&at);
            text.push(' ');
            text.push_str(part.trim_end_matches('\r'));
            text.push('\n');
        }
        append_lines(&self.paths.stderr, text.as_bytes())
    }

    /// The Markdown rendering of the run, replaced whole but not synced:
    /// it is rewritten as the run goes and at its end, in the path of the
    /// caller's reply, and everything in it is in the event log too.
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), StoreError> {
        replace_atomic(&self.paths.summary, render_markdown(summary).as_bytes())
    }

    /// The live view of the run, replaced whole (a reader never sees a
    /// mix) but not synced: it is rewritten every half second while the run
    /// goes, and what must survive a power loss is the index's start line
    /// ([`append_index`]). After one, this file may be missing, older, or
    /// empty (its rename reached the disk, its bytes did not); readers take
    /// an empty or unreadable one as absent, and by then its sidecar, the
    /// only writer, is gone too.
    pub fn write_active(&self, record: &ActiveRecord) -> Result<(), StoreError> {
        let mut json = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Encode {
            path: self.paths.active.clone(),
            source,
        })?;
        json.push(b'\n');
        replace_atomic(&self.paths.active, &json)
    }

    /// Removes the active marker; already gone is fine.
    pub fn remove_active(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.paths.active) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::io(&self.paths.active, error))
            }
            _ => Ok(()),
        }
    }
}

/// Creates `run_dir` owner-only and its `.gitignore`. A `.gitignore` already
/// there is the user's to keep, unless it is a symbolic link: one planted
/// to point at a file without `*` would let the audit be committed.
fn prepare_run_dir(run_dir: &Path) -> Result<(), StoreError> {
    create_owned_dir(run_dir)?;
    let gitignore = run_dir.join(GITIGNORE);
    match std::fs::symlink_metadata(&gitignore) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StoreError::Symlink { path: gitignore }),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            write_atomic(&gitignore, GITIGNORE_CONTENT)
        }
        Err(error) => Err(StoreError::io(&gitignore, error)),
    }
}

/// Appends to the project index. A start line is synced before this
/// returns: it is the record that a run exists, written before the caller
/// gets the run's handle, and a crash, a power loss included, must not lose
/// a run whose id someone holds. Starts made together share one sync
/// ([`super::group_sync`]). An end line is not synced: losing it to a power
/// loss leaves a run listed as started, whose thread Codex still has.
pub fn append_index(run_dir: &Path, record: &IndexRecord) -> Result<(), StoreError> {
    prepare_run_dir(run_dir)?;
    let sync = match record.event {
        IndexEvent::Start => Sync::ToDisk,
        IndexEvent::End => Sync::No,
    };
    append_json_line_with(&index_path(run_dir), record, sync)
}

/// Appends to the per-user pointer index, creating its directory
/// owner-only.
pub fn append_pointer(pointer_index: &Path, record: &PointerRecord) -> Result<(), StoreError> {
    if let Some(dir) = pointer_index
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
    {
        create_private_dir(dir)?;
    }
    append_json_line(pointer_index, record)
}

/// The project's index, oldest first. Unparseable lines are skipped.
pub fn read_index(run_dir: &Path) -> Result<Vec<IndexRecord>, StoreError> {
    read_jsonl(&index_path(run_dir))
}

/// The pointer index, oldest first. Unparseable lines are skipped.
pub fn read_pointer(pointer_index: &Path) -> Result<Vec<PointerRecord>, StoreError> {
    read_jsonl(pointer_index)
}

/// A run's events, in the order received. Unparseable lines are skipped.
pub fn read_events(run_dir: &Path, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
    read_jsonl(&RunPaths::new(run_dir, run_id).events)
}

/// The active markers in `run_dir`, oldest run first. A marker that does not
/// parse is skipped with a warning, an empty one silently; temp files of
/// atomic writes are never read. A marker whose owner (`pid`) is gone is
/// stale: the caller decides.
pub fn list_active(run_dir: &Path) -> Result<Vec<ActiveRecord>, StoreError> {
    let dir = run_dir.join(ACTIVE_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StoreError::io(&dir, error)),
    };
    let mut records = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StoreError::io(&dir, error))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(ACTIVE_SUFFIX) {
            continue;
        }
        let path = entry.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Removed between listing and reading: the run just ended.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipped an unreadable active record");
                continue;
            }
        };
        // Empty: a power loss took the bytes of an unsynced rewrite
        // ([`RunAudit::write_active`]); as good as absent.
        if bytes.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<ActiveRecord>(&bytes) {
            Ok(record) => records.push(record),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipped an unreadable active record");
            }
        }
    }
    records.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk_records::{IndexEvent, RunStatus};
    use crate::store::paths::INDEX_FILE;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_appended_together_read_back_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let audit = RunAudit::open(dir.path(), &run_id).unwrap();
        let note = |n: usize| AuditRecord::now(AuditEvent::sidecar(format!("note {n}"), None));
        audit.append_record(&note(0)).unwrap();
        let batch: Vec<AuditRecord> = (1..=3).map(note).collect();
        audit.append_records(&batch).unwrap();
        audit.append_records(&[]).unwrap();
        let messages: Vec<String> = read_events(dir.path(), &run_id)
            .unwrap()
            .into_iter()
            .map(|record| match record.event {
                AuditEvent::Sidecar { message, .. } => message,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(messages, ["note 0", "note 1", "note 2", "note 3"]);
    }

    fn active(run_id: &RunId) -> ActiveRecord {
        ActiveRecord {
            thread_id: "thr".into(),
            ..ActiveRecord::for_test(run_id, "/p")
        }
    }

    fn index(run_id: &RunId, event: IndexEvent, status: RunStatus) -> IndexRecord {
        IndexRecord {
            thread_id: None,
            turn_id: None,
            status,
            ..IndexRecord::for_test(run_id, event, "/p")
        }
    }

    #[test]
    fn a_run_leaves_its_files_owner_only_and_ignored_by_git() {
        let root = tempfile::tempdir().unwrap();
        let run_dir = root.path().join("p/.codex/codex-mcp/runs");
        let run_id = RunId::generate();
        let audit = RunAudit::open(&run_dir, &run_id).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(std::fs::read(run_dir.join(GITIGNORE)).unwrap(), b"*\n");
        assert_eq!(mode(&run_dir), 0o700);
        assert_eq!(mode(&run_dir.join(ACTIVE_DIR)), 0o700);

        audit.append(&AuditEvent::sidecar("hello", None)).unwrap();
        audit.append_stderr("boom\r\nsecond line\n").unwrap();
        audit
            .write_summary(&RunSummary::new(run_id.clone(), None, "do it", "/p".into()))
            .unwrap();
        let record = active(&run_id);
        audit.write_active(&record).unwrap();
        let paths = audit.paths();
        for path in [&paths.events, &paths.stderr, &paths.summary, &paths.active] {
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
        let stderr = std::fs::read_to_string(&paths.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(lines[0].ends_with("Z boom") && lines[1].ends_with("Z second line"));

        let events = read_events(&run_dir, &run_id).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, AuditEvent::sidecar("hello", None));
        assert_eq!(list_active(&run_dir).unwrap(), [record]);
        audit.remove_active().unwrap();
        audit.remove_active().unwrap();
        assert!(list_active(&run_dir).unwrap().is_empty());
    }

    /// Links planted where the store writes, each pointing outside: the run
    /// is refused with the link named, and nothing outside changes.
    #[test]
    fn links_planted_in_the_run_directory_are_refused() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        let target_file = outside.path().join("bashrc");
        std::fs::write(&target_file, "precious\n").unwrap();
        // "": the run directory itself.
        for name in ["", ACTIVE_DIR, GITIGNORE, INDEX_FILE] {
            let root = tempfile::tempdir().unwrap();
            let run_dir = root.path().join("runs");
            let link = if name.is_empty() {
                symlink(outside.path(), &run_dir).unwrap();
                run_dir.clone()
            } else {
                std::fs::create_dir(&run_dir).unwrap();
                let link = run_dir.join(name);
                let target = if name == ACTIVE_DIR {
                    outside.path().to_path_buf()
                } else {
                    target_file.clone()
                };
                symlink(target, &link).unwrap();
                link
            };
            let run_id = RunId::generate();
            let error = RunAudit::open(&run_dir, &run_id).unwrap_err();
            assert!(
                matches!(&error, StoreError::Symlink { path } if *path == link),
                "{name}: {error}"
            );
            let error = append_index(
                &run_dir,
                &index(&run_id, IndexEvent::Start, RunStatus::Running),
            );
            if name != ACTIVE_DIR {
                assert!(
                    matches!(error, Err(StoreError::Symlink { .. })),
                    "{name}: {error:?}"
                );
            }
            let names: Vec<_> = std::fs::read_dir(outside.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(names, ["bashrc"], "{name}: written outside");
            assert_eq!(std::fs::read_to_string(&target_file).unwrap(), "precious\n");
        }
    }

    #[test]
    fn list_active_skips_temp_and_broken_files() {
        let root = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let audit = RunAudit::open(root.path(), &run_id).unwrap();
        audit.write_active(&active(&run_id)).unwrap();
        let dir = root.path().join(ACTIVE_DIR);
        std::fs::write(dir.join(".x.json.abc123.tmp"), "{\"runId\":").unwrap();
        std::fs::write(dir.join("20261121-052301-482-7f3a9c.json"), "{\"runId\":").unwrap();
        std::fs::write(dir.join("notes.txt"), "hi").unwrap();
        let listed = list_active(root.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].run_id, run_id);
    }

    /// The start line is the record a crash must not lose: synced before
    /// `append_index` returns. The end line and the active record, rewritten
    /// often, are not.
    #[test]
    fn only_a_start_line_waits_for_the_disk() {
        let root = tempfile::tempdir().unwrap();
        let run_dir = root.path().join("runs");
        let run_id = RunId::generate();
        let audit = RunAudit::open(&run_dir, &run_id).unwrap();
        let index_file = run_dir.join(INDEX_FILE);
        let before = crate::store::group_sync::syncs_at(&index_file);
        let syncs = || crate::store::group_sync::syncs_at(&index_file) - before;
        append_index(
            &run_dir,
            &index(&run_id, IndexEvent::Start, RunStatus::Running),
        )
        .unwrap();
        assert_eq!(syncs(), 1, "the start line was not synced");
        audit.write_active(&active(&run_id)).unwrap();
        append_index(
            &run_dir,
            &index(&run_id, IndexEvent::End, RunStatus::Completed),
        )
        .unwrap();
        assert_eq!(syncs(), 1, "the end line was synced");
        assert_eq!(read_index(&run_dir).unwrap().len(), 2);
    }

    #[test]
    fn indexes_append_and_resolve() {
        let root = tempfile::tempdir().unwrap();
        let run_dir = root.path().join("runs");
        let (first, second) = (RunId::generate(), RunId::generate());
        append_index(
            &run_dir,
            &index(&first, IndexEvent::Start, RunStatus::Running),
        )
        .unwrap();
        append_index(
            &run_dir,
            &index(&second, IndexEvent::Start, RunStatus::Running),
        )
        .unwrap();
        append_index(
            &run_dir,
            &index(&first, IndexEvent::End, RunStatus::Completed),
        )
        .unwrap();
        assert_eq!(std::fs::read(run_dir.join(GITIGNORE)).unwrap(), b"*\n");
        assert_eq!(read_index(&run_dir).unwrap().len(), 3);

        let pointer_index = root.path().join("home/mcp-wrapper/runs.index.jsonl");
        let pointer = PointerRecord {
            endpoint: None,
            run_id: first.clone(),
            project_root: "/p".into(),
            run_dir: run_dir.clone(),
            thread_id: Some("thr".into()),
            title: None,
            status: RunStatus::Completed,
            at: now_rfc3339(),
            total_tokens: None,
            duration_ms: None,
        };
        append_pointer(&pointer_index, &pointer).unwrap();
        let mode = std::fs::metadata(pointer_index.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(read_pointer(&pointer_index).unwrap(), [pointer]);
    }
}
