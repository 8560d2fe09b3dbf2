//! What a benchmark reports (figures, and targets met or missed), printed as
//! it finishes and gathered into `docs/benchmarks.md` with the machine it
//! ran on.

use std::fmt::Write as _;
use std::process::Command;

/// One benchmark's outcome.
pub struct Section {
    /// `B1` … `B6`.
    pub id: &'static str,
    pub title: &'static str,
    /// How it was measured, in a sentence or two.
    pub method: String,
    /// Measured figures, as rows of (what, value).
    pub figures: Vec<(String, String)>,
    pub checks: Vec<Check>,
    /// Always shown: what the numbers mean, caveats.
    pub notes: Vec<String>,
    /// Shown when a check is missed: why.
    pub why_missed: Vec<String>,
}

impl Section {
    pub fn new(id: &'static str, title: &'static str, method: impl Into<String>) -> Section {
        Section {
            id,
            title,
            method: method.into(),
            figures: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            why_missed: Vec::new(),
        }
    }

    pub fn figure(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.figures.push((what.into(), value.into()));
    }

    pub fn missed(&self) -> bool {
        self.checks.iter().any(|check| !check.met())
    }

    /// The section as the bench prints it.
    pub fn print(&self) {
        println!("\n{} {}", self.id, self.title);
        for (what, value) in &self.figures {
            println!("  {what}: {value}");
        }
        for check in &self.checks {
            println!("  target {}: {}", check.describe_target(), check.verdict());
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
        if self.missed() {
            for why in &self.why_missed {
                println!("  why: {why}");
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// A figure against its target.
pub struct Check {
    pub figure: String,
    pub measured: f64,
    pub unit: &'static str,
    pub bound: Bound,
}

impl Check {
    fn new(figure: impl Into<String>, measured: f64, unit: &'static str, bound: Bound) -> Check {
        Check {
            figure: figure.into(),
            measured,
            unit,
            bound,
        }
    }

    pub fn at_most(
        figure: impl Into<String>,
        measured: f64,
        limit: f64,
        unit: &'static str,
    ) -> Check {
        Check::new(figure, measured, unit, Bound::AtMost(limit))
    }

    pub fn at_least(
        figure: impl Into<String>,
        measured: f64,
        limit: f64,
        unit: &'static str,
    ) -> Check {
        Check::new(figure, measured, unit, Bound::AtLeast(limit))
    }

    pub fn met(&self) -> bool {
        match self.bound {
            Bound::AtMost(limit) => self.measured <= limit,
            Bound::AtLeast(limit) => self.measured >= limit,
        }
    }

    pub fn describe_target(&self) -> String {
        match self.bound {
            Bound::AtMost(limit) => format!("{} ≤ {}", self.figure, number(limit, self.unit)),
            Bound::AtLeast(limit) => format!("{} ≥ {}", self.figure, number(limit, self.unit)),
        }
    }

    /// `met (12.3 ms)` or `missed by 4.1 ms (20 % over)`.
    pub fn verdict(&self) -> String {
        let measured = number(self.measured, self.unit);
        let limit = match self.bound {
            Bound::AtMost(limit) | Bound::AtLeast(limit) => limit,
        };
        if self.met() {
            return format!("met ({measured})");
        }
        let gap = (self.measured - limit).abs();
        let share = if limit == 0.0 {
            f64::INFINITY
        } else {
            gap / limit * 100.0
        };
        let side = match self.bound {
            Bound::AtMost(_) => "over",
            Bound::AtLeast(_) => "under",
        };
        format!(
            "missed ({measured}): by {} ({share:.0} % {side})",
            number(gap, self.unit)
        )
    }
}

/// A value with its unit, with as many decimals as its size deserves.
pub fn number(value: f64, unit: &str) -> String {
    let digits = if value == 0.0 || value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else if value.abs() >= 1.0 {
        2
    } else {
        3
    };
    let space = if unit.is_empty() || unit == "×" {
        ""
    } else {
        " "
    };
    match unit {
        "×" => format!("{value:.3}×"),
        _ => format!("{value:.digits$}{space}{unit}"),
    }
}

/// What the numbers were measured on.
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub rustc: String,
    pub codex: String,
    pub commit: String,
    pub date: String,
}

impl Machine {
    pub fn describe(codex_bin: &std::path::Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, name)| name.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let distro = release
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map(|name| name.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_kib / (1024.0 * 1024.0),
            os: format!("{distro}, Linux {}", kernel.trim()),
            rustc: output_of(Command::new("rustc").arg("--version")),
            codex: output_of(Command::new(codex_bin).arg("--version")),
            commit: output_of(
                Command::new("git")
                    .args(["describe", "--always", "--dirty", "--abbrev=12"])
                    .current_dir(env!("CARGO_MANIFEST_DIR")),
            ),
            date: output_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        }
    }

    pub fn print(&self) {
        println!(
            "machine: {} ({} cores), {:.1} GiB, {}; {}; {}; commit {}",
            self.cpu, self.cores, self.memory_gib, self.os, self.rustc, self.codex, self.commit
        );
    }
}

/// The 1-minute load average, as `/proc/loadavg` has it: with two cores,
/// anything above 2 means runnable threads waited for one.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A section with more checks than this (B6: one per reply) gets one
/// summary row: how many are met, and the tightest.
const SUMMARY_ROWS_PER_SECTION: usize = 3;

fn summarize_many(out: &mut String, section: &Section) {
    let met = section.checks.iter().filter(|check| check.met()).count();
    let tightest = section.checks.iter().max_by(|a, b| {
        let share = |check: &Check| match check.bound {
            Bound::AtMost(limit) | Bound::AtLeast(limit) => check.measured / limit,
        };
        share(a).total_cmp(&share(b))
    });
    let tightest = tightest.map_or(String::new(), |check| {
        format!(
            "; closest: {}, {}",
            check.figure,
            number(check.measured, check.unit)
        )
    });
    let _ = writeln!(
        out,
        "| {} {} | every figure within its target | {met} of {} within{tightest} | {} |",
        section.id,
        section.title,
        section.checks.len(),
        if section.missed() {
            "**missed**"
        } else {
            "met"
        }
    );
}

fn output_of(command: &mut Command) -> String {
    command
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `docs/benchmarks.md`: the machine, a summary of every target, then each
/// benchmark's method, figures, notes and, where a target was missed, why.
pub fn markdown(machine: &Machine, sections: &[Section]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `make bench` on {} from commit `{}`; do not edit by hand, run \
         `make bench` again. Release builds, offline: the real Codex app-server on \
         the scripted model (or, for B5, a fake app-server), throwaway homes and \
         free ports. Timings in B1–B3 are medians or the percentiles named over \
         the rounds stated; B4–B6 are one run each (counts, totals, peaks). The \
         machine is shared with other builds, so each section gives the load it \
         ran under. `cargo bench --bench sidecar -- B2 B3` runs some of them and \
         prints the same numbers without touching this file.\n",
        machine.date, machine.commit
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| CPU | {} |", machine.cpu);
    let _ = writeln!(out, "| cores | {} |", machine.cores);
    let _ = writeln!(out, "| memory | {:.1} GiB |", machine.memory_gib);
    let _ = writeln!(out, "| OS | {} |", machine.os);
    let _ = writeln!(out, "| rustc | {} |", machine.rustc);
    let _ = writeln!(out, "| Codex | {} |", machine.codex);
    let _ = writeln!(out, "\n## Summary\n");
    let _ = writeln!(out, "| | target | measured | |\n| --- | --- | --- | --- |");
    for section in sections {
        if section.checks.len() > SUMMARY_ROWS_PER_SECTION {
            summarize_many(&mut out, section);
            continue;
        }
        for check in &section.checks {
            let _ = writeln!(
                out,
                "| {} {} | {} | {} | {} |",
                section.id,
                section.title,
                check.describe_target(),
                number(check.measured, check.unit),
                if check.met() { "met" } else { "**missed**" }
            );
        }
    }
    for section in sections {
        let _ = writeln!(out, "\n## {} {}\n", section.id, section.title);
        let _ = writeln!(out, "{}\n", section.method);
        let _ = writeln!(out, "| figure | value |\n| --- | --- |");
        for (what, value) in &section.figures {
            let _ = writeln!(out, "| {what} | {value} |");
        }
        let _ = writeln!(out);
        for check in &section.checks {
            let _ = writeln!(
                out,
                "- Target {}: {}.",
                check.describe_target(),
                check.verdict()
            );
        }
        for note in &section.notes {
            let _ = writeln!(out, "- {note}");
        }
        if section.missed() {
            for why in &section.why_missed {
                let _ = writeln!(out, "- Why: {why}");
            }
        }
    }
    let _ = writeln!(out, "\n## What these numbers changed\n\n{CHANGES}");
    let _ = writeln!(
        out,
        "\nThe picker's first frame has its own benchmark, which `make bench` runs \
         after these and which only prints: `cargo bench --bench picker_first_frame`."
    );
    out
}

/// The product changes the first runs of these benchmarks led to, with the
/// figures before; the figures after are the ones above.
const CHANGES: &str = "\
- The MCP server answers before Codex is found: `codex --version` (a Node.js \
  process) ran before `initialize` was answered. B1 was 41.6 ms.
- A resume on a connection already subscribed to the thread skips \
  `thread/resume`, which returns the whole thread. B2 was 2.17× (54 ms a turn).
- The run's Markdown summary is replaced without fsync (it renders the event \
  log, which is not fsynced either). B3 was p50 2.1 ms inside the sidecar, p99 \
  57 ms to the client.
- The audit writer appends the events queued behind one in a single write \
  (at most 512). B5 was 116 000 events a second on a quiet machine, 45 000 on a \
  loaded one, with half the sidecar's time in the kernel opening, locking and \
  closing the log once per event.
- A resume of a run that ended in this sidecar finds its thread in memory \
  instead of reading the project and pointer indexes, which hold every run and \
  so made each resume slower as the history grew.";
