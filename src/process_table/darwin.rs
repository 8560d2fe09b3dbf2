//! The macOS backend: the kernel's process information (`proc_pidinfo` and
//! friends) through `sysinfo`, refreshing only the pids and the fields a
//! question needs. Process groups come from `getpgid`, which `sysinfo` does
//! not report.

use std::ffi::OsString;
use std::path::PathBuf;

use nix::unistd::{Pid as NixPid, getpgid};
use sysinfo::{
    Pid, Process, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind,
};

use super::ProcessStart;

/// A fresh look at `pid` alone, with `kind` on top of the basics (status and
/// start time come with every refresh).
fn look_at<T>(pid: u32, kind: ProcessRefreshKind, answer: impl FnOnce(&Process) -> T) -> Option<T> {
    if pid == 0 {
        return None;
    }
    let pid = Pid::from_u32(pid);
    let mut system = System::new();
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
    system.process(pid).map(answer)
}

fn running(process: &Process) -> bool {
    !matches!(
        process.status(),
        ProcessStatus::Zombie | ProcessStatus::Dead
    )
}

pub(super) fn alive(pid: u32) -> bool {
    look_at(pid, ProcessRefreshKind::nothing(), running).unwrap_or(false)
}

pub(super) fn start_time(pid: u32) -> Option<ProcessStart> {
    look_at(pid, ProcessRefreshKind::nothing(), Process::start_time)
}

pub(super) fn has_argument(pid: u32, arg: &str) -> bool {
    let kind = ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always);
    look_at(pid, kind, |process| {
        process.cmd().iter().any(|each| each == arg)
    })
    .unwrap_or(false)
}

pub(super) fn executable(pid: u32) -> Option<PathBuf> {
    let kind = ProcessRefreshKind::nothing().with_exe(UpdateKind::Always);
    look_at(pid, kind, |process| process.exe().map(PathBuf::from)).flatten()
}

pub(super) fn environment(pid: u32) -> Option<Vec<OsString>> {
    let kind = ProcessRefreshKind::nothing().with_environ(UpdateKind::Always);
    look_at(pid, kind, |process| process.environ().to_vec())
}

pub(super) fn live_group_members(pgid: i32) -> Vec<i32> {
    if pgid <= 0 {
        return Vec::new();
    }
    let mut system = System::new();
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    let mut members: Vec<i32> = system
        .processes()
        .values()
        .filter(|process| running(process))
        .filter_map(|process| i32::try_from(process.pid().as_u32()).ok())
        .filter(|pid| {
            getpgid(Some(NixPid::from_raw(*pid))).is_ok_and(|group| group.as_raw() == pgid)
        })
        .collect();
    members.sort_unstable();
    members
}
