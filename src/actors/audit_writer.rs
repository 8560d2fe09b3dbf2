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

use crate::backpressure::Credit;

use crate::store::{
    self, ActiveRecord, AuditEvent, AuditRecord, IndexRecord, PointerRecord, RunAudit, RunId,
    RunSummary, StoreError,
};

/// One thing to write.
#[derive(Debug)]
pub enum AuditOp {
    /// Stamped when queued, which is when it was received: the queue may lag.
    /// The credit of the notification it records goes back once it is
    /// appended, so the connection reads on only as fast as this disk takes
    /// events ([`crate::backpressure`]).
    Event(AuditRecord, Credit),
    Write(AuditWrite),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// A write other than an event: each goes to the disk on its own, in
/// order after the events queued before it.
#[derive(Debug)]
pub enum AuditWrite {
    Stderr(String),
    Summary(Box<RunSummary>),
    Active(Box<ActiveRecord>),
    RemoveActive,
    Index(Box<IndexRecord>),
    Pointer(Box<PointerRecord>),
}

impl From<AuditWrite> for AuditOp {
    fn from(write: AuditWrite) -> AuditOp {
        AuditOp::Write(write)
    }
}

/// Events already queued are appended together, up to this many at a time:
/// a burst of deltas costs one open, lock and write per batch rather than
/// per event, and a batch (a few hundred KB at most) stays small in memory.
const MAX_EVENTS_PER_APPEND: usize = 512;

/// The queue is bounded by the connection's credits, not by the channel:
/// every event of the app-server in it holds a credit until appended, and
/// the other writes come at most a few per event (an error's stderr line,
/// an answer, an active record or summary at most every
/// `ACTIVE_REFRESH_INTERVAL` / `SUMMARY_REFRESH`) or once per run. So the
/// producer, an actor that must not wait on the disk in `handle`, queues
/// without waiting, and a slow disk holds the credits, which stops the
/// socket reads upstream of the actor instead.
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

    /// Counts writes that had nowhere to go (the audit never opened).
    fn lost(&mut self, count: usize) {
        self.failed += count as u64;
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
    /// An event of our own making, which counts against no credits.
    pub fn event(event: AuditEvent) -> AuditOp {
        AuditOp::Event(AuditRecord::now(event), Credit::none())
    }

    /// An event that records what the app-server sent, with its credit.
    pub fn credited(event: AuditEvent, credit: Credit) -> AuditOp {
        AuditOp::Event(AuditRecord::now(event), credit)
    }
}

impl AuditWriter {
    /// Prepares the run's directory (0700) and answers; its files (0600)
    /// are created after, by the writer, while the caller goes on to start
    /// the turn. When they cannot be created (a read-only or full disk),
    /// the writer still takes every operation and counts each as lost. A
    /// symbolic link planted where the audit goes is the one refusal: it
    /// may be an attack, and a run started anyway would be one nobody can
    /// audit.
    pub async fn open(
        run_dir: &Path,
        run_id: &RunId,
        pointer_index: PathBuf,
    ) -> Result<AuditWriter, StoreError> {
        let health = Arc::new(Mutex::new(Health::default()));
        let (ops, queue) = mpsc::unbounded_channel();
        let (prepared, refusal) = oneshot::channel();
        let writer = Writer {
            run_dir: run_dir.to_path_buf(),
            run_id: run_id.clone(),
            pointer_index,
            health: health.clone(),
        };
        let task = tokio::task::spawn_blocking(move || writer.run(prepared, queue));
        match refusal.await {
            Ok(None) => Ok(AuditWriter { ops, task, health }),
            Ok(Some(error)) => Err(error),
            // The task ended without a word: it panicked.
            Err(_) => Err(StoreError::Io {
                path: run_dir.to_path_buf(),
                source: std::io::Error::other("the audit writer task failed"),
            }),
        }
    }

    pub fn send(&self, op: impl Into<AuditOp>) {
        // Only fails once `close` ran, after which the run writes nothing.
        let _ = self.ops.send(op.into());
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

/// The blocking side: one run's files and what went wrong writing them.
struct Writer {
    run_dir: PathBuf,
    run_id: RunId,
    pointer_index: PathBuf,
    health: Arc<Mutex<Health>>,
}

impl Writer {
    /// Prepares the run directory, says whether the run may go on
    /// (`prepared`: `None`, or the refusal), creates the run's logs, then
    /// writes what is queued until the queue closes.
    fn run(self, prepared: oneshot::Sender<Option<StoreError>>, queue: Queue) {
        let audit = match RunAudit::prepare(&self.run_dir, &self.run_id) {
            Ok(audit) => Some(audit),
            Err(error @ StoreError::Symlink { .. }) => {
                let _ = prepared.send(Some(error));
                return;
            }
            Err(error) => {
                self.report(Err(error), 0, false);
                None
            }
        };
        let _ = prepared.send(None);
        if let Some(audit) = &audit {
            self.report(audit.create_logs(), 0, true);
        }
        self.drain(audit.as_ref(), queue);
    }

    /// Counts a failure; or, with nowhere to write, `lost` writes.
    fn report(&self, outcome: Result<(), StoreError>, lost: usize, opened: bool) {
        if let Ok(mut health) = self.health.lock() {
            match outcome {
                Err(error) => health.failed(&self.run_id, &error),
                // Nothing to write into; the open error was counted.
                Ok(()) if !opened => health.lost(lost),
                Ok(()) => {}
            }
        }
    }

    fn drain(&self, audit: Option<&RunAudit>, mut queue: Queue) {
        let append_events = |events: &mut Vec<AuditRecord>, credits: &mut Vec<Credit>| {
            if !events.is_empty() {
                let outcome = audit.map_or(Ok(()), |audit| audit.append_records(events));
                self.report(outcome, events.len(), audit.is_some());
                events.clear();
            }
            // Written (or counted as lost): the connection may read on.
            credits.clear();
        };
        let (mut events, mut credits) = (Vec::new(), Vec::new());
        while let Some(op) = queue.blocking_recv() {
            // Whatever queued up meanwhile goes too: consecutive events
            // in one append, everything else in order after them.
            let mut next = Some(op);
            while let Some(op) = next.take() {
                match op {
                    AuditOp::Event(record, credit) => {
                        if events.len() >= MAX_EVENTS_PER_APPEND {
                            append_events(&mut events, &mut credits);
                        }
                        events.push(record);
                        credits.push(credit);
                    }
                    AuditOp::Flush(done) => {
                        append_events(&mut events, &mut credits);
                        let _ = done.send(());
                    }
                    AuditOp::Write(write) => {
                        append_events(&mut events, &mut credits);
                        let outcome = audit.map_or(Ok(()), |audit| {
                            perform(audit, &self.run_dir, &self.pointer_index, write)
                        });
                        self.report(outcome, 1, audit.is_some());
                    }
                }
                next = queue.try_recv().ok();
            }
            append_events(&mut events, &mut credits);
        }
    }
}

type Queue = mpsc::UnboundedReceiver<AuditOp>;

fn perform(
    audit: &RunAudit,
    run_dir: &Path,
    pointer_index: &Path,
    write: AuditWrite,
) -> Result<(), StoreError> {
    match write {
        AuditWrite::Stderr(line) => audit.append_stderr(&line),
        AuditWrite::Summary(summary) => audit.write_summary(&summary),
        AuditWrite::Active(record) => audit.write_active(&record),
        AuditWrite::RemoveActive => audit.remove_active(),
        AuditWrite::Index(record) => store::append_index(run_dir, &record),
        AuditWrite::Pointer(record) => store::append_pointer(pointer_index, &record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `open` answers once the directory is checked; the logs come after,
    /// from the writer, before anything queued: every run still has both,
    /// owner-only. A link planted for the run directory is still refused by
    /// `open` itself.
    #[tokio::test]
    async fn the_writer_creates_the_logs_and_open_still_refuses_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("runs");
        let run_id = RunId::generate();
        let pointer = dir.path().join("runs.index.jsonl");
        let writer = AuditWriter::open(&run_dir, &run_id, pointer.clone())
            .await
            .unwrap();
        writer.flush().await;
        let paths = store::RunPaths::new(&run_dir, &run_id);
        for log in [&paths.events, &paths.stderr] {
            let meta = std::fs::metadata(log).unwrap();
            assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (0, 0o600));
        }
        assert_eq!(writer.close().await, None);

        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&run_dir, &linked).unwrap();
        let refused = AuditWriter::open(&linked, &RunId::generate(), pointer).await;
        assert!(matches!(refused, Err(StoreError::Symlink { .. })));
    }

    /// What a run's handle waits for: once `flush` answers, the index start
    /// line queued before it is synced.
    #[tokio::test]
    async fn a_flush_after_the_start_line_waits_for_its_sync() {
        use crate::store::{IndexEvent, IndexRecord};
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::generate();
        let pointer = dir.path().join("runs.index.jsonl");
        let writer = AuditWriter::open(dir.path(), &run_id, pointer)
            .await
            .unwrap();
        let index_file = store::paths::index_path(dir.path());
        let before = store::group_sync::syncs_at(&index_file);
        writer.send(AuditWrite::Index(Box::new(IndexRecord::for_test(
            &run_id,
            IndexEvent::Start,
            dir.path(),
        ))));
        writer.flush().await;
        assert_eq!(store::group_sync::syncs_at(&index_file) - before, 1);
        assert_eq!(store::read_index(dir.path()).unwrap().len(), 1);
        assert_eq!(writer.close().await, None);
    }

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
                writer.send(AuditWrite::Stderr(format!("line {n}")));
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
        assert_eq!(writer.close().await, None, "nothing lost");
    }
}
