//! How far the process pool scales (issue 12): the CPU time each side
//! spends per item of a fine-grained `map`, and from it the number of
//! workers one parent can keep busy.
//!
//! On 2 cores a pool's wall time says little about 32: what limits a big
//! machine is the parent, which encodes every argument and decodes every
//! result on one thread. So each side's CPU is measured with `getrusage`:
//! `RUSAGE_SELF` for the parent and `RUSAGE_CHILDREN` for the workers (the
//! kernel adds a child's times there once it has been reaped, which
//! `shutdown` does). Each measurement is this binary re-executed with
//! [`CHILD`] naming it, so that both figures start from zero: the child
//! starts a pool of 1 or 2 workers, waits until they are up, runs one map
//! (whose wall time is taken), consumes and checks its results, shuts the
//! pool down and prints its times.
//!
//! Each pool is measured twice, in two kinds of child:
//!
//! * **first map**: a fresh pool's one map, as above. Its figures include
//!   what a pool pays once, on its first map, and reuses after: the first
//!   writes into the argument arena and the workers' regions, the value
//!   vectors the parent decodes into: a few MiB, ~1 500 pages for
//!   `x * 2`, and a page first touched costs 2–4 µs on these virtual
//!   machines (a C probe writing one byte a page of fresh anonymous or
//!   `memfd` memory).
//! * **next map** (`warm`): the same map run twice on one pool, the second
//!   measured alone: the parent's CPU by `RUSAGE_SELF` around it, the
//!   workers' by the kernel's per-thread run time
//!   (`/proc/PID/task/TID/schedstat`, since `getrusage` counts a child
//!   only once it is reaped), its wall time. Nothing is subtracted. This
//!   is what each further item costs a pool that runs for long, and what
//!   the targets are judged on: a map of 10^8 items pays the first map's
//!   one-off cost once, not per item. (Checked against a third way, the
//!   whole child's `getrusage` with 11 maps less that with one, ÷ 10: the
//!   same figures within 0.5 ns.) The first map's parent figure is shown
//!   beside it, unjudged, with its one-off cost in milliseconds.
//!
//! Per item:
//!
//! * **parent**: the parent's CPU (a first map: the child's own CPU, less
//!   that of a child that only starts and stops the same pool, `idle`,
//!   the pool's fixed cost, printed apart), ÷ items;
//! * **worker**: the workers' CPU (a first map: less the idle pool's
//!   workers'), ÷ items;
//! * **beyond the work**: worker less the work itself, the CPU per item of
//!   a child that runs the workload sequentially over its `Range`
//!   (`sequential`; an adapter's cost is the parent's, not the workers');
//! * **feedable**: worker ÷ parent, the projected ceiling: a parent that
//!   spends `p` ns per item while a worker spends `w` keeps at most `w / p`
//!   workers busy, however many cores there are;
//! * **speed-up**: the sequential child's wall time ÷ the map's (primes
//!   only: `x * 2` is no work, there is nothing to speed up).
//!
//! Two workloads, each over a `Range` and over the same range behind an
//! iterator adapter that hides its length (`.filter(|_| true)`), since the
//! targets must hold for any iterator: the primes seed (`is_prime` over
//! `10..2_500_000`, ~85 ns an item) and `x * 2` over 2·10^6 `u64` (no work
//! at all). Automatic chunks everywhere. The peer is Python's
//! `multiprocessing.Pool(2).map`, measured the same way by
//! `benches/python/scaling.py` (each measurement a fresh process; its own
//! chunk size and 10 000, a first map and a next map), skipped with a
//! message if python3 cannot run.
//!
//! Every measurement runs `samples()` times (at most 5; Python's at most
//! 3), the measurements interleaved round by round so that a noisy
//! neighbour hurts them alike; the tables show min / median.
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --bench scaling [-- primes|doubles]
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::ops::Range;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ProcessPoolExecutor};

#[path = "harness.rs"]
mod harness;

use harness::{python_samples, ratio_figure, report, samples, Row, Unit, OURS};

/// The environment variable that makes this binary one measurement.
const CHILD: &str = "CONCURRENT_FUTURES_BENCH_SCALING";

/// The primes seed's input.
const PRIMES: Range<u64> = 10..2_500_000;
/// The primes in [`PRIMES`]: π(2 500 000) = 183 072, less 2, 3, 5 and 7.
const PRIMES_IN_RANGE: usize = 183_068;
/// The items of the `x * 2` workload: `0..DOUBLES`.
const DOUBLES: u64 = 2_000_000;
/// How the table lines name a fresh pool's first map and a map after one.
const FIRST: &str = "first map";
const NEXT: &str = "next map";
/// The pools' sizes.
const WORKER_COUNTS: [usize; 2] = [1, 2];
/// The workers of the lines judged, and of Python's pools.
const JUDGED_WORKERS: usize = 2;
/// Python's chunk sizes (see `benches/python/scaling.py`): its
/// configurations for a fresh pool's first map and for a map after one,
/// and their label.
const PYTHON_CONFIGS: [(&str, &str, &str); 2] = [
    ("pool:default", "warm:default", "its own chunk size"),
    ("pool:10000", "warm:10000", "chunksize=10000"),
];

/// DESIGN.md §5 and issue 12's targets, ns per item and ratios.
const PARENT_TARGET_NS: f64 = 4.0;
const PRIMES_BEYOND_TARGET_NS: f64 = 3.0;
const DOUBLES_BEYOND_TARGET_NS: f64 = 4.0;
const FEEDABLE_TARGET: f64 = 24.0;
const SPEEDUP_TARGETS: [(usize, f64); 2] = [(1, 0.95), (2, 1.8)];

/// How long a pool's workers may take to come up before the measurement
/// gives up.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Workload {
    Primes,
    Doubles,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Primes, Workload::Doubles];

    /// The name on the command line, in [`CHILD`] and in Python's output.
    fn key(self) -> &'static str {
        match self {
            Workload::Primes => "primes",
            Workload::Doubles => "doubles",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Workload::Primes => "primes seed: is_prime over 10..2 500 000",
            Workload::Doubles => "x*2 over 2·10^6 u64",
        }
    }

    fn items(self) -> u64 {
        match self {
            Workload::Primes => PRIMES.end - PRIMES.start,
            Workload::Doubles => DOUBLES,
        }
    }

    /// Whether a speed-up over sequential Rust means anything: `x * 2`
    /// is no work at all, so its sequential run takes a fraction of a
    /// millisecond and a pool can only be slower.
    fn has_speedup(self) -> bool {
        self == Workload::Primes
    }

    fn from_key(key: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.key() == key)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Input {
    /// The `Range` itself.
    Range,
    /// The range behind `.filter(|_| true)`: no length, no `ExactSizeIterator`.
    Adapter,
    /// The range cut in [`BATCHES`] consecutive maps on the same pool, as a
    /// program that maps batch after batch does: what a map costs to start
    /// (its first chunks, its buffers) counts that many times.
    Batches,
}

/// The maps of [`Input::Batches`].
const BATCHES: u64 = 10;

impl Input {
    const ALL: [Input; 3] = [Input::Range, Input::Adapter, Input::Batches];

    fn key(self) -> &'static str {
        match self {
            Input::Range => "range",
            Input::Adapter => "adapter",
            Input::Batches => "batches",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Input::Range => "a Range",
            Input::Adapter => "an iterator adapter, .filter(|_| true)",
            Input::Batches => "ten maps of a tenth each, one after another",
        }
    }

    fn from_key(key: &str) -> Option<Input> {
        Input::ALL.into_iter().find(|i| i.key() == key)
    }
}

/// The workload column of the rows `report` writes.
fn row_workload(workload: Workload, input: Input) -> &'static str {
    match (workload, input) {
        (Workload::Primes, Input::Range) => "primes, Range",
        (Workload::Primes, Input::Adapter) => "primes, iterator adapter",
        (Workload::Doubles, Input::Range) => "x*2, Range",
        (Workload::Doubles, Input::Adapter) => "x*2, iterator adapter",
        (Workload::Primes, Input::Batches) => "primes, 10 batches",
        (Workload::Doubles, Input::Batches) => "x*2, 10 batches",
    }
}

/// One measurement, in a process of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Spec {
    /// The workload run sequentially over its `Range`, on this process:
    /// the work itself (what a worker cannot avoid: `f` and the loop), and
    /// the time every map's speed-up is measured against, whatever its
    /// input.
    Sequential(Workload),
    /// A pool of this many workers started, warmed up and shut down: the
    /// fixed cost.
    Idle(usize),
    /// The workload on a fresh pool of this many workers: its first map.
    Map(Workload, Input, usize),
    /// The workload twice on one pool of this many workers, the second
    /// map measured alone: what a map costs a pool that has mapped
    /// before, without the one-off costs of a pool's first map.
    Warm(Workload, Input, usize),
}

impl Spec {
    fn encode(self) -> String {
        match self {
            Spec::Sequential(w) => format!("sequential {}", w.key()),
            Spec::Idle(n) => format!("idle {n}"),
            Spec::Map(w, i, n) => format!("map {} {} {n}", w.key(), i.key()),
            Spec::Warm(w, i, n) => format!("warm {} {} {n}", w.key(), i.key()),
        }
    }

    fn decode(text: &str) -> Option<Spec> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["sequential", w] => Some(Spec::Sequential(Workload::from_key(w)?)),
            ["idle", n] => Some(Spec::Idle(n.parse().ok()?)),
            ["map", w, i, n] => Some(Spec::Map(
                Workload::from_key(w)?,
                Input::from_key(i)?,
                n.parse().ok()?,
            )),
            ["warm", w, i, n] => Some(Spec::Warm(
                Workload::from_key(w)?,
                Input::from_key(i)?,
                n.parse().ok()?,
            )),
            _ => None,
        }
    }
}

/// What one measurement reports, in seconds.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// The map's (or the sequential run's) wall time; 0 for an idle pool.
    wall: f64,
    /// The measuring process's own CPU (user + system).
    parent: f64,
    /// Its reaped children's CPU: the workers'.
    workers: f64,
}

impl Sample {
    fn parse(text: &str) -> Option<Sample> {
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        let mut next = || fields.next()?.ok();
        Some(Sample {
            wall: next()?,
            parent: next()?,
            workers: next()?,
        })
    }
}

// ------------------------------------------------------------ the work

/// Trial division by the odd numbers up to the square root, as the
/// tutorials write it (an even `n`, 2 included, is not prime).
fn is_prime(n: u64) -> bool {
    if n.is_multiple_of(2) {
        return false;
    }
    let root = n.isqrt();
    let mut divisor = 3;
    while divisor <= root {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

fn double(x: u64) -> u64 {
    x * 2
}

/// The expected wrapping sum of `double` over `0..DOUBLES`.
fn doubles_sum() -> u64 {
    DOUBLES * (DOUBLES - 1)
}

fn count_primes(flags: impl Iterator<Item = Result<bool, Error>>) {
    let count = flags
        .filter(|flag| *flag.as_ref().expect("no item fails"))
        .count();
    assert_eq!(count, PRIMES_IN_RANGE, "primes in 10..2 500 000");
}

fn sum_doubles(values: impl Iterator<Item = Result<u64, Error>>) {
    let sum = values
        .map(|value| value.expect("no item fails"))
        .fold(0, u64::wrapping_add);
    assert_eq!(sum, doubles_sum(), "the sum of 2x over 0..2·10^6");
}

/// The CPU time (user + system) `getrusage(who)` reports, in seconds.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`, as getrusage wants.
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A pool of `workers` whose every worker is up (started and greeted), so
/// that the map's wall time does not include their start.
fn started_pool(workers: usize) -> ProcessPoolExecutor {
    let pool = ProcessPoolExecutor::new(workers).expect("a process pool");
    let deadline = Instant::now() + STARTUP_LIMIT;
    while pool.worker_pids().len() < workers {
        assert!(
            Instant::now() < deadline,
            "the pool's {workers} workers are not up after {STARTUP_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    pool
}

fn run_sequential(workload: Workload) {
    match workload {
        Workload::Primes => {
            let count = black_box(PRIMES).filter(|&n| is_prime(n)).count();
            assert_eq!(count, PRIMES_IN_RANGE);
        }
        Workload::Doubles => {
            let sum = black_box(0..DOUBLES).map(double).fold(0, u64::wrapping_add);
            assert_eq!(sum, doubles_sum());
        }
    }
}

fn run_map(pool: &ProcessPoolExecutor, workload: Workload, input: Input) {
    match (workload, input) {
        (Workload::Primes, Input::Range) => count_primes(pool.map(is_prime, black_box(PRIMES))),
        (Workload::Primes, Input::Adapter) => {
            count_primes(pool.map(is_prime, black_box(PRIMES).filter(|_| true)))
        }
        (Workload::Doubles, Input::Range) => sum_doubles(pool.map(double, black_box(0..DOUBLES))),
        (Workload::Doubles, Input::Adapter) => {
            sum_doubles(pool.map(double, black_box(0..DOUBLES).filter(|_| true)))
        }
        (Workload::Primes, Input::Batches) => {
            let step = (PRIMES.end - PRIMES.start) / BATCHES;
            let mut count = 0;
            for b in 0..BATCHES {
                let start = PRIMES.start + b * step;
                let end = if b + 1 == BATCHES {
                    PRIMES.end
                } else {
                    start + step
                };
                // Each batch's map ends (and is dropped) before the next.
                count += pool
                    .map(is_prime, black_box(start..end))
                    .filter(|flag| *flag.as_ref().expect("no item fails"))
                    .count();
            }
            assert_eq!(count, PRIMES_IN_RANGE, "primes in 10..2 500 000");
        }
        (Workload::Doubles, Input::Batches) => {
            let step = DOUBLES / BATCHES;
            let mut sum = 0u64;
            for b in 0..BATCHES {
                sum = pool
                    .map(double, black_box(b * step..(b + 1) * step))
                    .map(|value| value.expect("no item fails"))
                    .fold(sum, u64::wrapping_add);
            }
            assert_eq!(sum, doubles_sum(), "the sum of 2x over 0..2·10^6");
        }
    }
}

/// One measurement, in this (fresh) process: prints `WALL PARENT WORKERS`.
fn measure_here(spec: Spec) {
    let parent_before = cpu_seconds(libc::RUSAGE_SELF);
    let workers_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let mut wall = 0.0;
    match spec {
        Spec::Sequential(workload) => {
            let start = Instant::now();
            run_sequential(workload);
            wall = start.elapsed().as_secs_f64();
        }
        Spec::Idle(workers) => {
            let pool = started_pool(workers);
            pool.shutdown();
        }
        Spec::Map(workload, input, workers) => {
            let pool = started_pool(workers);
            let start = Instant::now();
            run_map(&pool, workload, input);
            wall = start.elapsed().as_secs_f64();
            // Reaps the workers, whose CPU only then counts as the
            // children's.
            pool.shutdown();
        }
        Spec::Warm(workload, input, workers) => {
            let pool = started_pool(workers);
            run_map(&pool, workload, input);
            let pids = pool.worker_pids();
            let workers_before = workers_cpu_seconds(&pids);
            let parent_before = cpu_seconds(libc::RUSAGE_SELF);
            let start = Instant::now();
            run_map(&pool, workload, input);
            let wall = start.elapsed().as_secs_f64();
            let parent = cpu_seconds(libc::RUSAGE_SELF) - parent_before;
            let workers = workers_cpu_seconds(&pids) - workers_before;
            assert_eq!(pool.worker_pids(), pids, "no worker was replaced");
            pool.shutdown();
            println!("{wall:e} {parent:e} {workers:e}");
            return;
        }
    }
    let parent = cpu_seconds(libc::RUSAGE_SELF) - parent_before;
    let workers = cpu_seconds(libc::RUSAGE_CHILDREN) - workers_before;
    println!("{wall:e} {parent:e} {workers:e}");
}

/// The CPU time the processes `pids` have spent so far, every thread's,
/// in seconds ([`harness::thread_run_seconds`]). A live worker's CPU
/// cannot come from `getrusage`, which counts a child only once it is
/// reaped. A thread that ends between the listing and the read is left
/// out (a worker's threads live as long as it does).
fn workers_cpu_seconds(pids: &[u32]) -> f64 {
    let mut seconds = 0.0;
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap_or_else(|e| panic!("worker {pid}'s threads: {e}"));
        for task in tasks.flatten() {
            seconds += harness::thread_run_seconds(&task.path()).unwrap_or(0.0);
        }
    }
    seconds
}

/// Runs `spec` in a fresh copy of this binary.
fn measure_in_child(spec: Spec) -> Option<Sample> {
    let output = Command::new("/proc/self/exe")
        .env(CHILD, spec.encode())
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "scaling: the measurement '{}' failed: {}",
            spec.encode(),
            output.status
        );
        return None;
    }
    Sample::parse(&String::from_utf8_lossy(&output.stdout))
}

// ----------------------------------------------------------- the figures

/// Min and median of `values` (not empty).
fn min_median(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[0], values[values.len() / 2])
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    min_median(values.into_iter().collect()).1
}

/// Every sample of one measurement.
type Samples = [Sample];

/// One pool configuration's per-item figures, one value per sample: ns
/// per item for the CPU figures, plain ratios for the others.
struct Figures {
    wall: Vec<f64>,
    speedup: Vec<f64>,
    parent: Vec<f64>,
    worker: Vec<f64>,
    beyond: Vec<f64>,
    feedable: Vec<f64>,
}

impl Figures {
    /// The figures of the `map` samples over `items`, against the medians
    /// of the `sequential` run and of the `idle` pool, if the samples
    /// include a pool's fixed cost (a first map's do; a warm one's were
    /// taken around the map alone).
    fn new(items: u64, map: &Samples, sequential: &Samples, idle: Option<&Samples>) -> Figures {
        let ns = |seconds: f64| seconds * 1e9 / items as f64;
        let idle_parent = idle.map_or(0.0, |idle| median(idle.iter().map(|s| s.parent)));
        let idle_workers = idle.map_or(0.0, |idle| median(idle.iter().map(|s| s.workers)));
        let work = ns(median(sequential.iter().map(|s| s.parent)));
        let sequential_wall = median(sequential.iter().map(|s| s.wall));
        let parent: Vec<f64> = map.iter().map(|s| ns(s.parent - idle_parent)).collect();
        let worker: Vec<f64> = map.iter().map(|s| ns(s.workers - idle_workers)).collect();
        Figures {
            wall: map.iter().map(|s| s.wall).collect(),
            speedup: map.iter().map(|s| sequential_wall / s.wall).collect(),
            beyond: worker.iter().map(|w| w - work).collect(),
            feedable: worker.iter().zip(&parent).map(|(w, p)| w / p).collect(),
            parent,
            worker,
        }
    }
}

fn median_of(values: &[f64]) -> f64 {
    median(values.iter().copied())
}

/// `min / median` of `values`, each shown by `show`.
fn both(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let (min, median) = min_median(values.to_vec());
    format!("{} / {}", show(min), show(median))
}

fn ns_text(ns: f64) -> String {
    format!("{ns:.1}")
}

fn times_text(x: f64) -> String {
    format!("{}×", ratio_figure(x))
}

fn ms_text(seconds: f64) -> String {
    format!("{:.1}", seconds * 1e3)
}

#[path = "scaling_python.rs"]
mod python;

use python::python;

#[path = "scaling_report.rs"]
mod report;

use report::{figures_line, sequential_line, table_header, Judged};

fn main() {
    concurrent_futures::init();
    if let Some(spec) = std::env::var_os(CHILD) {
        let spec = spec.to_string_lossy();
        let spec =
            Spec::decode(&spec).unwrap_or_else(|| panic!("{CHILD}={spec}: not a measurement"));
        measure_here(spec);
        return;
    }
    let wanted = harness::chosen_workloads();
    let workloads: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| wanted(w.key()))
        .collect();
    let rounds = samples().min(5);
    println!(
        "scaling bench: CPU per item of each side of a process-pool map, by getrusage, \
         each measurement a fresh process, rounds: {rounds} (Python: {}); min / median",
        python_samples().min(3)
    );
    println!();
    let started = Instant::now();

    let mut specs: Vec<Spec> = WORKER_COUNTS.into_iter().map(Spec::Idle).collect();
    for &workload in &workloads {
        specs.push(Spec::Sequential(workload));
        for input in Input::ALL {
            for workers in WORKER_COUNTS {
                specs.push(Spec::Map(workload, input, workers));
                specs.push(Spec::Warm(workload, input, workers));
            }
        }
    }
    let mut measured: HashMap<Spec, Vec<Sample>> = HashMap::new();
    for round in 0..rounds {
        eprintln!("scaling: round {} of {rounds}…", round + 1);
        for &spec in &specs {
            let Some(sample) = measure_in_child(spec) else {
                eprintln!(
                    "scaling: the measurement '{}' gave no figures",
                    spec.encode()
                );
                std::process::exit(1);
            };
            measured.entry(spec).or_default().push(sample);
        }
    }
    let python = python(&workloads);
    if python.is_none() {
        println!(
            "Python multiprocessing.Pool: skipped: python3 not available or the script failed"
        );
        println!();
    }

    let idle = |workers: usize| &measured[&Spec::Idle(workers)][..];
    println!(
        "the pool's fixed cost (start, workers up, shutdown), subtracted from the first maps below:"
    );
    for workers in WORKER_COUNTS {
        let plural = if workers == 1 { "" } else { "s" };
        println!(
            "  ours, {workers} worker{plural}: parent {} ms, workers {} ms",
            both(
                &idle(workers).iter().map(|s| s.parent).collect::<Vec<_>>(),
                ms_text
            ),
            both(
                &idle(workers).iter().map(|s| s.workers).collect::<Vec<_>>(),
                ms_text
            ),
        );
    }
    if let Some(python) = &python {
        if let Some(idle) = python.idle() {
            println!(
                "  Python mp.Pool({JUDGED_WORKERS}): parent {} ms, workers {} ms",
                both(&idle.iter().map(|s| s.parent).collect::<Vec<_>>(), ms_text),
                both(&idle.iter().map(|s| s.workers).collect::<Vec<_>>(), ms_text),
            );
        }
    }
    println!();

    let mut rows = Vec::new();
    let mut scores = Vec::new();
    for &workload in &workloads {
        let items = workload.items();
        // Python's figures, the same for every input (a Python range is
        // what its users pass): a fresh pool's first map, and a map after
        // one.
        let python_figures = |warm: bool| -> Vec<(&'static str, Figures)> {
            python
                .as_ref()
                .and_then(|python| {
                    let sequential = python.get(workload, "sequential")?;
                    let idle = python.idle()?;
                    Some(
                        PYTHON_CONFIGS
                            .iter()
                            .filter_map(|(first, next, label)| {
                                let figures = if warm {
                                    Figures::new(
                                        items,
                                        python.get(workload, next)?,
                                        sequential,
                                        None,
                                    )
                                } else {
                                    let pool = python.get(workload, first)?;
                                    Figures::new(items, pool, sequential, Some(idle))
                                };
                                Some((*label, figures))
                            })
                            .collect(),
                    )
                })
                .unwrap_or_default()
        };
        let python_first = python_figures(false);
        let python_next = python_figures(true);
        let sequential = &measured[&Spec::Sequential(workload)][..];
        let work: Vec<f64> = sequential
            .iter()
            .map(|s| s.parent * 1e9 / items as f64)
            .collect();
        let sequential_walls: Vec<f64> = sequential.iter().map(|s| s.wall).collect();
        for input in Input::ALL {
            table_header(&format!(
                "{} over {} ({items} items)",
                workload.title(),
                input.title()
            ));
            sequential_line("sequential Rust (the work)", items, sequential, workload);
            let mut ours = HashMap::new();
            let mut first = HashMap::new();
            for workers in WORKER_COUNTS {
                let plural = if workers == 1 { "" } else { "s" };
                let map = &measured[&Spec::Map(workload, input, workers)][..];
                let warm = &measured[&Spec::Warm(workload, input, workers)][..];
                for (which, figures) in [
                    (
                        FIRST,
                        Figures::new(items, map, sequential, Some(idle(workers))),
                    ),
                    (NEXT, Figures::new(items, warm, sequential, None)),
                ] {
                    figures_line(
                        &format!("{OURS}, {workers} worker{plural}, {which}"),
                        &figures,
                        workload.has_speedup(),
                    );
                    let name = format!("{OURS} {workers} worker{plural}, {which}");
                    let workload_name = row_workload(workload, input);
                    for (figure, values) in [
                        ("parent CPU", &figures.parent),
                        ("worker CPU", &figures.worker),
                        ("worker CPU beyond the work", &figures.beyond),
                    ] {
                        rows.push(Row::external(
                            workload_name,
                            format!("{name}: {figure}"),
                            Unit::Per("item"),
                            1,
                            median_of(values) * 1e-9,
                        ));
                    }
                    if which == FIRST {
                        first.insert(workers, figures);
                    } else {
                        ours.insert(workers, figures);
                    }
                }
            }
            if input == Input::Range {
                let python_sequential = python
                    .as_ref()
                    .and_then(|python| python.get(workload, "sequential"));
                if let Some(sequential) = python_sequential {
                    sequential_line("Python sequential (the work)", items, sequential, workload);
                }
                for (which, python_figures) in [(FIRST, &python_first), (NEXT, &python_next)] {
                    for (label, figures) in python_figures {
                        figures_line(
                            &format!("Python mp.Pool({JUDGED_WORKERS}), {label}, {which}"),
                            figures,
                            workload.has_speedup(),
                        );
                    }
                }
                if !python_first.is_empty() {
                    println!(
                        "  (Python's speed-up and work are against Python's own sequential run)"
                    );
                }
            }
            println!();

            let judged = Judged {
                workload,
                input,
                ours: &ours,
                first: &first,
                python: &python_next,
                python_first: &python_first,
            };
            let (beyond_target, feedable_target) = match workload {
                Workload::Primes => (PRIMES_BEYOND_TARGET_NS, Some(FEEDABLE_TARGET)),
                Workload::Doubles => (DOUBLES_BEYOND_TARGET_NS, None),
            };
            scores.extend(judged.cpu_line(
                "parent CPU per item",
                |f| &f.parent,
                Some(PARENT_TARGET_NS),
            ));
            scores.extend(judged.first_map_line());
            scores.extend(judged.cpu_line(
                &format!(
                    "worker CPU per item beyond the work ({} ns)",
                    ns_text(median_of(&work))
                ),
                |f| &f.beyond,
                Some(beyond_target),
            ));
            scores.extend(judged.feedable_line(feedable_target));
            if workload == Workload::Primes {
                for (workers, target) in SPEEDUP_TARGETS {
                    scores.extend(judged.speedup_line(
                        workers,
                        target,
                        median_of(&sequential_walls),
                    ));
                }
            }
        }
    }
    if let Some(python) = &python {
        println!("Python's start method: {}", python.method);
    }
    println!(
        "feedable = worker CPU per item ÷ parent CPU per item: the most workers one parent \
         keeps busy; on a 32-core machine the map's speed-up tops out near min(32, feedable)"
    );
    report("scaling", &rows, &scores);
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
