//! Writes one run's audit off the async executor, in order: the run actor
//! queues operations and one blocking task performs them. A run whose audit
//! cannot be written (a read-only or full disk) goes on without it: losing
//! the run over a full disk would lose more than the lines. The first
//! failure is logged, later ones only counted, and the run's result says
//! what was lost ([`AuditWriter::close`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    health: Arc<Mutex<Health>>,
}

/// What could not be written, shared with the writer task.
#[derive(Debug, Default)]
struct Health {
    failed: u64,
    first: Option<String>,
}

impl Health {
    /// Counts a failure; only the first is logged, so a full disk makes one
    /// warning per run, not one per event.
    fn failed(&mut self, run_id: &RunId, error: &StoreError) {
        self.failed += 1;
        if self.first.is_none() {
            tracing::warn!(run = %run_id, %error, "the run's audit cannot be written; the run goes on without it");
            self.first = Some(error.to_string());
        }
    }

    fn problem(&self) -> Option<String> {
        let first = self.first.as_ref()?;
        Some(format!(
            "the audit could not be written ({} write{} lost), first: {first}",
            self.failed,
            if self.failed == 1 { "" } else { "s" }
        ))
    }
}

impl AuditOp {
    pub fn event(event: AuditEvent) -> AuditOp {
        AuditOp::Event(AuditRecord::now(event))
    }
}

impl AuditWriter {
    /// Creates the run's files (directories 0700, files 0600). When they
    /// cannot be created, the writer still takes every operation and counts
    /// each as lost.
    pub async fn open(run_dir: &Path, run_id: &RunId, pointer_index: PathBuf) -> AuditWriter {
        let (dir, id) = (run_dir.to_path_buf(), run_id.clone());
        let health = Arc::new(Mutex::new(Health::default()));
        let opened = tokio::task::spawn_blocking(move || RunAudit::open(&dir, &id))
            .await
            .map_err(|error| StoreError::Io {
                path: run_dir.to_path_buf(),
                source: std::io::Error::other(error),
            })
            .and_then(|opened| opened);
        let audit = match opened {
            Ok(audit) => Some(audit),
            Err(error) => {
                if let Ok(mut health) = health.lock() {
                    health.failed(run_id, &error);
                }
                None
            }
        };
        let (ops, mut queue) = mpsc::unbounded_channel();
        let (run_dir, run_id, shared) = (run_dir.to_path_buf(), run_id.clone(), health.clone());
        let task = tokio::task::spawn_blocking(move || {
            while let Some(op) = queue.blocking_recv() {
                let outcome = match (&audit, op) {
                    (_, AuditOp::Flush(done)) => {
                        let _ = done.send(());
                        Ok(())
                    }
                    (Some(audit), op) => perform(audit, &run_dir, &pointer_index, op),
                    // Nothing to write into; the open error was counted.
                    (None, _) => Ok(()),
                };
                if let Err(error) = outcome
                    && let Ok(mut health) = shared.lock()
                {
                    health.failed(&run_id, &error);
                }
            }
        });
        AuditWriter { ops, task, health }
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

    /// Waits until everything queued is on disk; says what could not be
    /// written, if anything.
    pub async fn close(self) -> Option<String> {
        drop(self.ops);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "audit writer task failed");
        }
        self.health.lock().ok().and_then(|health| health.problem())
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
