//! What the audit shows of a run another sidecar owns, read as it grows:
//! the project index from where the last look stopped (for its end record),
//! the run's `active/` record (its owner and turn), and the new lines of its
//! event log, folded as the owner folds them, so the progress a follower
//! reports has the owner's numbers. Blocking file reads; the follower runs
//! each look on the blocking pool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::actors::resolve::{self, Located};
use crate::actors::run_state::{RunRecord, RunSettings};
use crate::actors::types::{Progress, RunResult};
use crate::protocol::ServerNotification;
use crate::store::{
    self, ActiveRecord, AuditEvent, AuditRecord, IndexEvent, IndexRecord, RunPaths,
};

/// How far the run got, as its audit says now.
#[derive(Debug)]
pub enum Sight {
    /// Its owner (`pid`) is alive and the run goes on.
    Running { progress: Progress, pid: u32 },
    /// Its end record is in the index: the result, as the owner's.
    Ended(Box<RunResult>),
    /// Listed as running, but its owner is gone: the adoption path decides.
    Orphaned,
    /// Neither listed as running nor ended: the look-up that found it
    /// decides (an incomplete audit, most likely).
    Vanished,
}

/// A followed run's files and how much of them was read.
pub struct Reader {
    located: Located,
    /// Bytes of `index.jsonl` read so far, always at a line's end.
    index_read: u64,
    /// Bytes of `<runId>.jsonl` read so far, always at a line's end.
    events_read: u64,
    /// The events folded so far, as the owner's run actor folds them.
    record: RunRecord,
}

impl Reader {
    pub fn new(located: Located) -> Reader {
        let record = RunRecord::new(
            located.run_id.clone(),
            String::new(),
            String::new(),
            located.cwd.clone(),
            RunSettings::unknown(),
            located.thread_id.clone(),
        );
        Reader {
            located,
            index_read: 0,
            events_read: 0,
            record,
        }
    }

    pub fn located(&self) -> &Located {
        &self.located
    }

    /// Reads what was appended since the last look.
    pub fn look(&mut self) -> Sight {
        if let Some(end) = self.end_record() {
            return self.ended(&end);
        }
        let paths = RunPaths::new(&self.located.run_dir, &self.located.run_id);
        let Some(active) = read_active(&paths.active) else {
            // The owner appends the end record before it removes the active
            // one: a look between the two reads sees neither, so look again.
            return match self.end_record() {
                Some(end) => self.ended(&end),
                None => Sight::Vanished,
            };
        };
        if self.record.turn_id.is_none() {
            // An active record written before its turn started has none
            // yet: the look-up took it from the index.
            self.record.turn_id = active.turn_id.clone().or_else(|| {
                let found = self.located.active.as_ref();
                found.and_then(|active| active.turn_id.clone())
            });
        }
        self.fold_new_events(&paths.events);
        if resolve::process_alive(active.pid) {
            Sight::Running {
                progress: self.record.progress(),
                pid: active.pid,
            }
        } else {
            Sight::Orphaned
        }
    }

    /// The result rebuilt from the audit, as a wait on an ended run gets it.
    fn ended(&self, end: &IndexRecord) -> Sight {
        let located = Located {
            ended: Some(end.clone()),
            ..self.located.clone()
        };
        Sight::Ended(Box::new(resolve::finished_result(&located, end)))
    }

    fn end_record(&mut self) -> Option<IndexRecord> {
        let index = store::paths::index_path(&self.located.run_dir);
        let run_id = &self.located.run_id;
        new_lines(&index, &mut self.index_read)
            .into_iter()
            .filter_map(|line| serde_json::from_slice::<IndexRecord>(&line).ok())
            .find(|record| &record.run_id == run_id && record.event == IndexEvent::End)
    }

    fn fold_new_events(&mut self, events: &Path) {
        for line in new_lines(events, &mut self.events_read) {
            if let Ok(AuditRecord {
                event: AuditEvent::Notification { method, params },
                ..
            }) = serde_json::from_slice::<AuditRecord>(&line)
            {
                self.record.apply(&ServerNotification::new(method, params));
            }
        }
    }
}

fn read_active(path: &Path) -> Option<ActiveRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The complete lines appended to `path` after byte `read`, which moves to
/// the end of the last of them: a line still being written is read next
/// time, whole. A missing or unreadable file has none (the next look tries
/// again).
fn new_lines(path: &Path, read: &mut u64) -> Vec<Vec<u8>> {
    let appended = (|| -> io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(*read))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    })();
    let Ok(mut bytes) = appended else {
        return Vec::new();
    };
    let Some(last_newline) = bytes.iter().rposition(|&byte| byte == b'\n') else {
        return Vec::new();
    };
    bytes.truncate(last_newline + 1);
    *read += bytes.len() as u64;
    bytes
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunAudit, RunId, RunStatus};
    use std::io::Write;
    use std::path::PathBuf;

    fn located(run_dir: &Path, run_id: &RunId) -> Located {
        Located {
            run_id: run_id.clone(),
            thread_id: "th-owned-elsewhere".into(),
            cwd: PathBuf::from("/project"),
            run_dir: run_dir.to_path_buf(),
            ended: None,
            active: None,
        }
    }

    fn active(run_id: &RunId, pid: u32) -> ActiveRecord {
        ActiveRecord {
            thread_id: "th-owned-elsewhere".into(),
            turn_id: Some("turn-1".into()),
            pid,
            ..ActiveRecord::for_test(run_id, "/project")
        }
    }

    fn note(method: &str, params: serde_json::Value) -> AuditRecord {
        AuditRecord::now(AuditEvent::Notification {
            method: method.into(),
            params,
        })
    }

    fn end(run_id: &RunId) -> IndexRecord {
        IndexRecord {
            thread_id: Some("th-owned-elsewhere".into()),
            turn_id: Some("turn-1".into()),
            duration_ms: Some(1234),
            ..IndexRecord::for_test(run_id, IndexEvent::End, "/project")
        }
    }

    #[test]
    fn a_look_reads_progress_while_the_owner_lives_and_the_result_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let audit = RunAudit::open(dir.path(), &run_id).unwrap();
        let mut reader = Reader::new(located(dir.path(), &run_id));
        // Nothing listed and no end: not this reader's call.
        assert!(matches!(reader.look(), Sight::Vanished));

        audit
            .write_active(&active(&run_id, std::process::id()))
            .unwrap();
        let delta = serde_json::json!({"threadId": "th-owned-elsewhere", "turnId": "turn-1",
                                       "itemId": "m", "delta": "hel"});
        audit
            .append_records(&[
                note(
                    "turn/started",
                    serde_json::json!({"threadId": "th-owned-elsewhere"}),
                ),
                note("item/agentMessage/delta", delta.clone()),
            ])
            .unwrap();
        let Sight::Running { progress, pid } = reader.look() else {
            panic!("not running");
        };
        assert_eq!((progress.events, pid), (2, std::process::id()));
        // Only what was appended since is folded in.
        audit
            .append_record(&note("item/agentMessage/delta", delta))
            .unwrap();
        let Sight::Running { progress, .. } = reader.look() else {
            panic!("not running");
        };
        assert_eq!(progress.events, 3);

        let done = serde_json::json!({"threadId": "th-owned-elsewhere", "turnId": "turn-1",
            "item": {"type": "agentMessage", "id": "m", "text": "hello"}});
        audit.append_record(&note("item/completed", done)).unwrap();
        store::append_index(dir.path(), &end(&run_id)).unwrap();
        let Sight::Ended(result) = reader.look() else {
            panic!("not ended");
        };
        assert_eq!(result.status, RunStatus::Completed);
        assert_eq!(result.result.as_deref(), Some("hello"));
        assert_eq!(result.duration_ms, 1234);
    }

    /// The active record is not synced: a power loss may leave it empty.
    /// Its sidecar died with the power, so the run is not live; the look
    /// says so instead of following a run nobody owns.
    #[test]
    fn an_empty_active_record_is_no_live_run() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let audit = RunAudit::open(dir.path(), &run_id).unwrap();
        std::fs::write(&audit.paths().active, "").unwrap();
        let mut reader = Reader::new(located(dir.path(), &run_id));
        assert!(matches!(reader.look(), Sight::Vanished));
    }

    #[test]
    fn an_owner_that_is_gone_leaves_the_run_orphaned() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let audit = RunAudit::open(dir.path(), &run_id).unwrap();
        audit.write_active(&active(&run_id, dead)).unwrap();
        let mut reader = Reader::new(located(dir.path(), &run_id));
        assert!(matches!(reader.look(), Sight::Orphaned));
    }

    #[test]
    fn only_whole_lines_are_read_and_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut file = File::create(&path).unwrap();
        let mut read = 0;
        assert!(new_lines(&dir.path().join("missing"), &mut read).is_empty());
        file.write_all(b"{\"a\":1}\n{\"b\":").unwrap();
        assert_eq!(new_lines(&path, &mut read), vec![b"{\"a\":1}".to_vec()]);
        assert!(new_lines(&path, &mut read).is_empty());
        file.write_all(b"2}\n\n{\"c\":3}\n").unwrap();
        assert_eq!(
            new_lines(&path, &mut read),
            vec![b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()]
        );
        assert!(new_lines(&path, &mut read).is_empty());
    }
}
