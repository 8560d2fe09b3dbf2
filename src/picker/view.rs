//! Drawing the picker: `impl Widget for &App`. It reads the state and writes
//! the buffer, nothing else, except two remembered numbers (the page height
//! and each list's scroll offset) that only a draw can know.
//!
//! Colours: the terminal's named colours only, on foregrounds, so the screen
//! reads on dark and light themes alike; emphasis is bold, dim or reversed,
//! never a background colour of our own.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use crate::store::RunStatus;
use crate::store::catalog::RunRow;

use super::app::{App, Column, ColumnState, status_label};
use super::format::{
    fit, fit_right, seconds_between, span, tokens, truncate, truncate_start, width, wrap,
};

/// Below this width the two lists are stacked: side by side, each would get
/// under 50 cells, too few for a readable title next to status, time, tokens.
pub const SIDE_BY_SIDE_MIN_WIDTH: u16 = 100;

/// The detail pane's tallest and shortest (border line included): tall
/// enough for every field and a few lines of the last message, short enough
/// to leave the lists most of a small screen; in between, two fifths.
const DETAIL_MAX_HEIGHT: u16 = 12;
const DETAIL_MIN_HEIGHT: u16 = 5;

/// A project path shorter than this once cut says nothing: leave it out.
const PROJECT_MIN_CELLS: usize = 10;

/// A list shows its column names only when it has this many rows to spare:
/// on a short screen, runs matter more than labels.
const COLUMN_HEADER_MIN_HEIGHT: u16 = 6;

/// Cells of a row's fixed fields: `interrupted` is the longest status,
/// `59m 59s` the longest time, `999.9k` the longest token count.
const STATUS_CELLS: usize = 11;
const TIME_CELLS: usize = 7;
const TOKENS_CELLS: usize = 6;

/// A title narrower than this is useless: drop the tokens, then the time.
const TITLE_MIN_CELLS: usize = 12;

/// Typing a filter, the hints give way when fewer cells than this are left
/// for the filter itself.
const FILTER_MIN_CELLS: usize = 12;

/// The text of the empty state: it says what to do, not only what is missing.
const EMPTY_TITLE: &str = "No runs here yet.";
const EMPTY_HINT: &str =
    "Start one from your agent with codex_run, or try `make demo` in the sidecar's checkout.";

mod detail;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let nothing_to_list = self.running.indices.is_empty() && self.completed.indices.is_empty();
        let detail_height = if nothing_to_list {
            0
        } else {
            (area.height * 2 / 5).clamp(DETAIL_MIN_HEIGHT, DETAIL_MAX_HEIGHT)
        };
        let [header, lists, detail, status, hints] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(detail_height),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);

        render_header(self, header, buf);
        if self.rows.is_empty() {
            render_centered(&[EMPTY_TITLE, EMPTY_HINT], lists, buf);
        } else if nothing_to_list {
            let no_match = format!("No run matches /{}", self.filter);
            let hint = if self.filter_input {
                "Backspace edits the filter; Esc clears it."
            } else {
                "Press / to edit the filter; Esc there clears it."
            };
            render_centered(&[&no_match, hint], lists, buf);
        } else {
            render_lists(self, lists, buf);
            detail::render(self, detail, buf);
        }
        render_status(self, status, buf);
        render_hints(self, hints, buf);
    }
}

/// `codex-runs · <project> · 3 running, 1 waiting · 12 finished · /filter`.
fn render_header(app: &App, area: Rect, buf: &mut Buffer) {
    let counts = app.counts;
    let mut tally = format!("{} running", counts.running);
    if counts.waiting > 0 {
        tally.push_str(&format!(", {} waiting", counts.waiting));
    }
    tally.push_str(&format!(" · {} finished", counts.finished));
    let filter = if app.filter.is_empty() || app.filter_input {
        String::new()
    } else {
        format!(" · /{}", app.filter)
    };
    let project = app
        .project
        .as_ref()
        .map(|project| project.to_string_lossy().into_owned())
        .unwrap_or_else(|| "all projects".to_string());
    const NAME: &str = "codex-runs";
    const SEPARATOR: &str = " · ";
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = vec![Span::styled(NAME, bold), Span::raw(SEPARATOR)];
    let fixed = width(NAME) + 2 * width(SEPARATOR) + width(&tally) + width(&filter);
    let room = usize::from(area.width).saturating_sub(fixed);
    if room >= PROJECT_MIN_CELLS {
        spans.push(Span::raw(truncate_start(&project, room).into_owned()));
        spans.push(Span::raw(SEPARATOR));
    }
    spans.push(Span::raw(tally));
    spans.push(Span::styled(filter, Style::new().fg(Color::Cyan)));
    Line::from(spans).render(area, buf);
}

/// Short lines centred in `area`, each wrapped to its width.
fn render_centered(paragraphs: &[&str], area: Rect, buf: &mut Buffer) {
    let lines: Vec<String> = paragraphs
        .iter()
        .flat_map(|text| wrap(text, usize::from(area.width), usize::from(area.height)))
        .take(usize::from(area.height))
        .collect();
    let top = area.y + (area.height.saturating_sub(lines.len() as u16)) / 2;
    for (at, text) in lines.iter().enumerate() {
        let row = Rect::new(area.x, top + at as u16, area.width, 1);
        let style = if at == 0 {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        Line::styled(text.as_str(), style)
            .centered()
            .render(row, buf);
    }
}

/// The two lists, side by side on a wide screen, stacked on a narrow one.
fn render_lists(app: &App, area: Rect, buf: &mut Buffer) {
    let [running, completed] = if area.width >= SIDE_BY_SIDE_MIN_WIDTH {
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
            .spacing(1)
            .areas(area)
    } else {
        // Stacked, the running list (usually short) takes only what it
        // needs, up to half: the rest goes to the history below it.
        let rows = app.running.indices.len().max(1);
        let header = usize::from(rows + 1 >= usize::from(COLUMN_HEADER_MIN_HEIGHT));
        let wanted = u16::try_from(1 + header + rows).unwrap_or(u16::MAX);
        let running = wanted.min(area.height / 2).max(2);
        Layout::vertical([Constraint::Length(running), Constraint::Fill(1)]).areas(area)
    };
    render_column(app, Column::Running, running, buf);
    render_column(app, Column::Completed, completed, buf);
}

fn render_column(app: &App, column: Column, area: Rect, buf: &mut Buffer) {
    let state = app.column(column);
    let focused = app.focus == column;
    let (name, total) = match column {
        Column::Running => ("Running", app.counts.running),
        Column::Completed => ("Completed", app.counts.finished),
    };
    let shown = state.indices.len();
    let title = if shown == total {
        format!(" {name} {total} ")
    } else {
        format!(" {name} {shown} of {total} ")
    };
    let (title_style, border_style) = if focused {
        (Style::new().add_modifier(Modifier::BOLD), Style::new())
    } else {
        (Style::new(), Style::new().add_modifier(Modifier::DIM))
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(border_style)
        .title(Span::styled(title, title_style));
    let inner = block.inner(area);
    block.render(area, buf);

    let layout = RowLayout::for_width(usize::from(inner.width));
    let mut rows_area = inner;
    if inner.height >= COLUMN_HEADER_MIN_HEIGHT {
        let header = Rect { height: 1, ..inner };
        Line::styled(layout.header(), Style::new().add_modifier(Modifier::DIM)).render(header, buf);
        rows_area.y += 1;
        rows_area.height -= 1;
    }
    let height = usize::from(rows_area.height);
    if focused {
        app.set_page_height(height);
    }
    if state.indices.is_empty() {
        let text = match (column, app.filter.is_empty()) {
            (_, false) => " no match",
            (Column::Running, true) => " nothing running",
            (Column::Completed, true) => " nothing finished yet",
        };
        Line::styled(text, Style::new().add_modifier(Modifier::DIM)).render(rows_area, buf);
        return;
    }
    // Only the visible window is touched, however long the list.
    let offset = scroll(state, height);
    let visible = state.indices.get(offset..).unwrap_or_default();
    for (line, &index) in visible.iter().take(height).enumerate() {
        let Some(row) = app.rows.get(index) else {
            continue;
        };
        let area = Rect::new(rows_area.x, rows_area.y + line as u16, rows_area.width, 1);
        let selected = focused && offset + line == state.selected;
        render_row(app, row, &layout, selected, area, buf);
    }
}

/// The first visible position: unchanged unless the selection would leave
/// the window, then just far enough to bring it back, as lists usually
/// scroll. Remembered for the next frame.
fn scroll(state: &ColumnState, height: usize) -> usize {
    let mut offset = state.offset.get();
    if height == 0 {
        return offset;
    }
    if state.selected < offset {
        offset = state.selected;
    } else if state.selected >= offset + height {
        offset = state.selected + 1 - height;
    }
    // A list that shrank (a refresh, a filter) shows as many rows as it can.
    offset = offset.min(state.indices.len().saturating_sub(height));
    state.offset.set(offset);
    offset
}

/// Which fields a row shows at a width, and how wide its title is.
struct RowLayout {
    title: usize,
    time: bool,
    tokens: bool,
}

impl RowLayout {
    /// One cell of margin at each side, one between fields.
    fn for_width(cells: usize) -> RowLayout {
        let inner = cells.saturating_sub(2);
        let title = |time: bool, tokens: bool| {
            let fixed = 1
                + STATUS_CELLS
                + if time { 1 + TIME_CELLS } else { 0 }
                + if tokens { 1 + TOKENS_CELLS } else { 0 };
            inner.saturating_sub(fixed)
        };
        for (time, tokens) in [(true, true), (true, false)] {
            if title(time, tokens) >= TITLE_MIN_CELLS {
                return RowLayout {
                    title: title(time, tokens),
                    time,
                    tokens,
                };
            }
        }
        RowLayout {
            title: title(false, false),
            time: false,
            tokens: false,
        }
    }

    /// The column names, aligned as [`render_row`] aligns the fields.
    fn header(&self) -> String {
        let mut line = format!(
            " {} {}",
            fit("Title", self.title),
            fit("Status", STATUS_CELLS)
        );
        if self.time {
            line.push(' ');
            line.push_str(&fit_right("Time", TIME_CELLS));
        }
        if self.tokens {
            line.push(' ');
            line.push_str(&fit_right("Tokens", TOKENS_CELLS));
        }
        line.push(' ');
        line
    }
}

fn render_row(
    app: &App,
    row: &RunRow,
    layout: &RowLayout,
    selected: bool,
    area: Rect,
    buf: &mut Buffer,
) {
    let time = row_time(app, row);
    let tokens = tokens(row.total_tokens);
    let title = fit(&row.title, layout.title);
    let mut spans = vec![
        Span::raw(" "),
        Span::raw(title),
        Span::raw(" "),
        Span::styled(fit(status_label(row), STATUS_CELLS), status_style(row)),
    ];
    if layout.time {
        spans.push(Span::raw(" "));
        spans.push(Span::raw(fit_right(&time, TIME_CELLS)));
    }
    if layout.tokens {
        spans.push(Span::raw(" "));
        spans.push(Span::raw(fit_right(&tokens, TOKENS_CELLS)));
    }
    spans.push(Span::raw(" "));
    let style = if selected {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        Style::new()
    };
    Line::from(spans).style(style).render(area, buf);
}

/// A running run's age (time since it started), or a finished run's
/// duration; `-` when the catalog does not say.
fn row_time(app: &App, row: &RunRow) -> String {
    let started = row.started_at.as_deref().and_then(crate::timestamp::parse);
    let seconds = if row.status == RunStatus::Running {
        started.map(|started| seconds_between(started, app.now))
    } else {
        row.duration_ms.map(|ms| ms / 1_000).or_else(|| {
            let ended = row.ended_at.as_deref().and_then(crate::timestamp::parse)?;
            Some(seconds_between(started?, ended))
        })
    };
    seconds.map(span).unwrap_or_else(|| "-".to_string())
}

/// Green for done, red for failed, yellow for a run waiting on a person.
fn status_style(row: &RunRow) -> Style {
    let style = Style::new();
    match row.status {
        RunStatus::Running if row.pending_approval.is_some() => {
            style.fg(Color::Yellow).add_modifier(Modifier::BOLD)
        }
        RunStatus::Running => style.fg(Color::Cyan),
        RunStatus::Completed => style.fg(Color::Green),
        RunStatus::Failed | RunStatus::TimedOut => style.fg(Color::Red),
        RunStatus::Interrupted => style.fg(Color::Magenta),
        RunStatus::Unknown => style,
    }
}

/// The transient message, then what the catalog could not read.
fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = Vec::new();
    if let Some(message) = &app.message {
        spans.push(Span::styled(
            message.as_str(),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(first) = app.problems.first() {
        if !spans.is_empty() {
            spans.push(Span::raw(" · "));
        }
        let count = app.problems.len();
        let text = match count {
            1 => format!("1 problem: {first}"),
            _ => format!("{count} problems: {first} (and {} more)", count - 1),
        };
        spans.push(Span::styled(text, Style::new().fg(Color::Red)));
    }
    let line = Line::from(spans);
    let cells = usize::from(area.width).saturating_sub(1);
    if line.width() > cells {
        let text: String = line
            .spans
            .iter()
            .map(|span| span.content.as_ref())
            .collect();
        let style = line
            .spans
            .first()
            .map(|span| span.style)
            .unwrap_or_default();
        Line::styled(truncate(&text, cells).into_owned(), style).render(area, buf);
    } else {
        line.render(area, buf);
    }
}

/// The keys, as many as fit; while the filter is typed, the filter itself.
fn render_hints(app: &App, area: Rect, buf: &mut Buffer) {
    let key = Style::new().add_modifier(Modifier::BOLD);
    let dim = Style::new().add_modifier(Modifier::DIM);
    if app.filter_input {
        let after = [
            Span::styled("  Enter", key),
            Span::styled(" keep  ", dim),
            Span::styled("Esc", key),
            Span::styled(" clear  ", dim),
            Span::styled("↑↓", key),
            Span::styled(" move", dim),
        ];
        // The end of a long filter is where the typing happens: keep it,
        // and the reversed cell that stands for the cursor, in view.
        let after_cells: usize = after.iter().map(|span| width(&span.content)).sum();
        let mut room = usize::from(area.width).saturating_sub(2 + after_cells);
        if room < width(&app.filter) && room < FILTER_MIN_CELLS {
            room = usize::from(area.width).saturating_sub(2);
        }
        let mut spans = vec![
            Span::styled("/", key),
            Span::raw(truncate_start(&app.filter, room)),
            Span::styled(" ", Style::new().add_modifier(Modifier::REVERSED)),
        ];
        spans.extend(after);
        Line::from(spans).render(area, buf);
        return;
    }
    // Most needed first: a narrow screen shows as many as fit, in order.
    const HINTS: &[(&str, &str)] = &[
        ("Enter", "attach"),
        ("↑↓", "move"),
        ("Tab", "column"),
        ("q", "quit"),
        ("/", "filter"),
        ("r", "refresh"),
        ("PgUp PgDn", "page"),
        ("g G", "first last"),
    ];
    // With nothing listed, moving and attaching mean nothing.
    const NOTHING_LISTED: &[(&str, &str)] = &[("/", "filter"), ("r", "refresh"), ("q", "quit")];
    const NO_RUNS: &[(&str, &str)] = &[("r", "refresh"), ("q", "quit")];
    let hints = if app.rows.is_empty() {
        NO_RUNS
    } else if app.running.indices.is_empty() && app.completed.indices.is_empty() {
        NOTHING_LISTED
    } else {
        HINTS
    };
    const GAP: &str = "  ";
    let mut spans = Vec::new();
    let mut used = 0;
    for (at, (keys, what)) in hints.iter().enumerate() {
        let gap = if at == 0 { "" } else { GAP };
        let cells = width(gap) + width(keys) + 1 + width(what);
        if used + cells > usize::from(area.width) {
            break;
        }
        used += cells;
        spans.push(Span::raw(gap));
        spans.push(Span::styled(*keys, key));
        spans.push(Span::styled(format!(" {what}"), dim));
    }
    Line::from(spans).render(area, buf);
}
