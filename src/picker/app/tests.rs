use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use pretty_assertions::assert_eq;

use super::*;
use crate::picker::fixtures::{many, mixed, now, row};

fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::CONTROL)
}

fn typed(app: &mut App, text: &str) {
    for character in text.chars() {
        assert_eq!(app.handle_key(press(KeyCode::Char(character))), None);
    }
}

fn selected_id(app: &App) -> Option<&str> {
    app.selected().map(|row| row.run_id.as_str())
}

#[test]
fn rows_split_into_running_and_completed_in_catalog_order() {
    let app = App::new(mixed(), now());
    assert_eq!(app.running.indices, vec![0, 1, 2]);
    assert_eq!(app.completed.indices, vec![3, 4, 5, 6, 7]);
    assert_eq!(app.focus(), Column::Running);
    assert_eq!(selected_id(&app), Some("20261121-115500-000-a1b2c3"));
    assert_eq!(
        app.counts,
        Counts {
            running: 3,
            waiting: 1,
            finished: 5
        }
    );
}

#[test]
fn focus_starts_on_completed_when_nothing_runs() {
    let mut catalog = mixed();
    catalog.rows.retain(|row| row.status != RunStatus::Running);
    let app = App::new(catalog, now());
    assert_eq!(app.focus(), Column::Completed);
    assert_eq!(selected_id(&app), Some("20261121-080000-000-111111"));
}

#[test]
fn arrows_and_vi_keys_move_and_stop_at_the_ends() {
    let mut app = App::new(mixed(), now());
    assert_eq!(app.handle_key(press(KeyCode::Up)), None);
    assert_eq!(app.running.selected, 0);
    app.handle_key(press(KeyCode::Down));
    assert_eq!(app.running.selected, 1);
    app.handle_key(press(KeyCode::Char('j')));
    assert_eq!(app.running.selected, 2);
    app.handle_key(press(KeyCode::Char('j')));
    assert_eq!(app.running.selected, 2);
    app.handle_key(press(KeyCode::Char('k')));
    assert_eq!(app.running.selected, 1);
}

#[test]
fn left_right_tab_and_backtab_switch_columns() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Right));
    assert_eq!(app.focus(), Column::Completed);
    app.handle_key(press(KeyCode::Right));
    assert_eq!(app.focus(), Column::Completed);
    app.handle_key(press(KeyCode::Left));
    assert_eq!(app.focus(), Column::Running);
    app.handle_key(press(KeyCode::Tab));
    assert_eq!(app.focus(), Column::Completed);
    // Tab wraps around from the last column to the first.
    app.handle_key(press(KeyCode::Tab));
    assert_eq!(app.focus(), Column::Running);
    app.handle_key(press(KeyCode::BackTab));
    assert_eq!(app.focus(), Column::Completed);
}

#[test]
fn each_column_keeps_its_own_selection() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Down));
    app.handle_key(press(KeyCode::Tab));
    app.handle_key(press(KeyCode::End));
    assert_eq!(selected_id(&app), Some("20261121-040000-000-555555"));
    app.handle_key(press(KeyCode::Tab));
    assert_eq!(selected_id(&app), Some("20261121-115830-000-0a0b0c"));
}

#[test]
fn page_keys_move_by_the_page_height_and_clamp() {
    let mut app = App::new(many(100), now());
    app.handle_key(press(KeyCode::Tab));
    assert_eq!(app.completed.indices.len(), 90);
    app.set_page_height(20);
    app.handle_key(press(KeyCode::PageDown));
    assert_eq!(app.completed.selected, 20);
    app.handle_key(press(KeyCode::PageDown));
    app.handle_key(press(KeyCode::PageDown));
    app.handle_key(press(KeyCode::PageDown));
    assert_eq!(app.completed.selected, 80);
    // PageDown clamps at the last row.
    app.handle_key(press(KeyCode::PageDown));
    assert_eq!(app.completed.selected, 89);
    app.handle_key(press(KeyCode::PageUp));
    assert_eq!(app.completed.selected, 69);
    app.set_page_height(100);
    app.handle_key(press(KeyCode::PageUp));
    assert_eq!(app.completed.selected, 0);
    // A zero height (a collapsed terminal) still moves by one.
    app.set_page_height(0);
    app.handle_key(press(KeyCode::PageDown));
    assert_eq!(app.completed.selected, 1);
}

#[test]
fn home_end_and_g_go_to_first_and_last() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Tab));
    app.handle_key(press(KeyCode::End));
    assert_eq!(app.completed.selected, 4);
    app.handle_key(press(KeyCode::Home));
    assert_eq!(app.completed.selected, 0);
    app.handle_key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT));
    assert_eq!(app.completed.selected, 4);
    app.handle_key(press(KeyCode::Char('g')));
    assert_eq!(app.completed.selected, 0);
}

#[test]
fn enter_attaches_the_selected_run() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Down));
    assert_eq!(
        app.handle_key(press(KeyCode::Enter)),
        Some(Action::Attach(
            RunId::parse("20261121-115830-000-0a0b0c").unwrap()
        ))
    );
}

#[test]
fn enter_on_an_empty_column_does_nothing() {
    let mut catalog = mixed();
    catalog.rows.retain(|row| row.status != RunStatus::Running);
    let mut app = App::new(catalog, now());
    app.handle_key(press(KeyCode::Left));
    assert_eq!(app.focus(), Column::Running);
    assert_eq!(app.selected(), None);
    assert_eq!(app.handle_key(press(KeyCode::Enter)), None);
    // Moving in an empty column is harmless too.
    app.handle_key(press(KeyCode::Down));
    app.handle_key(press(KeyCode::End));
    app.handle_key(press(KeyCode::PageDown));
    assert_eq!(app.selected(), None);

    let mut empty = App::new(Catalog::default(), now());
    assert_eq!(empty.handle_key(press(KeyCode::Enter)), None);
}

#[test]
fn r_refreshes_and_q_esc_ctrl_c_quit() {
    let mut app = App::new(mixed(), now());
    assert_eq!(
        app.handle_key(press(KeyCode::Char('r'))),
        Some(Action::Refresh)
    );
    assert_eq!(
        app.handle_key(press(KeyCode::Char('q'))),
        Some(Action::Quit)
    );
    assert_eq!(app.handle_key(press(KeyCode::Esc)), Some(Action::Quit));
    assert_eq!(app.handle_key(ctrl(KeyCode::Char('c'))), Some(Action::Quit));
}

#[test]
fn only_presses_count() {
    let mut app = App::new(mixed(), now());
    let release = KeyEvent::new_with_kind_and_state(
        KeyCode::Down,
        KeyModifiers::NONE,
        KeyEventKind::Release,
        KeyEventState::NONE,
    );
    assert_eq!(app.handle_key(release), None);
    assert_eq!(app.running.selected, 0);
    let quit_release = KeyEvent::new_with_kind(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
        KeyEventKind::Release,
    );
    assert_eq!(app.handle_key(quit_release), None);
}

#[test]
fn slash_opens_the_filter_and_typed_keys_edit_it() {
    let mut app = App::new(mixed(), now());
    assert_eq!(app.handle_key(press(KeyCode::Char('/'))), None);
    assert!(app.is_editing_filter());
    // Keys that are commands elsewhere are text here.
    typed(&mut app, "qrjkg/");
    assert_eq!(app.filter(), "qrjkg/");
    for _ in 0..6 {
        app.handle_key(press(KeyCode::Backspace));
    }
    assert_eq!(app.filter(), "");
    app.handle_key(press(KeyCode::Backspace));
    assert_eq!(app.filter(), "");
    typed(&mut app, "PARSER");
    // Enter closes the input and keeps the filter.
    assert_eq!(app.handle_key(press(KeyCode::Enter)), None);
    assert!(!app.is_editing_filter());
    assert_eq!(app.filter(), "PARSER");
    // Esc in the input closes it and clears the filter.
    app.handle_key(press(KeyCode::Char('/')));
    assert_eq!(app.handle_key(press(KeyCode::Esc)), None);
    assert!(!app.is_editing_filter());
    assert_eq!(app.filter(), "");
}

#[test]
fn ctrl_c_quits_even_while_typing_a_filter() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Char('/')));
    assert_eq!(app.handle_key(ctrl(KeyCode::Char('c'))), Some(Action::Quit));
    // Other control keys are not text.
    app.handle_key(ctrl(KeyCode::Char('u')));
    assert_eq!(app.filter(), "");
}

#[test]
fn the_filter_matches_title_id_cwd_thread_and_status_ignoring_case() {
    let ids = |app: &App| -> Vec<String> {
        app.running
            .indices
            .iter()
            .chain(&app.completed.indices)
            .map(|&index| app.rows[index].run_id.to_string())
            .collect()
    };
    let filtered = |filter: &str| {
        let mut app = App::new(mixed(), now());
        app.handle_key(press(KeyCode::Char('/')));
        typed(&mut app, filter);
        ids(&app)
    };
    assert_eq!(
        filtered("CATALOG reader"),
        vec!["20261121-080000-000-111111"]
    );
    assert_eq!(filtered("0a0b0c"), vec!["20261121-115830-000-0a0b0c"]);
    assert_eq!(filtered("projects/WEB"), vec!["20261121-115830-000-0a0b0c"]);
    assert_eq!(filtered("019a7b00"), vec!["20261121-091200-000-d4e5f6"]);
    assert_eq!(filtered("waiting"), vec!["20261121-115500-000-a1b2c3"]);
    assert_eq!(filtered("timed_out"), vec!["20261121-050000-000-444444"]);
    assert_eq!(filtered("timed out"), vec!["20261121-050000-000-444444"]);
    assert_eq!(filtered("登录"), vec!["20261121-115830-000-0a0b0c"]);
    assert_eq!(
        filtered("failed"),
        vec!["20261121-070000-000-222222", "20261121-040000-000-555555"]
    );
    assert!(filtered("no such run").is_empty());
}

#[test]
fn the_filter_keeps_the_selected_run_when_it_still_matches() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Down));
    app.handle_key(press(KeyCode::Down));
    assert_eq!(selected_id(&app), Some("20261121-091200-000-d4e5f6"));
    app.handle_key(press(KeyCode::Char('/')));
    typed(&mut app, "migration");
    assert_eq!(app.running.selected, 0);
    assert_eq!(selected_id(&app), Some("20261121-091200-000-d4e5f6"));
    app.handle_key(press(KeyCode::Esc));
    assert_eq!(selected_id(&app), Some("20261121-091200-000-d4e5f6"));
    // A filter that drops the selected run puts the cursor on the first match.
    app.handle_key(press(KeyCode::Char('/')));
    typed(&mut app, "config");
    assert_eq!(selected_id(&app), Some("20261121-115500-000-a1b2c3"));
}

#[test]
fn arrows_move_while_the_filter_is_typed() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Char('/')));
    typed(&mut app, "projects");
    app.handle_key(press(KeyCode::Down));
    assert_eq!(app.running.selected, 1);
    assert_eq!(app.filter(), "projects");
}

#[test]
fn set_catalog_keeps_the_selection_on_the_same_run() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Down));
    assert_eq!(selected_id(&app), Some("20261121-115830-000-0a0b0c"));
    // A new run starts: it comes first, and the selected run moves down.
    let mut catalog = mixed();
    let mut newest = row(
        "20261121-115950-000-abcdef",
        "A new run",
        RunStatus::Running,
    );
    newest.started_at = Some("2026-11-21T11:59:50.000Z".to_string());
    catalog.rows.insert(0, newest);
    app.set_catalog(catalog, now());
    assert_eq!(app.running.selected, 2);
    assert_eq!(selected_id(&app), Some("20261121-115830-000-0a0b0c"));
}

#[test]
fn set_catalog_follows_a_run_that_finished() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Tab));
    app.handle_key(press(KeyCode::Down));
    app.handle_key(press(KeyCode::Tab));
    app.handle_key(press(KeyCode::Down));
    assert_eq!(selected_id(&app), Some("20261121-115830-000-0a0b0c"));
    let mut catalog = mixed();
    catalog.rows[1].status = RunStatus::Completed;
    app.set_catalog(catalog, now());
    assert_eq!(app.focus(), Column::Completed);
    assert_eq!(selected_id(&app), Some("20261121-115830-000-0a0b0c"));
}

#[test]
fn set_catalog_clamps_when_the_selected_run_is_gone() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Tab));
    app.handle_key(press(KeyCode::End));
    assert_eq!(selected_id(&app), Some("20261121-040000-000-555555"));
    let mut catalog = mixed();
    catalog.rows.truncate(6);
    app.set_catalog(catalog, now());
    assert_eq!(app.focus(), Column::Completed);
    assert_eq!(selected_id(&app), Some("20261121-060000-000-333333"));

    // Everything gone: no selection, no panic, and keys still work.
    app.set_catalog(Catalog::default(), now());
    assert_eq!(app.selected(), None);
    app.handle_key(press(KeyCode::Up));
    assert_eq!(app.selected(), None);
}

#[test]
fn set_catalog_takes_the_new_problems_and_time() {
    let mut app = App::new(mixed(), now());
    let catalog = Catalog {
        rows: Vec::new(),
        problems: vec!["index.jsonl line 4: not JSON".to_string()],
    };
    let later = now() + time::Duration::minutes(1);
    app.set_catalog(catalog, later);
    assert_eq!(app.problems, vec!["index.jsonl line 4: not JSON"]);
    assert_eq!(app.now, later);
}

#[test]
fn a_message_lasts_until_the_next_key() {
    let mut app = App::new(mixed(), now());
    app.set_message("run 20261121-040000-000-555555 has no thread yet: nothing to attach");
    assert!(app.message().is_some());
    app.handle_key(press(KeyCode::Down));
    assert_eq!(app.message(), None);
}

#[test]
fn a_filter_that_empties_the_focused_list_moves_to_the_other() {
    let mut app = App::new(mixed(), now());
    app.handle_key(press(KeyCode::Char('/')));
    typed(&mut app, "catalog");
    assert_eq!(app.focus(), Column::Completed);
    assert_eq!(selected_id(&app), Some("20261121-080000-000-111111"));
    // Clearing it stays where the person now is.
    app.handle_key(press(KeyCode::Esc));
    assert_eq!(app.focus(), Column::Completed);
    assert_eq!(selected_id(&app), Some("20261121-080000-000-111111"));
}
