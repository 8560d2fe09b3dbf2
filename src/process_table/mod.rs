//! The process table: the one place that asks the operating system about
//! other processes. It answers whether a pid runs (a zombie does not), when
//! a pid started (so that a reused pid is not taken for the process we
//! recorded), whether a pid was started with a given argument, which pids of
//! a process group still run, which executable a pid runs and with what
//! environment, and which executable we are.
//!
//! Three backends, picked once per process:
//! - [`Backend::Procfs`] (Linux): reads `/proc`.
//! - [`Backend::Darwin`] (macOS): the kernel's process information, through
//!   `sysinfo`, refreshing only what a question needs.
//! - [`Backend::Signals`] (anywhere, and whenever [`PROCESS_TABLE_ENV`] is
//!   `none` or Linux has no `/proc` mounted): `kill(pid, 0)`. It cannot tell
//!   a zombie from a running process, has no start times and cannot list a
//!   group, so callers that need identity must bring their own (the keeper
//!   holds a lock; see `appserver::keeper_identity`).
//!
//! CI runs the fallback on Linux with `/proc` really hidden (the drill in
//! `tests/it/suite/hidden_proc.rs`): that is how the macOS-shaped code path,
//! one with no `/proc`, gets exercised on every change.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

#[cfg(target_os = "macos")]
mod darwin;
#[cfg(target_os = "linux")]
mod procfs;
mod signals;

/// `none` selects the [`Backend::Signals`] fallback; unset, empty or `auto`
/// selects the platform's own table. Read once: a process must not change its
/// mind about who is alive halfway through.
pub const PROCESS_TABLE_ENV: &str = "CODEX_MCP_WRAPPER_PROCESS_TABLE";

/// When a process started, in the unit of the backend that read it (clock
/// ticks since boot on Linux, seconds since the epoch on macOS). Only ever
/// compared with another reading of the same machine, for equality.
pub type ProcessStart = u64;

/// Where the answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `/proc` (Linux).
    #[cfg(target_os = "linux")]
    Procfs,
    /// The kernel's process information through `sysinfo` (macOS).
    #[cfg(target_os = "macos")]
    Darwin,
    /// `kill(pid, 0)` and `killpg(pgid, 0)`: no process table at all.
    Signals,
}

impl Backend {
    /// The backend this process uses, chosen on first use from
    /// [`PROCESS_TABLE_ENV`] and what the system offers.
    pub fn current() -> Backend {
        static BACKEND: OnceLock<Backend> = OnceLock::new();
        *BACKEND.get_or_init(|| {
            let setting = std::env::var(PROCESS_TABLE_ENV).ok();
            let backend = Backend::select(setting.as_deref());
            tracing::debug!(?backend, "process table");
            backend
        })
    }

    /// What [`PROCESS_TABLE_ENV`] = `setting` selects on this system.
    pub fn select(setting: Option<&str>) -> Backend {
        match setting.map(str::trim) {
            Some("none") => return Backend::Signals,
            None | Some("" | "auto") => {}
            Some(other) => tracing::warn!(
                "{PROCESS_TABLE_ENV}={other:?} is neither `auto` nor `none`; using `auto`"
            ),
        }
        Backend::native()
    }

    #[cfg(target_os = "linux")]
    fn native() -> Backend {
        // A container or sandbox may run without /proc: then it is the
        // fallback or nothing, and nothing means every pid looks dead.
        if procfs::ProcFs::system().is_mounted() {
            Backend::Procfs
        } else {
            Backend::Signals
        }
    }

    #[cfg(target_os = "macos")]
    fn native() -> Backend {
        Backend::Darwin
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn native() -> Backend {
        Backend::Signals
    }

    /// Whether a process with this pid runs (and is not a zombie). The
    /// fallback counts a zombie as running, and a pid it may not signal
    /// (EPERM) as running too: it exists.
    pub fn alive(self, pid: u32) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => procfs::ProcFs::system().alive(pid),
            #[cfg(target_os = "macos")]
            Backend::Darwin => darwin::alive(pid),
            Backend::Signals => signals::alive(pid),
        }
    }

    /// When `pid` started; `None` when it does not exist or the backend has
    /// no start times (the fallback).
    pub fn start_time(self, pid: u32) -> Option<ProcessStart> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => procfs::ProcFs::system().start_time(pid),
            #[cfg(target_os = "macos")]
            Backend::Darwin => darwin::start_time(pid),
            Backend::Signals => None,
        }
    }

    /// Whether `pid` was started with `arg` among its arguments; `None` when
    /// the backend cannot see command lines (the fallback).
    pub fn has_argument(self, pid: u32, arg: &str) -> Option<bool> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => Some(procfs::ProcFs::system().has_argument(pid, arg)),
            #[cfg(target_os = "macos")]
            Backend::Darwin => Some(darwin::has_argument(pid, arg)),
            Backend::Signals => None,
        }
    }

    /// The executable `pid` runs; `None` when it does not exist, may not be
    /// read, or the backend cannot see it (the fallback).
    pub fn executable(self, pid: u32) -> Option<PathBuf> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => procfs::ProcFs::system().executable(pid),
            #[cfg(target_os = "macos")]
            Backend::Darwin => darwin::executable(pid),
            Backend::Signals => None,
        }
    }

    /// The environment `pid` was started with, as `NAME=value` entries;
    /// `None` as for [`Backend::executable`].
    pub fn environment(self, pid: u32) -> Option<Vec<OsString>> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => procfs::ProcFs::system().environment(pid),
            #[cfg(target_os = "macos")]
            Backend::Darwin => darwin::environment(pid),
            Backend::Signals => None,
        }
    }

    /// The running (non-zombie) members of process group `pgid`. The
    /// fallback cannot list a group: while any member exists (zombies
    /// included) it answers `[pgid]`, the group's id standing in for members
    /// it cannot name; so only "empty or not" is meaningful everywhere.
    pub fn live_group_members(self, pgid: i32) -> Vec<i32> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => procfs::ProcFs::system().live_group_members(pgid),
            #[cfg(target_os = "macos")]
            Backend::Darwin => darwin::live_group_members(pgid),
            Backend::Signals => signals::live_group_members(pgid),
        }
    }
}

/// [`Backend::alive`] on the current backend.
pub fn alive(pid: u32) -> bool {
    Backend::current().alive(pid)
}

/// [`Backend::start_time`] on the current backend.
pub fn start_time(pid: u32) -> Option<ProcessStart> {
    Backend::current().start_time(pid)
}

/// [`Backend::has_argument`] on the current backend.
pub fn has_argument(pid: u32, arg: &str) -> Option<bool> {
    Backend::current().has_argument(pid, arg)
}

/// [`Backend::live_group_members`] on the current backend.
pub fn live_group_members(pgid: i32) -> Vec<i32> {
    Backend::current().live_group_members(pgid)
}

/// The executable we run from. Linux answers through procfs (`self/exe`); with
/// no `/proc` we fall back to how we were started: `argv[0]` made absolute
/// when it names a path, or looked up on `PATH` when it is a bare name.
pub fn current_exe() -> io::Result<PathBuf> {
    match std::env::current_exe() {
        Ok(path) => Ok(path),
        Err(error) => {
            let arg0 = std::env::args_os().next();
            exe_from_arg0(arg0).ok_or(error)
        }
    }
}

fn exe_from_arg0(arg0: Option<OsString>) -> Option<PathBuf> {
    let arg0 = PathBuf::from(arg0?);
    if arg0.as_os_str().is_empty() {
        None
    } else if arg0.components().count() > 1 {
        std::path::absolute(arg0).ok()
    } else {
        which::which(arg0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn none_selects_the_fallback_and_anything_else_the_native_table() {
        assert_eq!(Backend::select(Some("none")), Backend::Signals);
        assert_eq!(Backend::select(Some(" none\n")), Backend::Signals);
        for setting in [None, Some(""), Some("auto"), Some("bogus")] {
            assert_eq!(Backend::select(setting), Backend::native(), "{setting:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_with_proc_mounted_reads_proc() {
        assert_eq!(Backend::native(), Backend::Procfs);
    }

    #[cfg(target_os = "macos")]
    #[test]
    fn macos_asks_the_kernel() {
        assert_eq!(Backend::native(), Backend::Darwin);
    }

    #[test]
    fn arg0_names_the_executable_when_the_os_cannot() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            exe_from_arg0(Some("target/x".into())),
            Some(here.join("target/x"))
        );
        assert_eq!(
            exe_from_arg0(Some("/opt/bin/x".into())),
            Some(PathBuf::from("/opt/bin/x"))
        );
        let sh = exe_from_arg0(Some("sh".into())).expect("sh is on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert_eq!(exe_from_arg0(Some("".into())), None);
        assert_eq!(exe_from_arg0(None), None);
    }

    /// Every backend this platform has agrees on the basics about ourselves,
    /// a child that runs, and the same child once it is reaped.
    #[test]
    fn every_backend_sees_a_child_run_and_go() {
        let backends = [
            #[cfg(target_os = "linux")]
            Backend::Procfs,
            #[cfg(target_os = "macos")]
            Backend::Darwin,
            Backend::Signals,
        ];
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        // spawn() returns once the child's exec has begun, which is before
        // the kernel sets up its new argument pages: until then its command
        // line reads empty. Wait for the exec to finish.
        let exec_deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while backends[0].has_argument(pid, "30") == Some(false)
            && std::time::Instant::now() < exec_deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for backend in backends {
            assert!(backend.alive(me), "{backend:?}");
            assert!(backend.alive(pid), "{backend:?}");
            match backend {
                Backend::Signals => {
                    assert_eq!(backend.start_time(pid), None);
                    assert_eq!(backend.has_argument(pid, "30"), None);
                    assert_eq!(backend.live_group_members(pid as i32), vec![pid as i32]);
                }
                _ => {
                    assert!(backend.start_time(pid).is_some(), "{backend:?}");
                    assert!(backend.start_time(pid) >= backend.start_time(me));
                    assert_eq!(backend.has_argument(pid, "30"), Some(true));
                    assert_eq!(backend.has_argument(pid, "31"), Some(false));
                    assert_eq!(backend.live_group_members(pid as i32), vec![pid as i32]);
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        for backend in backends {
            assert!(!backend.alive(pid), "{backend:?}");
            assert_eq!(backend.start_time(pid), None, "{backend:?}");
            assert!(backend.live_group_members(pid as i32).is_empty());
        }
        // Pids the kernel could never hand out, and the ones that would mean
        // "our own group" or "every process" to kill(2).
        for backend in backends {
            assert!(!backend.alive(0) && !backend.alive(u32::MAX), "{backend:?}");
            for pgid in [0, -1] {
                assert!(backend.live_group_members(pgid).is_empty(), "{backend:?}");
            }
        }
    }
}
