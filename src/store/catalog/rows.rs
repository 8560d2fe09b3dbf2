//! The join: lines folded into one row per run, in the order runs first
//! appear, then put newest first.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::de::Error as _;

use super::RunRow;
use super::lines::{IndexLine, PointerLine, Text, run_key};
use crate::store::{IndexEvent, RunId};

/// Rows in the order their runs first appear, and where each run's row is.
#[derive(Default)]
pub(super) struct Rows {
    pub rows: Vec<RunRow>,
    /// Each row's [`run_key`], for the join and the final order.
    keys: Vec<u128>,
    at: HashMap<u128, usize>,
}

impl Rows {
    /// Folds one index line in: a start opens the row, an end closes it.
    pub fn add_index(&mut self, line: IndexLine<'_>) -> Result<(), serde_json::Error> {
        let at = self.row(&line.run_id, |run_id| {
            RunRow::new(run_id, line.title.as_str(), line.cwd.as_str())
        })?;
        let row = &mut self.rows[at];
        fill(&mut row.thread_id, line.thread_id);
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

    /// Folds one pointer line in (a later line is newer); returns where its
    /// row is.
    pub fn add_pointer(&mut self, line: PointerLine<'_>) -> Result<usize, serde_json::Error> {
        let title = line.title.as_ref().map_or("", Text::as_str);
        let at = self.row(&line.run_id, |run_id| {
            RunRow::new(run_id, title, line.project_root.as_str())
        })?;
        let row = &mut self.rows[at];
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
        replace_value(&mut row.duration_ms, line.duration_ms);
        replace_value(&mut row.total_tokens, line.total_tokens);
        Ok(at)
    }

    /// Where the row of `run_id` is, made with `new` if it is the run's
    /// first line. An id that is not a run id makes the line bad.
    fn row(
        &mut self,
        run_id: &Text<'_>,
        new: impl FnOnce(RunId) -> RunRow,
    ) -> Result<usize, serde_json::Error> {
        let key = run_key(run_id.as_str());
        if let Some(&at) = key.and_then(|key| self.at.get(&key)) {
            return Ok(at);
        }
        let parsed = RunId::parse(run_id.as_str()).map_err(serde_json::Error::custom)?;
        // RunId::parse accepts exactly the shapes run_key does.
        let key = key.unwrap_or_default();
        let at = self.rows.len();
        self.at.insert(key, at);
        self.keys.push(key);
        self.rows.push(new(parsed));
        Ok(at)
    }

    /// The rows, newest first (run ids sort by start time). Lines mostly
    /// come in start order, so usually this is a reversal; otherwise the
    /// rows are sorted as indices, then each moved into place once, so that
    /// a large catalog is never copied into a second buffer.
    pub fn newest_first(self) -> Vec<RunRow> {
        let Rows { mut rows, keys, at } = self;
        drop(at);
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
    fn new(run_id: RunId, title: &str, cwd: &str) -> RunRow {
        RunRow {
            run_id,
            title: title.to_string(),
            status: crate::store::RunStatus::Running,
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
            error: None,
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

fn replace_value<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}
