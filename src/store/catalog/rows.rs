//! The join: lines folded into one row per run, in the order runs first
//! appear, then put newest first. A large file is folded in parts side by
//! side; [`Rows::absorb`] then joins the parts in file order, giving the
//! rows one fold of the whole file would (a test checks every split).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::Error as _;

use super::RunRow;
use super::lines::{IndexLine, PointerLine, Text, run_key};
use crate::store::{IndexEvent, RunId, RunStatus};

/// Rows in the order their runs first appear, each with `X` beside it (the
/// run directory, for pointer lines), and where each run's row is.
pub(super) struct Rows<X> {
    rows: Vec<RunRow>,
    extra: Vec<X>,
    /// Each row's [`run_key`], for the join and the final order.
    keys: Vec<u128>,
    at: HashMap<u128, usize>,
}

impl<X> Default for Rows<X> {
    fn default() -> Rows<X> {
        Rows {
            rows: Vec::new(),
            extra: Vec::new(),
            keys: Vec::new(),
            at: HashMap::new(),
        }
    }
}

/// One part of a project index, folded.
pub(super) type IndexRows = Rows<()>;

/// One part of the pointer index, folded: each row with its run directory
/// (the latest line's), which is shared by every row of that directory.
#[derive(Default)]
pub(super) struct PointerRows {
    pub rows: Rows<Arc<Path>>,
    dirs: HashSet<Arc<Path>>,
}

impl IndexRows {
    /// Folds one index line in: a start opens the row, an end closes it.
    pub fn add_index(&mut self, line: IndexLine<'_>) -> Result<(), serde_json::Error> {
        let at = self.row(&line.run_id, |run_id| {
            (
                RunRow::new(run_id, line.title.as_str(), line.cwd.as_str()),
                (),
            )
        })?;
        let row = &mut self.rows[at];
        fill(&mut row.thread_id, line.thread_id);
        fill(&mut row.endpoint, line.endpoint);
        match line.event {
            IndexEvent::Start => {
                // A start never reopens a run whose end was read.
                if row.ended_at.is_none() {
                    row.status = line.status;
                }
                fill(&mut row.started_at, Some(line.at));
            }
            IndexEvent::End => {
                row.status = line.status;
                row.ended_at = Some(line.at.into_string());
                replace(&mut row.last_message, line.last_message);
                replace(&mut row.error, line.error);
            }
        }
        replace_value(&mut row.duration_ms, line.duration_ms);
        replace_value(&mut row.total_tokens, line.total_tokens);
        Ok(())
    }

    /// Joins the part of the index that comes after this one, as if its
    /// lines had been folded here one by one.
    pub fn absorb_index(&mut self, later: IndexRows) {
        self.absorb(later, |row, (), later, ()| {
            fill_value(&mut row.thread_id, later.thread_id);
            fill_value(&mut row.endpoint, later.endpoint);
            fill_value(&mut row.started_at, later.started_at);
            if later.ended_at.is_some() {
                row.status = later.status;
                row.ended_at = later.ended_at;
            } else if row.ended_at.is_none() {
                row.status = later.status;
            }
            replace_value(&mut row.last_message, later.last_message);
            replace_value(&mut row.error, later.error);
            replace_value(&mut row.duration_ms, later.duration_ms);
            replace_value(&mut row.total_tokens, later.total_tokens);
        });
    }
}

impl PointerRows {
    /// Folds one pointer line in: a later line is newer.
    pub fn add_pointer(&mut self, line: PointerLine<'_>) -> Result<(), serde_json::Error> {
        let run_dir = Path::new(line.run_dir.as_str());
        let run_dir = match self.dirs.get(run_dir) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared: Arc<Path> = Arc::from(run_dir);
                self.dirs.insert(Arc::clone(&shared));
                shared
            }
        };
        let title = line.title.as_ref().map_or("", Text::as_str);
        let rows = &mut self.rows;
        let at = rows.row(&line.run_id, |run_id| {
            let row = RunRow::new(run_id, title, line.project_root.as_str());
            (row, Arc::clone(&run_dir))
        })?;
        rows.extra[at] = run_dir;
        let row = &mut rows.rows[at];
        row.status = line.status;
        if row.cwd.as_os_str() != line.project_root.as_str() {
            row.cwd = PathBuf::from(line.project_root.into_string());
        }
        if line.status.is_final() {
            row.ended_at = Some(line.at.into_string());
        } else {
            fill(&mut row.started_at, Some(line.at));
        }
        if let Some(title) = line.title
            && row.title != title.as_str()
        {
            row.title = title.into_string();
        }
        replace(&mut row.thread_id, line.thread_id);
        replace(&mut row.endpoint, line.endpoint);
        replace_value(&mut row.duration_ms, line.duration_ms);
        replace_value(&mut row.total_tokens, line.total_tokens);
        Ok(())
    }

    /// Joins the part of the pointer index that comes after this one.
    pub fn absorb_pointer(&mut self, later: PointerRows) {
        self.rows
            .absorb(later.rows, |row, run_dir, later, later_dir| {
                *run_dir = later_dir;
                row.status = later.status;
                row.cwd = later.cwd;
                if later.ended_at.is_some() {
                    row.ended_at = later.ended_at;
                }
                fill_value(&mut row.started_at, later.started_at);
                // Empty: none of the later lines had a title.
                if !later.title.is_empty() {
                    row.title = later.title;
                }
                replace_value(&mut row.thread_id, later.thread_id);
                replace_value(&mut row.endpoint, later.endpoint);
                replace_value(&mut row.duration_ms, later.duration_ms);
                replace_value(&mut row.total_tokens, later.total_tokens);
            });
    }
}

impl<X> Rows<X> {
    /// Where the row of `run_id` is, made with `new` if it is the run's
    /// first line. An id that is not a run id makes the line bad.
    fn row(
        &mut self,
        run_id: &Text<'_>,
        new: impl FnOnce(RunId) -> (RunRow, X),
    ) -> Result<usize, serde_json::Error> {
        let key = run_key(run_id.as_str());
        if let Some(&at) = key.and_then(|key| self.at.get(&key)) {
            return Ok(at);
        }
        let parsed = RunId::parse(run_id.as_str()).map_err(serde_json::Error::custom)?;
        // RunId::parse accepts only shapes run_key accepts.
        let key = key.unwrap_or_default();
        let (row, extra) = new(parsed);
        Ok(self.push(key, row, extra))
    }

    fn push(&mut self, key: u128, row: RunRow, extra: X) -> usize {
        let at = self.rows.len();
        self.at.insert(key, at);
        self.keys.push(key);
        self.rows.push(row);
        self.extra.push(extra);
        at
    }

    /// Joins `later` (the fold of the lines after ours): its new runs are
    /// appended, its rows of runs we have are merged into ours by `merge`.
    fn absorb(&mut self, later: Rows<X>, merge: impl Fn(&mut RunRow, &mut X, RunRow, X)) {
        let Rows {
            rows, extra, keys, ..
        } = later;
        // At most this many more rows: room for exactly them, not double the
        // buffer (100 000 rows must fit the picker's memory).
        self.rows.reserve_exact(rows.len());
        self.extra.reserve_exact(rows.len());
        self.keys.reserve_exact(rows.len());
        for ((row, extra), key) in rows.into_iter().zip(extra).zip(keys) {
            match self.at.get(&key) {
                Some(&at) => merge(&mut self.rows[at], &mut self.extra[at], row, extra),
                None => {
                    self.push(key, row, extra);
                }
            }
        }
    }

    /// Each row with what is kept beside it.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&mut RunRow, &X)> {
        self.rows.iter_mut().zip(self.extra.iter())
    }

    /// The rows, newest first (run ids sort by start time). Lines mostly
    /// come in start order, so usually this is a reversal; otherwise the
    /// rows are sorted as indices, then each moved into place once, so that
    /// a large catalog is never copied into a second buffer.
    pub fn newest_first(self) -> Vec<RunRow> {
        let Rows { mut rows, keys, .. } = self;
        if keys.windows(2).all(|pair| pair[0] < pair[1]) {
            rows.reverse();
            return rows;
        }
        let mut order: Vec<(u128, usize)> = keys.into_iter().zip(0..).collect();
        order.sort_unstable_by_key(|&(key, _)| std::cmp::Reverse(key));
        // Position i takes the row now at order[i].1: follow each cycle of
        // the permutation with swaps.
        let mut placed = vec![false; rows.len()];
        for start in 0..rows.len() {
            if placed[start] {
                continue;
            }
            let mut at = start;
            loop {
                placed[at] = true;
                let from = order[at].1;
                if from == start {
                    break;
                }
                rows.swap(at, from);
                at = from;
            }
        }
        rows
    }
}

impl RunRow {
    /// A row with only what every line has; the line's fold fills the rest.
    pub(crate) fn new(run_id: RunId, title: &str, cwd: &str) -> RunRow {
        RunRow {
            run_id,
            title: title.to_string(),
            status: RunStatus::Running,
            cwd: PathBuf::from(cwd),
            thread_id: None,
            started_at: None,
            ended_at: None,
            duration_ms: None,
            total_tokens: None,
            progress: None,
            last_message: None,
            pending_approval: None,
            app_server_url: None,
            app_server_token_file: None,
            error: None,
            endpoint: None,
        }
    }
}

/// Sets `slot` from the line if it has nothing yet.
fn fill(slot: &mut Option<String>, text: Option<Text<'_>>) {
    if slot.is_none() {
        *slot = text.map(Text::into_string);
    }
}

/// Sets `slot` from the line if the line has it.
fn replace(slot: &mut Option<String>, text: Option<Text<'_>>) {
    if let Some(text) = text {
        *slot = Some(text.into_string());
    }
}

fn fill_value<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn replace_value<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}
