//! The small harness the benches share: interleaved sampling, medians, the
//! table, and the scoreboard lines.
//!
//! Every workload runs each implementation once to warm up, then a number
//! of times ([`samples`]), the implementations interleaved sample by sample
//! so that a noisy neighbour hurts them alike. The table shows the median,
//! the time per task or item (or the rate, for bytes), and the ratio to our
//! crate's median time per unit (above 1 means slower than ours).
//!
//! Each bench ends with its lines of the project's scoreboard ([`Score`],
//! [`report`]): `benches/scoreboard` runs every bench with
//! [`SCOREBOARD_VAR`] naming a file, collects the lines the benches append
//! to it and prints them as one table.
//!
//! Included by each bench with `#[path = "harness.rs"] mod harness;`; a
//! bench need not use every item.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// Timed runs per implementation, after one warm-up run, unless
/// [`SAMPLES_VAR`] says otherwise.
pub const SAMPLES: usize = 9;

/// Timed runs of each Python peer, unless [`PYTHON_SAMPLES_VAR`] says
/// otherwise.
pub const PYTHON_SAMPLES: usize = 5;

/// The environment variable that overrides [`SAMPLES`]
/// (`benches/scoreboard --quick` sets it).
pub const SAMPLES_VAR: &str = "CONCURRENT_FUTURES_BENCH_SAMPLES";

/// The environment variable that overrides [`PYTHON_SAMPLES`].
pub const PYTHON_SAMPLES_VAR: &str = "CONCURRENT_FUTURES_BENCH_PYTHON_SAMPLES";

/// The environment variable naming the file that [`report`] appends this
/// run's rows and scoreboard lines to (tab-separated).
pub const SCOREBOARD_VAR: &str = "CONCURRENT_FUTURES_SCOREBOARD";

/// The prefix of our crate's rows, which every row is compared with.
pub const OURS: &str = "concurrent_futures";

/// Timed runs per implementation: [`SAMPLES`] or [`SAMPLES_VAR`].
pub fn samples() -> usize {
    count_from_env(SAMPLES_VAR, SAMPLES)
}

/// Timed runs of each Python peer: [`PYTHON_SAMPLES`] or
/// [`PYTHON_SAMPLES_VAR`].
pub fn python_samples() -> usize {
    count_from_env(PYTHON_SAMPLES_VAR, PYTHON_SAMPLES)
}

fn count_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// What a workload counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Tasks, items, pools…: the table shows the time per one.
    Per(&'static str),
    /// Bytes: the table shows the rate.
    Bytes,
}

/// One implementation of a workload: a name and a run of `units` tasks,
/// items or bytes.
pub struct Candidate<'a> {
    name: String,
    units: u64,
    run: Box<dyn FnMut() + 'a>,
}

impl<'a> Candidate<'a> {
    pub fn new(name: impl Into<String>, units: u64, run: impl FnMut() + 'a) -> Self {
        Candidate {
            name: name.into(),
            units,
            run: Box::new(run),
        }
    }
}

/// The measured outcome of one implementation of one workload.
pub struct Row {
    pub workload: &'static str,
    pub name: String,
    pub unit: Unit,
    pub units: u64,
    /// Seconds per run: median, fastest, slowest.
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Row {
    /// A row measured elsewhere (a Python peer) of which only the median
    /// is known.
    pub fn external(
        workload: &'static str,
        name: impl Into<String>,
        unit: Unit,
        units: u64,
        median: f64,
    ) -> Self {
        Row {
            workload,
            name: name.into(),
            unit,
            units,
            median,
            min: median,
            max: median,
        }
    }

    /// Median seconds per unit.
    pub fn per_unit(&self) -> f64 {
        self.median / self.units as f64
    }

    /// Median units per second.
    pub fn rate(&self) -> f64 {
        self.units as f64 / self.median
    }

    /// The median per unit as the tables show it: `1.76 µs/task`, or the
    /// rate for bytes, `0.24 GB/s`.
    pub fn per_unit_text(&self) -> String {
        match self.unit {
            Unit::Per(unit) => format!("{}/{}", human(self.per_unit()), unit),
            Unit::Bytes => format!("{:.2} GB/s", self.rate() / 1e9),
        }
    }
}

/// Warms every candidate up, then times [`samples`] runs of each,
/// interleaved.
pub fn measure(
    workload: &'static str,
    unit: &'static str,
    candidates: Vec<Candidate<'_>>,
) -> Vec<Row> {
    measure_with(samples(), workload, Unit::Per(unit), candidates)
}

/// Warms every candidate up, then times `samples` runs of each,
/// interleaved.
pub fn measure_with(
    samples: usize,
    workload: &'static str,
    unit: Unit,
    mut candidates: Vec<Candidate<'_>>,
) -> Vec<Row> {
    for candidate in &mut candidates {
        (candidate.run)();
    }
    let mut times = vec![Vec::with_capacity(samples); candidates.len()];
    for _ in 0..samples {
        for (candidate, times) in candidates.iter_mut().zip(&mut times) {
            let start = Instant::now();
            (candidate.run)();
            times.push(start.elapsed().as_secs_f64());
        }
    }
    candidates
        .into_iter()
        .zip(times)
        .map(|(candidate, times)| {
            let (min, median, max) = summarize(times);
            Row {
                workload,
                name: candidate.name,
                unit,
                units: candidate.units,
                median,
                min,
                max,
            }
        })
        .collect()
}

/// Fastest, median and slowest of `times`.
pub fn summarize(mut times: Vec<f64>) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2], times[times.len() - 1])
}

/// A duration in seconds, in the unit that suits it.
pub fn human(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else if seconds >= 1e-6 {
        format!("{:.2} µs", seconds * 1e6)
    } else {
        format!("{:.1} ns", seconds * 1e9)
    }
}

/// Our crate's time per unit in `rows`, which every row is compared with.
pub fn ours_per_unit(rows: &[Row], workload: &str) -> Option<f64> {
    rows.iter()
        .find(|row| row.workload == workload && row.name.starts_with(OURS))
        .map(Row::per_unit)
}

/// Adds `row` after the last row of its workload (at the end if none).
pub fn insert_after_workload(rows: &mut Vec<Row>, row: Row) {
    let at = rows
        .iter()
        .rposition(|other| other.workload == row.workload)
        .map_or(rows.len(), |i| i + 1);
    rows.insert(at, row);
}

pub fn print_table(rows: &[Row]) {
    let workload_width = rows
        .iter()
        .map(|row| row.workload.chars().count())
        .fold(30, usize::max);
    let name_width = rows
        .iter()
        .map(|row| row.name.chars().count())
        .fold(44, usize::max);
    println!(
        "{:<ww$} | {:<nw$} | {:>10} | {:>14} | {:>9} | {:>21}",
        "workload",
        "implementation",
        "median",
        "per task/item",
        "vs ours",
        "spread (min..max)",
        ww = workload_width,
        nw = name_width,
    );
    println!(
        "{}",
        "-".repeat(workload_width + name_width + 10 + 14 + 9 + 21 + 15)
    );
    let mut last = "";
    for row in rows {
        if row.workload != last && !last.is_empty() {
            println!();
        }
        last = row.workload;
        let ratio = match ours_per_unit(rows, row.workload) {
            Some(ours) => format!("{:.2}×", row.per_unit() / ours),
            None => String::from("-"),
        };
        let spread = if row.min == row.max {
            String::from("-")
        } else {
            format!("{}..{}", human(row.min), human(row.max))
        };
        let per_unit = row.per_unit_text();
        println!(
            "{:<ww$} | {:<nw$} | {:>10} | {:>14} | {:>9} | {:>21}",
            row.workload,
            row.name,
            human(row.median),
            per_unit,
            ratio,
            spread,
            ww = workload_width,
            nw = name_width,
        );
    }
}

/// A figure with at most two decimals and no trailing zeros: `0.5`, `10`,
/// `1.25`.
pub fn plain(x: f64) -> String {
    let text = format!("{x:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// A ratio with three significant figures or so: `12.3`, `1.23`, `0.123`,
/// `0.0123`.
pub fn ratio_figure(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 0.1 {
        format!("{x:.2}")
    } else if x >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

/// A duration for a target, in the unit that suits it: `0.5 µs`, `5 ms`.
pub fn plain_duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{} s", plain(seconds))
    } else if seconds >= 1e-3 {
        format!("{} ms", plain(seconds * 1e3))
    } else if seconds >= 1e-6 {
        format!("{} µs", plain(seconds * 1e6))
    } else {
        format!("{} ns", plain(seconds * 1e9))
    }
}

/// What a scoreboard line is held to (DESIGN.md §5).
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Nothing: the line only compares.
    None,
    /// Our median time per unit is at most this many seconds.
    PerUnitAtMost(f64),
    /// Our median rate is at least this many bytes per second.
    RateAtLeast(f64),
    /// Our median time per unit is at most this multiple of the first
    /// peer's.
    RatioAtMost(f64),
    /// The first peer's median time (sequential Rust) is at least this
    /// multiple of ours.
    SpeedupAtLeast(f64),
}

/// How a scoreboard line came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// Missed, but so does a floor measured in the same run (the most
    /// limiting one among the line's peers labelled as floors), and ours
    /// is within [`FLOOR_SLACK`] of it: the target is out of reach on this
    /// machine, for this design or for any, as the floor's label says.
    FloorBound,
    /// The line has no target.
    NoTarget,
    /// The target is relative to a peer this run could not measure.
    NoPeer,
}

impl Verdict {
    pub fn from_check(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "MET",
            Verdict::Missed => "MISSED",
            Verdict::FloorBound => "FLOOR-BOUND",
            Verdict::NoTarget => "-",
            Verdict::NoPeer => "no peer",
        }
    }
}

/// One line of the project's scoreboard: what was measured, our median,
/// the peers' medians, our ratio to the peer the line is judged by, the
/// target and the verdict.
#[derive(Clone, Debug)]
pub struct Score {
    /// The scoreboard's section: `thread pool`, `process pool`, …
    pub section: &'static str,
    pub what: String,
    pub ours: String,
    /// `label median` for each peer measured in this run.
    pub peers: Vec<String>,
    /// `0.26× rayon`: our time ÷ that peer's (below 1: we are faster), or
    /// a speed-up.
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

/// How close to a floor that misses the target ours must be for the line
/// to be [`Verdict::FloorBound`] rather than [`Verdict::Missed`]: at most
/// this multiple of the floor's time per unit.
pub const FLOOR_SLACK: f64 = 1.25;

/// Whether a peer's label names a floor: a bound measured in the same run,
/// with no pool (`pipe floor`, `floor: …`), or the serialisation alone
/// (`serde alone…`).
fn is_floor(label: &str) -> bool {
    label.contains("floor") || label.starts_with("serde alone")
}

/// Whether a row's `name` matches `pattern`: the name starts with the
/// pattern's part before the first `*`, and contains its other `*`-separated
/// parts, in order, after it.
pub fn matches(name: &str, pattern: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(rest) = parts.next().and_then(|first| name.strip_prefix(first)) else {
        return false;
    };
    let mut rest = rest;
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The scoreboard line for `workload` from this run's `rows`: ours is the
/// row whose name [`matches`] `ours`; `peers` are `(pattern, label)`
/// pairs, and the ratio is taken to the first of them that was measured
/// (to the very first for a relative target). `None` if our row is
/// missing.
pub fn score(
    rows: &[Row],
    section: &'static str,
    what: impl Into<String>,
    workload: &str,
    ours: &str,
    peers: &[(&str, &str)],
    target: Target,
) -> Option<Score> {
    let find = |pattern: &str| {
        rows.iter()
            .find(|row| row.workload == workload && matches(&row.name, pattern))
    };
    let our_row = find(ours)?;
    let measured: Vec<(&Row, &str)> = peers
        .iter()
        .filter_map(|(prefix, label)| find(prefix).map(|row| (row, *label)))
        .collect();
    let judge = match target {
        Target::RatioAtMost(_) | Target::SpeedupAtLeast(_) => peers
            .first()
            .and_then(|(prefix, label)| find(prefix).map(|row| (row, *label))),
        _ => measured.first().copied(),
    };
    let ratio = judge.map(|(peer, _)| our_row.per_unit() / peer.per_unit());
    let ratio_text = match (judge, ratio) {
        (Some(_), Some(ratio)) if matches!(target, Target::SpeedupAtLeast(_)) => {
            format!("{}× speed-up", ratio_figure(1.0 / ratio))
        }
        (Some((_, label)), Some(ratio)) => format!("{}× {label}", ratio_figure(ratio)),
        _ => String::from("-"),
    };
    let first_label = peers.first().map_or("", |(_, label)| *label);
    let (target_text, verdict) = match target {
        Target::None => (String::from("-"), Verdict::NoTarget),
        Target::PerUnitAtMost(seconds) => (
            format!("≤ {}/{}", plain_duration(seconds), unit_name(our_row.unit)),
            Verdict::from_check(our_row.per_unit() <= seconds),
        ),
        Target::RateAtLeast(rate) => (
            format!("≥ {} GB/s", plain(rate / 1e9)),
            Verdict::from_check(our_row.rate() >= rate),
        ),
        Target::RatioAtMost(most) => (
            format!("≤ {}× {first_label}", plain(most)),
            ratio.map_or(Verdict::NoPeer, |ratio| Verdict::from_check(ratio <= most)),
        ),
        Target::SpeedupAtLeast(least) => (
            format!("≥ {}× speed-up", plain(least)),
            ratio.map_or(Verdict::NoPeer, |ratio| {
                Verdict::from_check(1.0 / ratio >= least)
            }),
        ),
    };
    // A missed target is floor-bound if the most limiting floor measured
    // here misses it too and ours is close to that floor.
    let floor = measured
        .iter()
        .filter(|(_, label)| is_floor(label))
        .max_by(|(a, _), (b, _)| a.per_unit().total_cmp(&b.per_unit()));
    let (verdict, ratio_text) = match (verdict, floor) {
        (Verdict::Missed, Some((floor, label))) => {
            let judge_time = judge.map(|(peer, _)| peer.per_unit());
            let floor_misses = match target {
                Target::PerUnitAtMost(seconds) => floor.per_unit() > seconds,
                Target::RateAtLeast(rate) => floor.rate() < rate,
                Target::RatioAtMost(most) => {
                    judge_time.is_some_and(|peer| floor.per_unit() / peer > most)
                }
                Target::SpeedupAtLeast(least) => {
                    judge_time.is_some_and(|peer| peer / floor.per_unit() < least)
                }
                Target::None => false,
            };
            let to_floor = our_row.per_unit() / floor.per_unit();
            if floor_misses && to_floor <= FLOOR_SLACK {
                let floor_text = match (target, judge_time) {
                    (Target::SpeedupAtLeast(_), Some(peer)) => {
                        format!("{}× speed-up", ratio_figure(peer / floor.per_unit()))
                    }
                    (Target::RatioAtMost(_), Some(peer)) => {
                        format!("{}× {first_label}", ratio_figure(floor.per_unit() / peer))
                    }
                    _ => floor.per_unit_text(),
                };
                let note = format!(
                    "{ratio_text}; {label} reaches {floor_text}, ours takes {}× its time",
                    ratio_figure(to_floor)
                );
                (Verdict::FloorBound, note)
            } else {
                (Verdict::Missed, ratio_text)
            }
        }
        (verdict, _) => (verdict, ratio_text),
    };
    Some(Score {
        section,
        what: what.into(),
        ours: our_row.per_unit_text(),
        peers: measured
            .iter()
            .map(|(row, label)| format!("{label} {}", row.per_unit_text()))
            .collect(),
        ratio: ratio_text,
        target: target_text,
        verdict,
    })
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Per(name) => name,
        Unit::Bytes => "byte",
    }
}

/// DESIGN.md §5: automatic chunking within this factor of the best fixed
/// chunk size.
pub const AUTO_CHUNK_TARGET: f64 = 1.1;

/// The fixed chunk sizes every automatic-chunking line is compared with.
pub const CHUNK_SWEEP: [usize; 6] = [64, 256, 1024, 4096, 16384, 65536];

/// The automatic-chunking line for `workload`: the row whose name starts
/// with `auto` against the best of the rows whose names start with
/// `fixed` (the rest of such a name, `Fixed(4096)`, is its label).
pub fn chunk_score(
    rows: &[Row],
    what: impl Into<String>,
    workload: &str,
    auto: &str,
    fixed: &str,
) -> Option<Score> {
    let auto_row = rows
        .iter()
        .find(|row| row.workload == workload && row.name.starts_with(auto))?;
    let sweep: Vec<(&Row, &str)> = rows
        .iter()
        .filter(|row| row.workload == workload)
        .filter_map(|row| row.name.strip_prefix(fixed).map(|label| (row, label)))
        .collect();
    let (best, best_label) = sweep
        .iter()
        .min_by(|a, b| a.0.per_unit().total_cmp(&b.0.per_unit()))
        .copied()?;
    let ratio = auto_row.per_unit() / best.per_unit();
    Some(Score {
        section: "automatic chunking",
        what: what.into(),
        ours: format!("auto {}", auto_row.per_unit_text()),
        peers: sweep
            .iter()
            .map(|(row, label)| format!("{label} {}", row.per_unit_text()))
            .collect(),
        ratio: format!("{}× best, {best_label}", ratio_figure(ratio)),
        target: format!("≤ {}× best fixed", plain(AUTO_CHUNK_TARGET)),
        verdict: Verdict::from_check(ratio <= AUTO_CHUNK_TARGET),
    })
}

/// Prints `scores` after the bench's table and, when [`SCOREBOARD_VAR`]
/// names a file, appends every row and every score to it, one
/// tab-separated line each:
///
/// ```text
/// row   BENCH WORKLOAD IMPLEMENTATION MEDIAN_SECONDS UNITS UNIT PER_UNIT
/// score SECTION WHAT OURS PEERS("; "-separated) RATIO TARGET VERDICT
/// ```
pub fn report(bench: &str, rows: &[Row], scores: &[Score]) {
    println!();
    println!(
        "Scoreboard lines (DESIGN.md §5, from this run's medians; ratio = ours ÷ the peer's):"
    );
    for score in scores {
        println!(
            "  [{}] {}: ours {} | {} | {} | target {} | {}",
            score.section,
            score.what,
            score.ours,
            if score.peers.is_empty() {
                String::from("no peer")
            } else {
                score.peers.join("; ")
            },
            score.ratio,
            score.target,
            score.verdict.text(),
        );
    }
    let Some(path) = std::env::var_os(SCOREBOARD_VAR) else {
        return;
    };
    let clean = |text: &str| text.replace(['\t', '\n'], " ");
    let mut lines = String::new();
    for row in rows {
        let unit = match row.unit {
            Unit::Per(name) => name,
            Unit::Bytes => "bytes",
        };
        let _ = writeln!(
            lines,
            "row\t{bench}\t{}\t{}\t{:e}\t{}\t{unit}\t{}",
            clean(row.workload),
            clean(row.name.trim()),
            row.median,
            row.units,
            row.per_unit_text(),
        );
    }
    for score in scores {
        let _ = writeln!(
            lines,
            "score\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            clean(score.section),
            clean(&score.what),
            clean(&score.ours),
            clean(&score.peers.join("; ")),
            clean(&score.ratio),
            clean(&score.target),
            score.verdict.text(),
        );
    }
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(lines.as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "cannot append the scoreboard lines to {}: {error}",
            path.to_string_lossy()
        );
    }
}

/// The workloads named on the command line (`cargo bench … -- 1 5` runs
/// those whose names start with `1` or `5`), or every workload when none
/// is named; cargo's own flags (`--bench`) are ignored.
pub fn chosen_workloads() -> impl Fn(&str) -> bool {
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    move |workload| chosen.is_empty() || chosen.iter().any(|n| workload.starts_with(n.as_str()))
}

/// The CPU time, in seconds, that the thread whose `/proc` directory is
/// `task` (`/proc/PID/task/TID`) has run so far: the first field of its
/// `schedstat`, the nanoseconds the kernel ran it, user and system alike.
/// `None` if the thread is gone (or the file cannot be read).
pub fn thread_run_seconds(task: &Path) -> Option<f64> {
    let schedstat = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(nanos as f64 * 1e-9)
}
