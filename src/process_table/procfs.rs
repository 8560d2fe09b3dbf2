//! The Linux backend: `/proc/PID/stat` and `/proc/PID/cmdline`, under a root
//! that tests may point at a fake tree.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::ProcessStart;

/// A `/proc` tree.
pub(super) struct ProcFs {
    root: PathBuf,
}

/// What we read from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    pgrp: i32,
    /// Field 22: clock ticks after boot.
    start: ProcessStart,
}

impl Stat {
    /// Zombies (Z) and the dead (X) hold no resources and run no code.
    fn running(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

impl ProcFs {
    pub(super) fn system() -> ProcFs {
        ProcFs::at("/proc")
    }

    pub(super) fn at(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    /// Mounted and ours to read: our own entry is there. A bare mount point
    /// or a tmpfs laid over `/proc` has no `self/stat`.
    pub(super) fn is_mounted(&self) -> bool {
        self.root.join("self/stat").is_file()
    }

    pub(super) fn alive(&self, pid: u32) -> bool {
        self.stat(pid).is_some_and(|stat| stat.running())
    }

    pub(super) fn start_time(&self, pid: u32) -> Option<ProcessStart> {
        self.stat(pid).map(|stat| stat.start)
    }

    pub(super) fn has_argument(&self, pid: u32, arg: &str) -> bool {
        std::fs::read(self.entry(pid).join("cmdline")).is_ok_and(|cmdline| {
            cmdline
                .split(|byte| *byte == 0)
                .any(|each| each == arg.as_bytes())
        })
    }

    pub(super) fn executable(&self, pid: u32) -> Option<PathBuf> {
        std::fs::read_link(self.entry(pid).join("exe")).ok()
    }

    pub(super) fn environment(&self, pid: u32) -> Option<Vec<OsString>> {
        let environ = std::fs::read(self.entry(pid).join("environ")).ok()?;
        Some(
            environ
                .split(|byte| *byte == 0)
                .filter(|entry| !entry.is_empty())
                .map(|entry| OsString::from_vec(entry.to_vec()))
                .collect(),
        )
    }

    pub(super) fn live_group_members(&self, pgid: i32) -> Vec<i32> {
        if pgid <= 0 {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut members: Vec<i32> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                self.stat(*pid)
                    .is_some_and(|stat| stat.pgrp == pgid && stat.running())
            })
            .filter_map(|pid| i32::try_from(pid).ok())
            .collect();
        members.sort_unstable();
        members
    }

    fn entry(&self, pid: u32) -> PathBuf {
        self.root.join(pid.to_string())
    }

    fn stat(&self, pid: u32) -> Option<Stat> {
        if pid == 0 {
            return None;
        }
        parse_stat(&std::fs::read_to_string(self.entry(pid).join("stat")).ok()?)
    }
}

/// Fields 3 (state), 5 (pgrp) and 22 (starttime) of `/proc/PID/stat`. The
/// command name in field 2 may hold spaces and parentheses, so parse from the
/// last `)`.
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let field = |number: usize| fields.get(number - 3).copied();
    Some(Stat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        start: field(22)?.parse().ok()?,
    })
}

/// For tests that build a fake tree: the `stat` line of a process.
#[cfg(test)]
fn stat_line(pid: u32, comm: &str, state: char, pgrp: i32, start: u64) -> String {
    format!(
        "{pid} ({comm}) {state} 1 {pgrp} {pgrp} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1 2 3"
    )
}

#[cfg(test)]
fn fake_process(root: &std::path::Path, pid: u32, stat: &str, args: &[&str]) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stat"), stat).unwrap();
    let mut cmdline = args.join("\0");
    cmdline.push('\0');
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_parentheses_and_spaces() {
        let line = stat_line(42, "a) (b c", 'S', 7, 123456);
        assert_eq!(
            parse_stat(&line),
            Some(Stat {
                state: 'S',
                pgrp: 7,
                start: 123456
            })
        );
        assert_eq!(parse_stat("42 (x) S 1 7"), None, "cut short");
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn a_fake_tree_answers_every_question() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let table = ProcFs::at(root);
        assert!(!table.is_mounted(), "an empty dir is not /proc");
        fake_process(
            root,
            10,
            &stat_line(10, "keeper", 'S', 10, 500),
            &["sidecar", "__app-server-keeper"],
        );
        fake_process(
            root,
            11,
            &stat_line(11, "node", 'R', 10, 501),
            &["node", "codex"],
        );
        fake_process(root, 12, &stat_line(12, "codex", 'Z', 10, 502), &["codex"]);
        fake_process(root, 13, &stat_line(13, "other", 'S', 13, 503), &["other"]);
        std::fs::create_dir(root.join("self")).unwrap();
        std::fs::write(root.join("self/stat"), stat_line(13, "other", 'S', 13, 503)).unwrap();
        assert!(table.is_mounted());

        assert!(table.alive(10) && table.alive(11));
        assert!(!table.alive(12), "a zombie does not run");
        assert!(!table.alive(99) && !table.alive(0));
        assert_eq!(table.start_time(11), Some(501));
        assert_eq!(
            table.start_time(12),
            Some(502),
            "a zombie still has its start"
        );
        assert_eq!(table.start_time(99), None);
        assert!(table.has_argument(10, "__app-server-keeper"));
        assert!(!table.has_argument(11, "__app-server-keeper"));
        assert!(!table.has_argument(99, "__app-server-keeper"));
        assert_eq!(table.live_group_members(10), vec![10, 11]);
        assert_eq!(table.live_group_members(13), vec![13]);
        assert!(table.live_group_members(0).is_empty());
        assert!(
            ProcFs::at(root.join("missing"))
                .live_group_members(10)
                .is_empty()
        );
    }

    #[test]
    fn a_child_shows_its_executable_and_environment() {
        let table = ProcFs::system();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("PROCESS_TABLE_PROBE", "seen")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Just after the fork the child may still be us: wait for its exec.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !table.has_argument(pid, "30") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let exe = table.executable(pid);
        let environ = table.environment(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(exe.unwrap().ends_with("sleep"));
        assert!(
            environ
                .unwrap()
                .iter()
                .any(|var| var == "PROCESS_TABLE_PROBE=seen")
        );
        assert_eq!(table.executable(0), None);
        assert_eq!(table.environment(0), None);
    }

    #[test]
    fn the_real_proc_sees_a_zombie_as_gone() {
        let table = ProcFs::system();
        assert!(table.is_mounted());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(table.alive(pid));
        child.kill().unwrap();
        // Not reaped yet: a zombie until `wait`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while table.stat(pid).is_some_and(|stat| stat.state != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!table.alive(pid));
        assert!(
            super::super::signals::alive(pid),
            "kill(pid, 0) still sees it"
        );
        child.wait().unwrap();
        assert!(!super::super::signals::alive(pid));
    }
}
