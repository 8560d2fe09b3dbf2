//! Writes one run's audit off the async executor, in order: the run actor
//! queues operations and one blocking task performs them. A failed write is
//! logged and the run goes on: losing the run over a full disk would lose
//! more than the line.

use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{
    self, ActiveRecord, AuditEvent, AuditRecord, IndexRecord, PointerRecord, RunAudit, RunId,
    RunSummary, StoreError,
};

/// One thing to write.
#[derive(Debug)]
pub enum AuditOp {
    /// Stamped when queued, which is when it was received: the queue may lag.
    Event(AuditRecord),
    Stderr(String),
    Summary(Box<RunSummary>),
    Active(Box<ActiveRecord>),
    RemoveActive,
    Index(Box<IndexRecord>),
    Pointer(Box<PointerRecord>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Events already queued are appended together, up to this many at a time:
/// a burst of deltas costs one open, lock and write per batch rather than
/// per event, and a batch (a few hundred KB at most) stays small in memory.
const MAX_EVENTS_PER_APPEND: usize = 512;

/// The queue is unbounded on purpose: the producer is an actor that must
/// not block on disk, and every queued operation is one small record that
/// the writer drains as fast as the disk allows.
pub struct AuditWriter {
    ops: mpsc::UnboundedSender<AuditOp>,
    task: JoinHandle<()>,
}

impl AuditOp {
    pub fn event(event: AuditEvent) -> AuditOp {
        AuditOp::Event(AuditRecord::now(event))
    }
}

impl AuditWriter {
    /// Creates the run's files (directories 0700, files 0600).
    pub async fn open(
        run_dir: &Path,
        run_id: &RunId,
        pointer_index: PathBuf,
    ) -> Result<AuditWriter, StoreError> {
        let (dir, id) = (run_dir.to_path_buf(), run_id.clone());
        let audit = tokio::task::spawn_blocking(move || RunAudit::open(&dir, &id))
            .await
            .map_err(|error| StoreError::Io {
                path: run_dir.to_path_buf(),
                source: std::io::Error::other(error),
            })??;
        let (ops, mut queue) = mpsc::unbounded_channel();
        let run_dir = run_dir.to_path_buf();
        let task = tokio::task::spawn_blocking(move || {
            let mut events = Vec::new();
            while let Some(op) = queue.blocking_recv() {
                // Whatever queued up meanwhile goes too: consecutive events
                // in one append, everything else in order after them.
                let mut next = Some(op);
                while let Some(op) = next.take() {
                    match op {
                        AuditOp::Event(record) if events.len() < MAX_EVENTS_PER_APPEND => {
                            events.push(record);
                        }
                        other => {
                            append_events(&audit, &mut events);
                            if let AuditOp::Event(record) = other {
                                events.push(record);
                            } else {
                                report(perform(&audit, &run_dir, &pointer_index, other));
                            }
                        }
                    }
                    next = queue.try_recv().ok();
                }
                append_events(&audit, &mut events);
            }
        });
        Ok(AuditWriter { ops, task })
    }

    pub fn send(&self, op: AuditOp) {
        // Only fails once `close` ran, after which the run writes nothing.
        let _ = self.ops.send(op);
    }

    /// Waits until everything queued so far is written: a run handle is
    /// handed out only once its start records are on disk, so a sidecar
    /// killed right after cannot lose the run.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        self.send(AuditOp::Flush(done));
        let _ = written.await;
    }

    /// Waits until everything queued is on disk.
    pub async fn close(self) {
        drop(self.ops);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "audit writer task failed");
        }
    }
}

/// Writes the events gathered so far, if any, in one append.
fn append_events(audit: &RunAudit, events: &mut Vec<AuditRecord>) {
    if !events.is_empty() {
        report(audit.append_records(events));
        events.clear();
    }
}

fn report(outcome: Result<(), StoreError>) {
    if let Err(error) = outcome {
        tracing::warn!(%error, "audit write failed");
    }
}

fn perform(
    audit: &RunAudit,
    run_dir: &Path,
    pointer_index: &Path,
    op: AuditOp,
) -> Result<(), StoreError> {
    match op {
        AuditOp::Event(record) => audit.append_record(&record),
        AuditOp::Stderr(line) => audit.append_stderr(&line),
        AuditOp::Summary(summary) => audit.write_summary(&summary),
        AuditOp::Active(record) => audit.write_active(&record),
        AuditOp::RemoveActive => audit.remove_active(),
        AuditOp::Index(record) => store::append_index(run_dir, &record),
        AuditOp::Pointer(record) => store::append_pointer(pointer_index, &record),
        AuditOp::Flush(done) => {
            let _ = done.send(());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_events_are_written_in_order_across_batches_and_other_writes() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let pointer = dir.path().join("runs.index.jsonl");
        let writer = AuditWriter::open(dir.path(), &run_id, pointer)
            .await
            .unwrap();
        // More than one batch, with other writes in between.
        let count = MAX_EVENTS_PER_APPEND * 2 + 7;
        for n in 0..count {
            writer.send(AuditOp::event(AuditEvent::sidecar(format!("{n}"), None)));
            if n % 300 == 0 {
                writer.send(AuditOp::Stderr(format!("line {n}")));
            }
        }
        writer.flush().await;
        let events = store::read_events(dir.path(), &run_id).unwrap();
        let seen: Vec<String> = events
            .into_iter()
            .map(|record| match record.event {
                AuditEvent::Sidecar { message, .. } => message,
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<String> = (0..count).map(|n| n.to_string()).collect();
        assert_eq!(seen, expected);
        let stderr =
            std::fs::read_to_string(store::RunPaths::new(dir.path(), &run_id).stderr).unwrap();
        assert_eq!(stderr.lines().count(), count.div_ceil(300));
        writer.close().await;
    }
}
