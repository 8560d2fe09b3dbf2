//! The detail pane: the selected run in full, what a person reads before
//! attaching. A pending approval comes first after the status, in yellow: it
//! is why a run is stuck.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use super::{row_time, status_style};
use crate::picker::app::{App, status_label};
use crate::picker::format::{fit, tokens, truncate, truncate_start, wrap};

/// How the detail pane's field names line up: the longest, `progress`, and
/// two cells of gap.
const LABEL_CELLS: usize = 10;

/// The selected run in full: what a person reads before attaching.
pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(row) = app.selected() else {
        let block = Block::new()
            .borders(Borders::TOP)
            .title(" No run selected ");
        block.render(area, buf);
        return;
    };
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        format!(" Run {} ", row.run_id),
        Style::new().add_modifier(Modifier::BOLD),
    ));
    let inner = block.inner(area);
    block.render(area, buf);
    // One cell of margin at each side, as in the lists.
    let cells = usize::from(inner.width).saturating_sub(2);
    let text_cells = cells.saturating_sub(LABEL_CELLS);
    let label = |name: &str| {
        Span::styled(
            fit(name, LABEL_CELLS),
            Style::new().add_modifier(Modifier::DIM),
        )
    };

    let mut head: Vec<Line> = vec![Line::styled(
        truncate(&row.title, cells).into_owned(),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    let mut status = vec![
        label("status"),
        Span::styled(status_label(row), status_style(row)),
        Span::raw(format!(" · {}", row_time(app, row))),
    ];
    if row.total_tokens.is_some() {
        status.push(Span::raw(format!(" · {} tokens", tokens(row.total_tokens))));
    }
    head.push(Line::from(status));
    if let Some(pending) = &row.pending_approval {
        let text = format!("{}: {}", pending.kind, pending.summary);
        head.push(Line::from(vec![
            Span::styled(
                fit("approve?", LABEL_CELLS),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                truncate(&text, text_cells).into_owned(),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ),
        ]));
    }
    if let Some(progress) = &row.progress {
        head.push(Line::from(vec![
            label("progress"),
            Span::raw(truncate(progress, text_cells).into_owned()),
        ]));
    }
    if let Some(error) = &row.error {
        head.push(Line::from(vec![
            label("error"),
            Span::styled(
                truncate(error, text_cells).into_owned(),
                Style::new().fg(Color::Red),
            ),
        ]));
    }
    let thread = row.thread_id.as_deref().unwrap_or("none yet");
    // A remote run's directory is on its endpoint's host: `box:/srv/app`.
    let cwd = match &row.endpoint {
        Some(endpoint) => format!("{endpoint}:{}", row.cwd.to_string_lossy()),
        None => row.cwd.to_string_lossy().into_owned(),
    };
    let tail = [
        Line::from(vec![
            label("thread"),
            Span::raw(truncate(thread, text_cells).into_owned()),
        ]),
        Line::from(vec![
            label("cwd"),
            Span::raw(truncate_start(&cwd, text_cells).into_owned()),
        ]),
    ];
    // The last message gets whatever the fixed fields leave.
    let room = usize::from(inner.height).saturating_sub(head.len() + tail.len());
    let mut message: Vec<Line> = Vec::new();
    if let Some(text) = &row.last_message {
        for (at, text) in wrap(text, text_cells, room).into_iter().enumerate() {
            let name = if at == 0 { "message" } else { "" };
            message.push(Line::from(vec![label(name), Span::raw(text)]));
        }
    }
    let lines = head.into_iter().chain(message).chain(tail);
    for (at, line) in lines.take(usize::from(inner.height)).enumerate() {
        let row_area = Rect::new(
            inner.x + 1,
            inner.y + at as u16,
            inner.width.saturating_sub(2),
            1,
        );
        line.render(row_area, buf);
    }
}
