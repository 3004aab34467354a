//! The thread pool against its peers, measured in one run (DESIGN.md §5).
//!
//! The small harness shared with the other benches (`harness.rs`): every
//! workload runs each implementation once to warm up, then `samples()`
//! times, the implementations interleaved sample by sample so that a noisy
//! neighbour hurts them alike. The table shows the median, the time per
//! task or item, and the ratio to our crate's median (above 1 means slower
//! than ours). The scoreboard lines at the end (the thread-pool section,
//! and automatic chunking for the map) come from this run's medians.
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --bench thread_pool
//! cargo bench -p concurrent-futures-benches --bench thread_pool -- submit_all
//! ```
//!
//! An argument picks workloads by name (`round_trip`, `submit_all`, `map`,
//! `python`; several may be given); without one, all run. The
//! submit-all workload also prints the CPU time per task of each
//! candidate, and the map workload that of ours (automatic chunks) and
//! rayon's (`getrusage(RUSAGE_SELF)`: every thread of this process, so a
//! pool's spinning and waking count), summed over its timed runs.

use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Instant;

use concurrent_futures::{Chunksize, ThreadPoolExecutor};
use rayon::prelude::*;

#[path = "harness.rs"]
mod harness;

use harness::{
    chunk_score, insert_after_workload, measure, print_table, python_samples, report, samples,
    score, Candidate, Row, Score, Target, Unit, CHUNK_SWEEP, OURS,
};

/// Tasks per run of the round-trip workload (pools).
const ROUND_TRIP_TASKS: u64 = 10_000;
/// Tasks per run of the round-trip workload for a thread per task.
const SPAWN_JOIN_TASKS: u64 = 1_000;
/// Tasks per run of the submit-all-then-result-all workload.
const SUBMIT_ALL_TASKS: u64 = 100_000;
/// Items per run of the map workload.
const MAP_ITEMS: u64 = 1_000_000;
/// Python is slow: fewer tasks per run.
const PYTHON_ROUND_TRIP_TASKS: u64 = 5_000;
const PYTHON_SUBMIT_ALL_TASKS: u64 = 20_000;
const PYTHON_MAP_ITEMS: u64 = 20_000;

/// DESIGN.md §5 (and issue 12): submit 10^5 no-op tasks then result all,
/// no slower than rayon's `scope` + `spawn` doing the same.
const SUBMIT_ALL_TARGET_RATIO: f64 = 1.0;
/// DESIGN.md §5: `map` over 10^6 tiny items, within this factor of rayon.
const MAP_TARGET_RATIO: f64 = 3.0;

const W1: &str = "1 submit→result round trip";
const W2: &str = "2 submit all, then result all";
const W3: &str = "3 map 10^6 items (x*2)";

/// Workload 1: submit one no-op task, wait for its result, repeat.
fn round_trip() -> Vec<Row> {
    let ours = ThreadPoolExecutor::new(2);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a rayon pool of 2 threads");
    let candidates = vec![
        Candidate::new(
            format!("{OURS} ThreadPoolExecutor(2)"),
            ROUND_TRIP_TASKS,
            || {
                for i in 0..ROUND_TRIP_TASKS {
                    let value = ours.submit(move || black_box(i)).result();
                    assert_eq!(value, Ok(i));
                }
            },
        ),
        Candidate::new("std::thread::spawn + join", SPAWN_JOIN_TASKS, || {
            for i in 0..SPAWN_JOIN_TASKS {
                let value = thread::spawn(move || black_box(i)).join();
                assert_eq!(value.ok(), Some(i));
            }
        }),
        Candidate::new("rayon(2) spawn + channel", ROUND_TRIP_TASKS, || {
            for i in 0..ROUND_TRIP_TASKS {
                let (sender, receiver) = mpsc::sync_channel(1);
                rayon.spawn(move || {
                    let _ = sender.send(black_box(i));
                });
                assert_eq!(receiver.recv(), Ok(i));
            }
        }),
        Candidate::new("rayon(2) install", ROUND_TRIP_TASKS, || {
            for i in 0..ROUND_TRIP_TASKS {
                assert_eq!(rayon.install(|| black_box(i)), i);
            }
        }),
    ];
    measure(W1, "task", candidates)
}

/// Workload 2: submit `SUBMIT_ALL_TASKS` no-op tasks, then take every result.
fn submit_all(threads: usize) -> Vec<Row> {
    const N: u64 = SUBMIT_ALL_TASKS;
    const SUM: u64 = N * (N - 1) / 2;
    let ours = ThreadPoolExecutor::new(threads);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    let cpu: [Cell<f64>; 3] = Default::default();
    let candidates = vec![
        Candidate::new(format!("{OURS} ThreadPoolExecutor({threads})"), N, || {
            let _cpu = CpuMeter::new(&cpu[0]);
            let futures: Vec<_> = (0..N).map(|i| ours.submit(move || black_box(i))).collect();
            let sum: u64 = futures
                .into_iter()
                .map(|future| future.result().expect("a no-op task"))
                .sum();
            assert_eq!(sum, SUM);
        }),
        Candidate::new(format!("rayon({threads}) scope + spawn each"), N, || {
            let _cpu = CpuMeter::new(&cpu[1]);
            let mut results = vec![0u64; N as usize];
            rayon.scope(|scope| {
                for (i, slot) in (0..N).zip(results.iter_mut()) {
                    scope.spawn(move |_| *slot = black_box(i));
                }
            });
            assert_eq!(results.iter().sum::<u64>(), SUM);
        }),
        Candidate::new(
            format!("std scope, {threads} threads, mpsc job queue"),
            N,
            || {
                let _cpu = CpuMeter::new(&cpu[2]);
                assert_eq!(hand_rolled_queue(threads, N), SUM);
            },
        ),
    ];
    let rows = measure(W2, "task", candidates);
    // The warm-up run is measured too: one more run than the samples.
    let runs = (samples() + 1) as f64;
    println!("{W2}: CPU time per task (user + system, all threads, mean over the runs):");
    for (row, cpu) in rows.iter().zip(&cpu) {
        println!(
            "  {:<48} {:>8.0} ns",
            row.name,
            cpu.get() / runs / N as f64 * 1e9
        );
    }
    println!();
    rows
}

/// Adds the process's CPU time (user + system, every thread) from its
/// creation to its drop to a total.
struct CpuMeter<'a> {
    total: &'a Cell<f64>,
    start: f64,
}

impl<'a> CpuMeter<'a> {
    fn new(total: &'a Cell<f64>) -> Self {
        CpuMeter {
            total,
            start: process_cpu(),
        }
    }
}

impl Drop for CpuMeter<'_> {
    fn drop(&mut self) {
        self.total
            .set(self.total.get() + process_cpu() - self.start);
    }
}

/// The CPU time (user + system) of every thread of this process, in
/// seconds.
fn process_cpu() -> f64 {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`, as getrusage wants.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The simplest pool one writes by hand: scoped threads taking boxed jobs
/// from one shared `mpsc` receiver and sending each result back with its
/// index. Returns the sum of the results.
fn hand_rolled_queue(threads: usize, tasks: u64) -> u64 {
    type Job = Box<dyn FnOnce() -> u64 + Send>;
    let (job_sender, job_receiver) = mpsc::channel::<(usize, Job)>();
    let job_receiver = Mutex::new(job_receiver);
    let (result_sender, result_receiver) = mpsc::channel::<(usize, u64)>();
    let mut results = vec![0u64; tasks as usize];
    thread::scope(|scope| {
        for _ in 0..threads {
            let result_sender = result_sender.clone();
            let job_receiver = &job_receiver;
            scope.spawn(move || loop {
                let next = job_receiver.lock().expect("a worker panicked").recv();
                match next {
                    Ok((index, job)) => {
                        let _ = result_sender.send((index, job()));
                    }
                    Err(_) => break,
                }
            });
        }
        drop(result_sender);
        for (index, i) in (0..tasks).enumerate() {
            let job: Job = Box::new(move || black_box(i));
            job_sender
                .send((index, job))
                .expect("the workers are alive");
        }
        drop(job_sender);
        for (index, value) in result_receiver {
            results[index] = value;
        }
    });
    results.iter().sum()
}

/// Workload 3: `map` of `x * 2` over `MAP_ITEMS` integers, into a `Vec`;
/// ours also with each chunk size of the sweep.
fn map(threads: usize) -> Vec<Row> {
    const N: u64 = MAP_ITEMS;
    fn check(out: &[u64]) {
        assert_eq!(out.len(), N as usize);
        assert_eq!(out[N as usize - 1], 2 * (N - 1));
        black_box(out);
    }
    let ours = ThreadPoolExecutor::new(threads);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    let cpu: [Cell<f64>; 2] = Default::default();
    let mut candidates = vec![Candidate::new(
        format!("{OURS} map, automatic chunksize"),
        N,
        || {
            let _cpu = CpuMeter::new(&cpu[0]);
            let out = ours
                .map(|x| x * 2, black_box(0..N))
                .collect::<Result<Vec<u64>, _>>()
                .expect("no item fails");
            check(&out);
        },
    )];
    for size in CHUNK_SWEEP {
        let fixed = Chunksize::Fixed(NonZeroUsize::new(size).expect("not zero"));
        let ours = &ours;
        candidates.push(Candidate::new(
            format!("  ours Fixed({size})"),
            N,
            move || {
                let out = ours
                    .map(|x| x * 2, black_box(0..N))
                    .chunksize(fixed)
                    .collect::<Result<Vec<u64>, _>>()
                    .expect("no item fails");
                check(&out);
            },
        ));
    }
    candidates.extend([
        Candidate::new(
            format!("rayon({threads}) into_par_iter().map().collect()"),
            N,
            || {
                let _cpu = CpuMeter::new(&cpu[1]);
                let out: Vec<u64> =
                    rayon.install(|| black_box(0..N).into_par_iter().map(|x| x * 2).collect());
                check(&out);
            },
        ),
        Candidate::new(format!("std scope, {threads} parts"), N, || {
            let mut out = vec![0u64; N as usize];
            let part = out.len().div_ceil(threads);
            thread::scope(|scope| {
                for (k, chunk) in out.chunks_mut(part).enumerate() {
                    scope.spawn(move || {
                        let base = black_box((k * part) as u64);
                        for (x, slot) in (base..).zip(chunk.iter_mut()) {
                            *slot = x * 2;
                        }
                    });
                }
            });
            check(&out);
        }),
        Candidate::new(
            "floor: ordered hand-off alone, one thread, chunks of 65 536",
            N,
            || {
                let out = OrderedHandOff::new(black_box(0..N), 1 << 16)
                    .collect::<Result<Vec<u64>, concurrent_futures::Error>>()
                    .expect("no item fails");
                check(&out);
            },
        ),
        Candidate::new("  (sequential, one thread)", N, || {
            let out: Vec<u64> = black_box(0..N).map(|x| x * 2).collect();
            check(&out);
        }),
    ]);
    let rows = measure(W3, "item", candidates);
    // The warm-up run is measured too: one more run than the samples.
    let runs = (samples() + 1) as f64;
    println!("{W3}: CPU time per item (user + system, all threads, mean over the runs):");
    let metered =
        [OURS, "rayon"].map(|prefix| rows.iter().find(|row| row.name.starts_with(prefix)));
    for (row, cpu) in metered.iter().zip(&cpu) {
        if let Some(row) = row {
            println!(
                "  {:<48} {:>8.2} ns",
                row.name,
                cpu.get() / runs / N as f64 * 1e9
            );
        }
    }
    println!();
    rows
}

/// The part of a lazy, ordered `map` that no number of threads shares:
/// the consumer cuts the input into chunks (the input is the caller's
/// iterator, which need not be `Send`, so only the consumer may pull from
/// it), then yields every result through `next` into the caller's
/// `collect`. Here on one thread, with no pool, no synchronisation and the
/// work (`x * 2`) done in `next`: what is left of a pool's `map` if its
/// workers and hand-overs cost nothing.
struct OrderedHandOff<I> {
    input: I,
    chunk: usize,
    current: std::vec::IntoIter<u64>,
}

impl<I: Iterator<Item = u64>> OrderedHandOff<I> {
    fn new(input: I, chunk: usize) -> Self {
        OrderedHandOff {
            input,
            chunk,
            current: Vec::new().into_iter(),
        }
    }

    /// The next chunk, out of line as a pool's must be (it waits on a
    /// worker there).
    #[inline(never)]
    fn next_chunk(&mut self) -> Option<Result<u64, concurrent_futures::Error>> {
        let chunk: Vec<u64> = self.input.by_ref().take(self.chunk).collect();
        self.current = chunk.into_iter();
        self.current.next().map(|x| Ok(x * 2))
    }
}

impl<I: Iterator<Item = u64>> Iterator for OrderedHandOff<I> {
    type Item = Result<u64, concurrent_futures::Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.current.next() {
            Some(x) => Some(Ok(x * 2)),
            None => self.next_chunk(),
        }
    }
}

/// Workload 4: Python's ThreadPoolExecutor(2) through `benches/python/`,
/// its rows added to workloads 1, 2 and 3. `None` if python3 cannot run
/// it.
fn python(workload: &'static str, mode: &str, tasks: u64) -> Option<Row> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/thread_pool.py");
    let output = Command::new("python3")
        .arg(script)
        .args([mode, &tasks.to_string(), &python_samples().to_string()])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let median: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    let (name, unit) = match mode {
        "map" => (
            format!("Python ThreadPoolExecutor(2) map, N={tasks}"),
            "item",
        ),
        _ => (String::from("Python ThreadPoolExecutor(2)"), "task"),
    };
    Some(Row::external(
        workload,
        name,
        Unit::Per(unit),
        tasks,
        median,
    ))
}

/// This bench's lines of the scoreboard.
fn scores(rows: &[Row]) -> Vec<Score> {
    const SECTION: &str = "thread pool";
    const PYTHON: (&str, &str) = ("Python", "Python ThreadPoolExecutor");
    [
        score(
            rows,
            SECTION,
            "submit→result round trip, no-op task",
            W1,
            OURS,
            &[
                ("rayon(2) spawn", "rayon spawn+channel"),
                ("rayon(2) install", "rayon install"),
                ("std::thread::spawn", "std thread spawn+join"),
                PYTHON,
            ],
            Target::None,
        ),
        score(
            rows,
            SECTION,
            format!(
                "submit 10^{} no-op tasks, then result all",
                SUBMIT_ALL_TASKS.ilog10()
            ),
            W2,
            OURS,
            &[
                ("rayon", "rayon scope+spawn"),
                ("std scope", "std scope+mpsc queue"),
                PYTHON,
            ],
            Target::RatioAtMost(SUBMIT_ALL_TARGET_RATIO),
        ),
        score(
            rows,
            SECTION,
            "map over 10^6 tiny items (x*2), automatic chunks",
            W3,
            OURS,
            &[
                ("rayon", "rayon par_iter"),
                (
                    "floor: ordered",
                    "floor: ordered hand-off alone, one thread",
                ),
                ("std scope", "std scope, one part per thread"),
                ("  (sequential", "sequential"),
                PYTHON,
            ],
            Target::RatioAtMost(MAP_TARGET_RATIO),
        ),
        chunk_score(
            rows,
            "thread pool map over 10^6 × (x*2)",
            W3,
            OURS,
            "  ours ",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn main() {
    let threads = thread::available_parallelism().map_or(2, NonZeroUsize::get);
    println!(
        "thread_pool bench: {threads} CPUs, {} samples after a warm-up, medians (Python: {}); \
         'vs ours' = time per task/item ÷ ours (above 1 = slower than ours)",
        samples(),
        python_samples(),
    );
    println!();

    // Workloads named on the command line (cargo bench passes `--bench`
    // too); all of them when none is.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let runs = |name: &str| picked.is_empty() || picked.iter().any(|p| p == name);

    let started = Instant::now();
    let mut rows = Vec::new();
    if runs("round_trip") {
        rows.extend(round_trip());
    }
    if runs("submit_all") {
        rows.extend(submit_all(threads));
    }
    if runs("map") {
        rows.extend(map(threads));
    }

    let mut skipped = false;
    for (workload, mode, tasks) in [
        (W1, "round_trip", PYTHON_ROUND_TRIP_TASKS),
        (W2, "submit_all", PYTHON_SUBMIT_ALL_TASKS),
        (W3, "map", PYTHON_MAP_ITEMS),
    ] {
        if !runs("python") || !runs(mode) {
            continue;
        }
        match python(workload, mode, tasks) {
            Some(row) => insert_after_workload(&mut rows, row),
            None => skipped = true,
        }
    }

    print_table(&rows);
    if skipped {
        println!();
        println!("4 Python ThreadPoolExecutor: skipped: python3 not available");
    }
    report("thread_pool", &rows, &scores(&rows));
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
