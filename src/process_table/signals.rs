//! The fallback with no process table: `kill(pid, 0)` and `killpg(pgid, 0)`
//! ask the kernel whether a process or group exists without signalling it.

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

/// Whether `pid` exists. EPERM means it does, owned by someone else. A
/// zombie exists until its parent reaps it, so it counts here.
pub(super) fn alive(pid: u32) -> bool {
    // 0 and anything past i32::MAX (negative as a pid_t) would address a
    // group or every process, not the one asked about.
    match i32::try_from(pid) {
        Ok(pid) if pid > 0 => exists(kill(Pid::from_raw(pid), None)),
        _ => false,
    }
}

/// `[pgid]` while any member of the group exists; the members themselves
/// cannot be listed without a process table.
pub(super) fn live_group_members(pgid: i32) -> Vec<i32> {
    // 0 would be our own group, -1 every process we may signal.
    if pgid > 0 && exists(killpg(Pid::from_raw(pgid), None)) {
        vec![pgid]
    } else {
        Vec::new()
    }
}

fn exists(answer: nix::Result<()>) -> bool {
    matches!(answer, Ok(()) | Err(Errno::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_counts_as_alive_and_esrch_as_gone() {
        assert!(exists(Ok(())));
        assert!(exists(Err(Errno::EPERM)));
        assert!(!exists(Err(Errno::ESRCH)));
    }

    #[test]
    fn pids_that_would_address_many_processes_are_never_asked() {
        assert!(!alive(0));
        assert!(!alive(u32::MAX), "-1 as a pid_t is every process");
        assert!(live_group_members(0).is_empty());
        assert!(live_group_members(-1).is_empty());
        assert!(alive(std::process::id()));
    }
}
