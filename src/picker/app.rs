//! The picker's state and its key handling: no IO and no clock, so every
//! behaviour is a unit test. The event loop feeds it catalogs, the time and
//! keys, and carries out the [`Action`]s it returns.

use std::cell::Cell;
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use time::OffsetDateTime;

use crate::store::catalog::{Catalog, RunRow};
use crate::store::{RunId, RunStatus};

use super::format::contains_ignore_case;

/// What the event loop must do after a key: the picker itself never touches
/// the terminal, the store or a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Attach the Codex terminal UI to this run (the selected row's).
    Attach(RunId),
    /// Read the catalog again now instead of waiting for the watcher.
    Refresh,
    /// Leave the picker.
    Quit,
}

/// The two lists: runs still going, and runs that are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Status `running`, waiting for approval included.
    Running,
    /// Every other status: completed, failed, interrupted, timed out, unknown.
    Completed,
}

impl Column {
    fn other(self) -> Column {
        match self {
            Column::Running => Column::Completed,
            Column::Completed => Column::Running,
        }
    }

    fn of(row: &RunRow) -> Column {
        if row.status == RunStatus::Running {
            Column::Running
        } else {
            Column::Completed
        }
    }
}

/// Rows a page key moves by until the first draw tells the real list height.
const DEFAULT_PAGE_HEIGHT: usize = 10;

/// One list: which catalog rows pass the filter, and where the cursor is.
#[derive(Debug, Default)]
pub(super) struct ColumnState {
    /// Positions in [`App::rows`], in catalog order (newest first). Indices,
    /// not rows: with 100,000 runs a filter keystroke must not copy them.
    pub(super) indices: Vec<usize>,
    /// Position in `indices`; meaningless (0) while `indices` is empty.
    pub(super) selected: usize,
    /// The first visible position, kept by the view between frames so that
    /// the list scrolls only when the selection would leave the window.
    pub(super) offset: Cell<usize>,
}

impl ColumnState {
    fn selected_row(&self) -> Option<usize> {
        self.indices.get(self.selected).copied()
    }

    fn clamp(&mut self) {
        self.selected = self.selected.min(self.indices.len().saturating_sub(1));
    }

    /// Moves the cursor by `delta` rows, stopping at either end.
    fn step(&mut self, delta: isize) {
        self.selected = self.selected.saturating_add_signed(delta);
        self.clamp();
    }
}

/// Everything the picker shows, and the cursor the person moves over it.
#[derive(Debug)]
pub struct App {
    /// The catalog's rows, newest first, owned: the columns index into them.
    pub(super) rows: Vec<RunRow>,
    /// What the catalog could not read, shown in the status line so a
    /// missing run is explained rather than silently absent.
    pub(super) problems: Vec<String>,
    /// The time ages are measured against: passed in, so drawing is
    /// deterministic and tests can fix it.
    pub(super) now: OffsetDateTime,
    /// The project the catalog was read for; `None` is every project.
    pub(super) project: Option<PathBuf>,
    pub(super) running: ColumnState,
    pub(super) completed: ColumnState,
    pub(super) focus: Column,
    /// The filter text as typed; matching ignores case.
    pub(super) filter: String,
    /// Whether keys are editing the filter rather than moving the cursor.
    pub(super) filter_input: bool,
    /// A transient line from the event loop (an attach that could not start),
    /// cleared by the next key so it never outlives its moment.
    pub(super) message: Option<String>,
    /// Rows in the focused list at the last draw: how far a page key moves.
    pub(super) page_height: Cell<usize>,
    /// Totals over the whole catalog for the header, counted when the catalog
    /// changes rather than on every frame.
    pub(super) counts: Counts,
}

/// Totals over the whole catalog, filter or not.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) running: usize,
    /// Running runs with a pending approval (also counted in `running`).
    pub(super) waiting: usize,
    pub(super) finished: usize,
}

impl App {
    pub fn new(catalog: Catalog, now: OffsetDateTime) -> App {
        let mut app = App {
            rows: Vec::new(),
            problems: Vec::new(),
            now,
            project: None,
            running: ColumnState::default(),
            completed: ColumnState::default(),
            focus: Column::Running,
            filter: String::new(),
            filter_input: false,
            message: None,
            page_height: Cell::new(DEFAULT_PAGE_HEIGHT),
            counts: Counts::default(),
        };
        app.set_catalog(catalog, now);
        if app.running.indices.is_empty() && !app.completed.indices.is_empty() {
            // Nothing is going: start where there is something to pick.
            app.focus = Column::Completed;
        }
        app
    }

    /// Names the project the catalog was read for, for the header.
    pub fn with_project(mut self, project: impl Into<PathBuf>) -> App {
        self.project = Some(project.into());
        self
    }

    /// Replaces the rows with a fresh read. The selection stays on the same
    /// run when it is still there (the list refreshes while a person moves
    /// through it, and after an attach the run they left must be the one
    /// selected), following it to the other column if it finished meanwhile;
    /// when it is gone, the cursor stays at the same position, clamped.
    pub fn set_catalog(&mut self, catalog: Catalog, now: OffsetDateTime) {
        let focused_run = self.selected().map(|row| row.run_id.clone());
        let other_run = self
            .column(self.focus.other())
            .selected_row()
            .map(|index| self.rows[index].run_id.clone());
        self.rows = catalog.rows;
        self.problems = catalog.problems;
        self.now = now;
        self.counts = count(&self.rows);
        self.refilter();

        // The other column first: if the focused run moved there (it
        // finished), following it below must win.
        let focus = self.focus;
        if let Some(run_id) = other_run {
            let other = focus.other();
            match self.position_in(other, &run_id) {
                Some(position) => self.column_mut(other).selected = position,
                None => self.column_mut(other).clamp(),
            }
        }
        if let Some(run_id) = focused_run {
            match self.find(&run_id) {
                Some((column, position)) => {
                    self.focus = column;
                    self.column_mut(column).selected = position;
                }
                None => self.column_mut(focus).clamp(),
            }
        }
    }

    /// Moves the clock ages are measured against (a tick of the event loop).
    pub fn set_now(&mut self, now: OffsetDateTime) {
        self.now = now;
    }

    /// The run under the cursor of the focused column.
    pub fn selected(&self) -> Option<&RunRow> {
        self.column(self.focus)
            .selected_row()
            .and_then(|index| self.rows.get(index))
    }

    /// Shows `message` in the status line until the next key.
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = Some(message.into());
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn focus(&self) -> Column {
        self.focus
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Whether keys currently edit the filter.
    pub fn is_editing_filter(&self) -> bool {
        self.filter_input
    }

    /// How far PageUp and PageDown move. The view sets it on every draw; the
    /// event loop or a test may set it before the first one.
    pub fn set_page_height(&self, rows: usize) {
        self.page_height.set(rows.max(1));
    }

    /// Reacts to one key. Pure: it changes only this state and says what the
    /// event loop should do.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Action> {
        // Windows reports releases too; a key counts once.
        if key.kind != KeyEventKind::Press {
            return None;
        }
        self.message = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return Some(Action::Quit);
        }
        if self.filter_input {
            return self.handle_filter_key(key, ctrl);
        }
        let page = self.page_height.get().max(1) as isize;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Some(Action::Quit),
            KeyCode::Char('r') => return Some(Action::Refresh),
            KeyCode::Enter => {
                return self
                    .selected()
                    .map(|row| Action::Attach(row.run_id.clone()));
            }
            KeyCode::Char('/') => self.filter_input = true,
            KeyCode::Up | KeyCode::Char('k') => self.focused_mut().step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.focused_mut().step(1),
            KeyCode::PageUp => self.focused_mut().step(-page),
            KeyCode::PageDown => self.focused_mut().step(page),
            KeyCode::Home | KeyCode::Char('g') => self.focused_mut().selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.focused_mut().step(isize::MAX),
            KeyCode::Left => self.focus = Column::Running,
            KeyCode::Right => self.focus = Column::Completed,
            KeyCode::Tab | KeyCode::BackTab => self.focus = self.focus.other(),
            _ => {}
        }
        None
    }

    /// Keys while the filter is being typed: text edits it, the arrows still
    /// move through what it leaves.
    fn handle_filter_key(&mut self, key: KeyEvent, ctrl: bool) -> Option<Action> {
        match key.code {
            KeyCode::Enter => self.filter_input = false,
            KeyCode::Esc => {
                self.filter_input = false;
                self.set_filter(String::new());
            }
            KeyCode::Backspace => {
                let mut filter = self.filter.clone();
                filter.pop();
                self.set_filter(filter);
            }
            KeyCode::Char(typed) if !ctrl => {
                let mut filter = self.filter.clone();
                filter.push(typed);
                self.set_filter(filter);
            }
            KeyCode::Up => self.focused_mut().step(-1),
            KeyCode::Down => self.focused_mut().step(1),
            KeyCode::Tab | KeyCode::BackTab => self.focus = self.focus.other(),
            _ => {}
        }
        None
    }

    /// Changes the filter, keeping each column's selection on its run when
    /// the run still matches.
    fn set_filter(&mut self, filter: String) {
        if filter == self.filter {
            return;
        }
        let kept = [Column::Running, Column::Completed].map(|column| {
            self.column(column)
                .selected_row()
                .map(|index| self.rows[index].run_id.clone())
        });
        self.filter = filter;
        self.refilter();
        for (column, run_id) in [Column::Running, Column::Completed].into_iter().zip(kept) {
            let position = run_id.and_then(|run_id| self.position_in(column, &run_id));
            let state = self.column_mut(column);
            state.selected = position.unwrap_or(0);
            state.clamp();
        }
        // A filter that empties the focused list but not the other moves
        // there, so the detail pane and Enter have a run to act on.
        if self.column(self.focus).indices.is_empty()
            && !self.column(self.focus.other()).indices.is_empty()
        {
            self.focus = self.focus.other();
        }
    }

    /// Recomputes both columns' indices from the rows and the filter: only
    /// when one of them changes, never per frame.
    fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.running.indices.clear();
        self.completed.indices.clear();
        for (index, row) in self.rows.iter().enumerate() {
            if !matches_filter(row, &needle) {
                continue;
            }
            match Column::of(row) {
                Column::Running => self.running.indices.push(index),
                Column::Completed => self.completed.indices.push(index),
            }
        }
        self.running.clamp();
        self.completed.clamp();
    }

    fn find(&self, run_id: &RunId) -> Option<(Column, usize)> {
        [Column::Running, Column::Completed]
            .into_iter()
            .find_map(|column| Some((column, self.position_in(column, run_id)?)))
    }

    fn position_in(&self, column: Column, run_id: &RunId) -> Option<usize> {
        self.column(column)
            .indices
            .iter()
            .position(|&index| self.rows[index].run_id == *run_id)
    }

    pub(super) fn column(&self, column: Column) -> &ColumnState {
        match column {
            Column::Running => &self.running,
            Column::Completed => &self.completed,
        }
    }

    fn column_mut(&mut self, column: Column) -> &mut ColumnState {
        match column {
            Column::Running => &mut self.running,
            Column::Completed => &mut self.completed,
        }
    }

    fn focused_mut(&mut self) -> &mut ColumnState {
        self.column_mut(self.focus)
    }
}

/// The word a row's status reads as: a running run held by an approval is
/// `waiting`, which is what a person scanning the list needs to see.
pub fn status_label(row: &RunRow) -> &'static str {
    match row.status {
        RunStatus::Running if row.pending_approval.is_some() => "waiting",
        RunStatus::Running => "running",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::TimedOut => "timed out",
        RunStatus::Unknown => "unknown",
    }
}

/// Whether a row matches a lowercase filter: on what the screen shows of it
/// (title, run id, cwd, thread id, status as stored and as shown).
fn matches_filter(row: &RunRow, needle: &str) -> bool {
    needle.is_empty()
        || contains_ignore_case(&row.title, needle)
        || contains_ignore_case(row.run_id.as_str(), needle)
        || contains_ignore_case(&row.cwd.to_string_lossy(), needle)
        || row
            .thread_id
            .as_deref()
            .is_some_and(|thread| contains_ignore_case(thread, needle))
        || contains_ignore_case(row.status.as_str(), needle)
        || contains_ignore_case(status_label(row), needle)
}

fn count(rows: &[RunRow]) -> Counts {
    let mut counts = Counts::default();
    for row in rows {
        match Column::of(row) {
            Column::Running => {
                counts.running += 1;
                if row.pending_approval.is_some() {
                    counts.waiting += 1;
                }
            }
            Column::Completed => counts.finished += 1,
        }
    }
    counts
}

#[cfg(test)]
mod tests;
