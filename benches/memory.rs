//! Memory: `map` over 10^7 items on each pool, in a process of its own,
//! whose peak resident set (`VmHWM` in `/proc/self/status`) the OS reports
//! at the end. Only the parent's own peak counts: a process-pool worker is
//! a process of its own, with its own.
//!
//! Each measurement is this binary re-executed with [`MODE`] set: `idle`
//! (nothing but starting and reading its peak, the floor), `threads` or
//! `processes`. The peers (`benches/python/memory.py`, skipped with a
//! message if python3 cannot run it) measure Python's pools the same way:
//! its `ProcessPoolExecutor.map` over the same 10^7 items, and its
//! `ThreadPoolExecutor.map` over 10^5 only (it creates a future per item
//! up front: 10^7 would take minutes and gigabytes).
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --bench memory
//! ```

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use concurrent_futures::{ProcessPoolExecutor, ThreadPoolExecutor};

#[path = "harness.rs"]
mod harness;

use harness::{human, report, Row, Score, Unit, Verdict};

/// The environment variable that makes this binary one measurement.
const MODE: &str = "CONCURRENT_FUTURES_BENCH_MEMORY";

/// Items of our maps and of Python's process-pool map.
const ITEMS: u64 = 10_000_000;
/// Items of Python's thread-pool map.
const PYTHON_THREAD_ITEMS: u64 = 100_000;
/// Workers of every pool.
const WORKERS: usize = 2;
/// DESIGN.md §5: constant memory, a peak resident set under this.
const TARGET_MIB: f64 = 64.0;

const WORKLOAD: &str = "map x*2 over 10^7 items, peak RSS";

/// This process's peak resident set, in KiB.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix("VmHWM:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// One measurement, in this process: runs the map of `mode`, then prints
/// `PEAK_KIB SECONDS`.
fn measure_here(mode: &str) {
    let started = Instant::now();
    let sum: u64 = match mode {
        "idle" => 0,
        "threads" => {
            let pool = ThreadPoolExecutor::new(WORKERS);
            pool.map(|x: u64| x * 2, 0..ITEMS)
                .map(|value| value.expect("no item fails"))
                .sum()
        }
        "processes" => {
            let pool = ProcessPoolExecutor::new(WORKERS).expect("a process pool");
            pool.map(|x: u64| x * 2, 0..ITEMS)
                .map(|value| value.expect("no item fails"))
                .sum()
        }
        other => panic!("{MODE}={other}: expected idle, threads or processes"),
    };
    let seconds = started.elapsed().as_secs_f64();
    if mode != "idle" {
        assert_eq!(sum, ITEMS * (ITEMS - 1));
    }
    println!(
        "{} {seconds}",
        peak_kib().expect("VmHWM in /proc/self/status")
    );
}

/// Peak KiB and seconds from a measurement's output.
fn parse(stdout: &[u8]) -> Option<(u64, f64)> {
    let text = String::from_utf8_lossy(stdout);
    let mut fields = text.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Runs one measurement of ours in a fresh copy of this binary.
fn ours(mode: &str) -> Option<(u64, f64)> {
    let output = Command::new("/proc/self/exe")
        .env(MODE, mode)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!("memory: the {mode} measurement failed: {}", output.status);
        return None;
    }
    parse(&output.stdout)
}

/// Runs one measurement of Python's: `mode` is `thread_pool` or
/// `process_pool`.
fn python(mode: &str, items: u64) -> Option<(u64, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/memory.py");
    let output = Command::new("python3")
        .arg(script)
        .args([mode, &items.to_string(), &WORKERS.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse(&output.stdout)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    concurrent_futures::init();
    if let Some(mode) = std::env::var_os(MODE) {
        measure_here(&mode.to_string_lossy());
        return;
    }
    println!(
        "memory bench: map x*2 over 10^7 items, {WORKERS} workers, each in a process of its \
         own; the peak resident set (VmHWM) of that process alone"
    );
    println!();

    let started = Instant::now();
    let idle = ours("idle");
    let measured = [
        (
            "threads",
            "ThreadPoolExecutor",
            "thread pool",
            ours("threads"),
        ),
        (
            "processes",
            "ProcessPoolExecutor",
            "process pool (the parent's own)",
            ours("processes"),
        ),
    ];
    let python_threads = python("thread_pool", PYTHON_THREAD_ITEMS);
    let python_processes = python("process_pool", ITEMS);

    let line = |name: &str, items: u64, result: Option<(u64, f64)>| match result {
        Some((kib, seconds)) => println!(
            "{name:<58} {:>9.1} MiB  {:>10} for {items} items",
            mib(kib),
            human(seconds)
        ),
        None => println!("{name:<58} skipped"),
    };
    line("this binary, idle (the floor)", 0, idle);
    for (_, pool, _, result) in &measured {
        line(
            &format!("concurrent_futures {pool}({WORKERS})"),
            ITEMS,
            *result,
        );
    }
    line(
        &format!("Python ThreadPoolExecutor({WORKERS})"),
        PYTHON_THREAD_ITEMS,
        python_threads,
    );
    line(
        &format!("Python ProcessPoolExecutor({WORKERS}) fork, chunksize=1000"),
        ITEMS,
        python_processes,
    );
    if python_threads.is_none() || python_processes.is_none() {
        println!("Python: skipped: python3 not available or the script failed");
    }

    let mut rows = Vec::new();
    let mut scores = Vec::new();
    for (mode, pool, what, result) in measured {
        let Some((kib, seconds)) = result else {
            continue;
        };
        rows.push(Row::external(
            WORKLOAD,
            format!("concurrent_futures {pool}({WORKERS}) {mode}"),
            Unit::Per("item"),
            ITEMS,
            seconds,
        ));
        let mut peers = Vec::new();
        if let Some((idle, _)) = idle {
            peers.push(format!("idle process {:.1} MiB", mib(idle)));
        }
        let mut ratio = String::from("-");
        if mode == "threads" {
            if let Some((python, _)) = python_threads {
                peers.push(format!(
                    "Python ThreadPoolExecutor, only 10^{} items, {:.1} MiB",
                    PYTHON_THREAD_ITEMS.ilog10(),
                    mib(python)
                ));
            }
        } else if let Some((python, _)) = python_processes {
            peers.push(format!(
                "Python PPE fork chunksize=1000 {:.1} MiB",
                mib(python)
            ));
            ratio = format!(
                "{}× Python PPE",
                harness::ratio_figure(kib as f64 / python as f64)
            );
        }
        scores.push(Score {
            section: "memory",
            what: format!("map over 10^7 items (x*2), {what}, peak RSS"),
            ours: format!("{:.1} MiB", mib(kib)),
            peers,
            ratio,
            target: format!("< {TARGET_MIB} MiB"),
            verdict: Verdict::from_check(mib(kib) < TARGET_MIB),
        });
    }
    report("memory", &rows, &scores);
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
