//! The picker's screens as text snapshots at two fixed sizes: 120x40 (the
//! lists side by side) and 60x20 (stacked). Each `.snap` in `snapshots/` was
//! read by a person: a change to one is a change to what users see.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Position;
use ratatui::style::{Color, Modifier};

use super::fixtures::{many, mixed, now};
use super::{App, Column};
use crate::store::catalog::Catalog;

const WIDE: (u16, u16) = (120, 40);
const NARROW: (u16, u16) = (60, 20);

fn draw(app: &App, (width, height): (u16, u16)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .unwrap();
    terminal
}

fn press(app: &mut App, code: KeyCode) {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn type_filter(app: &mut App, text: &str) {
    press(app, KeyCode::Char('/'));
    for character in text.chars() {
        press(app, KeyCode::Char(character));
    }
}

fn line(buffer: &Buffer, y: u16) -> String {
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol())
        .collect()
}

fn find(buffer: &Buffer, text: &str) -> Option<Position> {
    (0..buffer.area.height).find_map(|y| {
        let line = line(buffer, y);
        let byte = line.find(text)?;
        let x = line[..byte].chars().count() as u16;
        Some(Position::new(x, y))
    })
}

/// The mixed catalog with the waiting run selected, and a problem to report.
fn mixed_app() -> App {
    let mut catalog = mixed();
    catalog.problems.push(
        "/home/ada/projects/old/.codex/codex-mcp/runs/index.jsonl: line 7 is not JSON".into(),
    );
    App::new(catalog, now()).with_project("/home/ada/projects/api")
}

#[test]
fn mixed_runs_wide() {
    let app = mixed_app();
    insta::assert_snapshot!(draw(&app, WIDE).backend());
}

#[test]
fn a_remote_run_shows_its_endpoint_with_its_directory() {
    let mut catalog = mixed();
    for row in &mut catalog.rows {
        row.endpoint = Some("buildbox".into());
        row.cwd = "/srv/app".into();
    }
    let app = App::new(catalog, now());
    let terminal = draw(&app, WIDE);
    assert!(
        find(terminal.backend().buffer(), "buildbox:/srv/app").is_some(),
        "{}",
        terminal.backend()
    );
}

#[test]
fn mixed_runs_narrow() {
    let app = mixed_app();
    insta::assert_snapshot!(draw(&app, NARROW).backend());
}

#[test]
fn failed_run_selected_wide() {
    let mut app = App::new(mixed(), now());
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Down);
    app.set_message("run 20261121-040000-000-555555 has no thread yet: nothing to attach");
    insta::assert_snapshot!(draw(&app, WIDE).backend());
}

#[test]
fn empty_wide() {
    let app = App::new(Catalog::default(), now());
    insta::assert_snapshot!(draw(&app, WIDE).backend());
}

#[test]
fn empty_narrow() {
    let app = App::new(Catalog::default(), now());
    insta::assert_snapshot!(draw(&app, NARROW).backend());
}

#[test]
fn filter_typed_wide() {
    let mut app = mixed_app();
    type_filter(&mut app, "Test");
    insta::assert_snapshot!(draw(&app, WIDE).backend());
}

#[test]
fn filter_applied_narrow() {
    let mut app = mixed_app();
    type_filter(&mut app, "Test");
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(draw(&app, NARROW).backend());
}

#[test]
fn filter_matches_nothing_wide() {
    let mut app = mixed_app();
    type_filter(&mut app, "no such run");
    insta::assert_snapshot!(draw(&app, WIDE).backend());
}

#[test]
fn filter_matches_nothing_narrow() {
    let mut app = mixed_app();
    type_filter(&mut app, "no such run");
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(draw(&app, NARROW).backend());
}

#[test]
fn the_selection_is_reversed_and_statuses_are_coloured() {
    let app = mixed_app();
    let terminal = draw(&app, WIDE);
    let buffer = terminal.backend().buffer();
    let title = find(buffer, "Rename the config").unwrap();
    assert!(buffer[title].modifier.contains(Modifier::REVERSED));
    let waiting = find(buffer, "waiting  ").unwrap();
    assert_eq!(buffer[waiting].fg, Color::Yellow);
    let failed = find(buffer, "failed").unwrap();
    assert_eq!(buffer[failed].fg, Color::Red);
    let approval = find(buffer, "command: cargo test").unwrap();
    assert_eq!(buffer[approval].fg, Color::Yellow);
    // Nothing draws a background colour of its own.
    assert!(buffer.content().iter().all(|cell| cell.bg == Color::Reset));
}

#[test]
fn drawing_remembers_the_page_height_and_scrolls_to_the_selection() {
    let mut app = App::new(many(1_000), now());
    press(&mut app, KeyCode::Tab);
    let terminal = draw(&app, NARROW);
    let page = app.page_height.get();
    assert!(page > 0 && page < 20, "{page}");
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.completed.selected, page);
    press(&mut app, KeyCode::Down);
    drop(terminal);
    let terminal = draw(&app, NARROW);
    let selected = app.selected().unwrap().title.clone();
    let at = find(terminal.backend().buffer(), &selected).unwrap();
    assert!(
        terminal.backend().buffer()[at]
            .modifier
            .contains(Modifier::REVERSED)
    );
}

#[test]
fn a_hundred_thousand_runs_draw_their_first_rows() {
    let app = App::new(many(100_000), now());
    assert_eq!(app.focus(), Column::Running);
    let terminal = draw(&app, WIDE);
    let buffer = terminal.backend().buffer();
    // Every tenth run is running: the first rows of each list, newest first.
    assert!(find(buffer, "run number 100000 ").is_some());
    assert!(find(buffer, "run number 99990 ").is_some());
    assert!(find(buffer, "run number 99999 ").is_some());
    assert!(find(buffer, "run number 99998 ").is_some());
    assert!(find(buffer, "10000 running · 90000 finished").is_some());
}

#[test]
fn a_long_filter_keeps_its_end_and_the_cursor_in_view() {
    let mut app = mixed_app();
    type_filter(
        &mut app,
        "a filter far longer than the narrow screen is wide, ending here",
    );
    let terminal = draw(&app, NARROW);
    let buffer = terminal.backend().buffer();
    let hints = line(buffer, NARROW.1 - 1);
    assert!(hints.starts_with("/…"), "{hints}");
    assert!(hints.contains("ending here "), "{hints}");
    let end = hints.find("ending here").unwrap() + "ending here".len();
    let cursor = Position::new(hints[..end].chars().count() as u16, NARROW.1 - 1);
    assert_eq!(buffer[cursor].symbol(), " ");
    assert!(buffer[cursor].modifier.contains(Modifier::REVERSED));
}
