//! The small harness the benches share: interleaved sampling, medians, the
//! table.
//!
//! Every workload runs each implementation once to warm up, then a number
//! of times (`SAMPLES` by default), the implementations interleaved sample
//! by sample so that a noisy neighbour hurts them alike. The table shows
//! the median, the time per task or item (or the rate, for bytes), and the
//! ratio to our crate's median time per unit (above 1 means slower than
//! ours).
//!
//! Included by each bench with `#[path = "harness.rs"] mod harness;`; a
//! bench need not use every item.
#![allow(dead_code)]

use std::time::Instant;

/// Timed runs per implementation, after one warm-up run.
pub const SAMPLES: usize = 9;

/// The prefix of our crate's rows, which every row is compared with.
pub const OURS: &str = "concurrent_futures";

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
}

/// Warms every candidate up, then times `SAMPLES` runs of each, interleaved.
pub fn measure(
    workload: &'static str,
    unit: &'static str,
    candidates: Vec<Candidate<'_>>,
) -> Vec<Row> {
    measure_with(SAMPLES, workload, Unit::Per(unit), candidates)
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

/// The first row of the workload starting with `workload` whose name
/// starts with `name`.
pub fn find<'a>(rows: &'a [Row], workload: &str, name: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|row| row.workload.starts_with(workload) && row.name.starts_with(name))
}

/// Adds `row` after the last row of its workload (at the end if none).
pub fn insert_after_workload(rows: &mut Vec<Row>, row: Row) {
    let at = rows
        .iter()
        .rposition(|other| other.workload == row.workload)
        .map_or(rows.len(), |i| i + 1);
    rows.insert(at, row);
}

/// `"MET"` or `"MISSED"`.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
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
        let per_unit = match row.unit {
            Unit::Per(unit) => format!("{}/{}", human(row.per_unit()), unit),
            Unit::Bytes => format!("{:.2} GB/s", row.rate() / 1e9),
        };
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
