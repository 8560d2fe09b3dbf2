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
            while let Some(op) = queue.blocking_recv() {
                if let Err(error) = perform(&audit, &run_dir, &pointer_index, op) {
                    tracing::warn!(%error, "audit write failed");
                }
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
