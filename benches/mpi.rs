//! `MpiPoolExecutor` against mpi4py.futures (issue 13), measured the same
//! way in the same run:
//!
//! 1. **no-op round trip**, `submit(noop, 0).result()` in a loop on one
//!    worker rank (`mpirun -n 2`), in direct mode and with the default
//!    local pool on the rank; mpi4py's `MPIPoolExecutor` the same way;
//! 2. **the primes seed**, `is_prime` by trial division over
//!    10..2 500 000 on two worker ranks (`mpirun -n 3`): sequential Rust on
//!    rank 0 first, then the pool's `map` (automatic chunks), direct and
//!    with local pools of one worker each; mpi4py's `map` with
//!    `chunksize=10000` against Python's own sequential run, in its job;
//! 3. **chunked `map(x * 2)`** over 2·10^6 `u64` through the MPI pool
//!    (`mpirun -n 3`, default local pools, automatic chunks), against
//!    `ProcessPoolExecutor::new(2)` in a plain process and mpi4py's `map`
//!    (`chunksize=10000`): items per second.
//!
//! Started by cargo, this binary is the launcher: each sample is one job,
//! this same binary started under `mpirun` (or, for the local pool, as a
//! plain child), whose rank 0 builds the pool, warms it up, times the
//! workload once and prints `measured KEY ITEMS WALL CPU` (its wall time
//! and its own CPU, `getrusage(RUSAGE_SELF)`: every thread of rank 0);
//! every other rank serves from `init()`. The maps (primes, `x * 2`) warm
//! up with the same map, timed apart (`first`): the figures judged are the
//! pool's second map, what each map costs a pool that runs for long, as in
//! `benches/scaling.rs`; a pool's first map also pays once for what later
//! maps reuse (message buffers of a few MiB faulted in, ~3 000 pages on
//! each worker rank and ~6 000 on rank 0 for the primes map, at 2–4 µs a
//! page on these machines). The first map's speed-up is shown beside. mpi4py's jobs are
//! `mpirun -n N python3 -m mpi4py.futures benches/python/mpi_peer.py …`,
//! printing the same lines. Around each job the launcher reads its own
//! `getrusage(RUSAGE_CHILDREN)`: the whole job's CPU (mpirun, every rank,
//! their reaped children). That includes starting and stopping MPI and
//! the pool, so an *idle* job of each configuration (the same start,
//! warm-up and shutdown, nothing timed) runs beside it, and the job's CPU
//! per item is `(job − median idle job − rank 0's CPU in its sequential
//! run) ÷ items`.
//!
//! Jobs are interleaved round by round (ours, the peer's, the idle ones),
//! so that a noisy neighbour hurts them alike. Rounds: `samples()` for
//! ours, `python_samples()` for mpi4py (`--quick`: at most 3 and 2). The
//! tables show median (min–max).
//!
//! Needs Open MPI (`mpirun`, and `mpicc` to build) and, for the peer,
//! mpi4py for `/usr/bin/python3` (another interpreter:
//! `CONCURRENT_FUTURES_BENCH_MPI_PYTHON`); a missing peer is skipped with
//! a message.
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --features mpi --bench mpi [-- --quick] [-- noop|primes|map]
//! ```

use std::hint::black_box;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use concurrent_futures::mpi::MpiPoolExecutor;
use concurrent_futures::{Error, Executor, ProcessPoolExecutor};

#[path = "harness.rs"]
mod harness;

use harness::{human, plain, python_samples, ratio_figure, report, samples, Row, Score, Unit};
use harness::{Verdict, OURS};

/// The environment variable that makes this binary a plain (non-MPI)
/// measurement.
const CHILD: &str = "CONCURRENT_FUTURES_BENCH_MPI";
/// The Python with mpi4py, unless this variable names another.
const PYTHON_VAR: &str = "CONCURRENT_FUTURES_BENCH_MPI_PYTHON";
const DEFAULT_PYTHON: &str = "/usr/bin/python3";

/// Round trips before the timed ones, and timed: as many as mpi4py's (in
/// its script), about a second at its ~300 µs a round trip.
const NOOP_WARMUP: u64 = 300;
const NOOP_TASKS: u64 = 3_000;
const PRIMES: Range<u64> = 10..2_500_000;
/// π(2 500 000) = 183 072, less 2, 3, 5 and 7.
const PRIMES_IN_RANGE: usize = 183_068;
const DOUBLES: u64 = 2_000_000;

/// Issue 13's goals.
const NOOP_DIRECT_TARGET: f64 = 10e-6;
const NOOP_LOCAL_TARGET: f64 = 25e-6;
const PRIMES_DIRECT_TARGET: f64 = 1.7;
const PRIMES_LOCAL_TARGET: f64 = 1.5;

/// A job that runs longer than this is killed, and the bench fails.
const JOB_LIMIT: Duration = Duration::from_secs(600);

const SECTION: &str = "MPI pool";

// ------------------------------------------------------------- the work

fn noop(x: u64) -> u64 {
    x
}

/// Trial division, as in `examples/mpi_primes.rs`.
fn is_prime(n: u64) -> bool {
    // The same `%` as the seed and the Python peer, on every toolchain.
    #![allow(unknown_lints, clippy::manual_is_multiple_of)]
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut divisor = 3;
    while divisor * divisor <= n {
        if n % divisor == 0 {
            return false;
        }
        divisor += 2;
    }
    true
}

fn double(x: u64) -> u64 {
    x * 2
}

// -------------------------------------------------------- the workloads

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Noop,
    Primes,
    Map,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Noop, Workload::Primes, Workload::Map];

    fn key(self) -> &'static str {
        match self {
            Workload::Noop => "noop",
            Workload::Primes => "primes",
            Workload::Map => "map",
        }
    }

    fn from_key(key: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.key() == key)
    }

    fn title(self) -> &'static str {
        match self {
            Workload::Noop => "no-op round trip, submit(noop, 0).result(), mpirun -n 2",
            Workload::Primes => "primes seed, is_prime over 10..2 500 000, mpirun -n 3",
            Workload::Map => "map(x * 2) over 2·10^6 u64, 2 workers",
        }
    }

    /// The name of its rows in the scoreboard's file.
    fn row_workload(self) -> &'static str {
        match self {
            Workload::Noop => "MPI no-op round trip",
            Workload::Primes => "MPI primes seed",
            Workload::Map => "MPI map x*2",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::Noop => "task",
            Workload::Primes | Workload::Map => "item",
        }
    }
}

/// Who runs the workload, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    /// `MpiPoolExecutor::builder().direct()`.
    Direct,
    /// `MpiPoolExecutor::new()`: local pools of the node's share of CPUs.
    Local,
    /// `MpiPoolExecutor::builder().workers_per_rank(1)`.
    LocalOne,
    /// `ProcessPoolExecutor::new(2)` in a plain process, no MPI.
    Plain,
    /// mpi4py.futures' `MPIPoolExecutor`.
    Mpi4py,
}

impl Runner {
    fn key(self) -> &'static str {
        match self {
            Runner::Direct => "direct",
            Runner::Local => "local",
            Runner::LocalOne => "local1",
            Runner::Plain => "plain",
            Runner::Mpi4py => "mpi4py",
        }
    }

    fn from_key(key: &str) -> Option<Runner> {
        [
            Runner::Direct,
            Runner::Local,
            Runner::LocalOne,
            Runner::Plain,
            Runner::Mpi4py,
        ]
        .into_iter()
        .find(|r| r.key() == key)
    }

    fn ours(self) -> bool {
        self != Runner::Mpi4py
    }
}

/// One line of a table: a workload on a runner, over `ranks` MPI ranks
/// (0: no MPI).
#[derive(Clone, Copy, Debug)]
struct Config {
    workload: Workload,
    runner: Runner,
    ranks: usize,
    label: &'static str,
}

const CONFIGS: [Config; 9] = [
    Config {
        workload: Workload::Noop,
        runner: Runner::Direct,
        ranks: 2,
        label: "ours, MpiPoolExecutor direct",
    },
    Config {
        workload: Workload::Noop,
        runner: Runner::Local,
        ranks: 2,
        label: "ours, MpiPoolExecutor local pools (default)",
    },
    Config {
        workload: Workload::Noop,
        runner: Runner::Mpi4py,
        ranks: 2,
        label: "mpi4py.futures MPIPoolExecutor",
    },
    Config {
        workload: Workload::Primes,
        runner: Runner::Direct,
        ranks: 3,
        label: "ours, MpiPoolExecutor direct",
    },
    Config {
        workload: Workload::Primes,
        runner: Runner::LocalOne,
        ranks: 3,
        label: "ours, MpiPoolExecutor workers_per_rank(1)",
    },
    Config {
        workload: Workload::Primes,
        runner: Runner::Mpi4py,
        ranks: 3,
        label: "mpi4py.futures map, chunksize=10000",
    },
    Config {
        workload: Workload::Map,
        runner: Runner::Local,
        ranks: 3,
        label: "ours, MpiPoolExecutor local pools, -n 3",
    },
    Config {
        workload: Workload::Map,
        runner: Runner::Plain,
        ranks: 0,
        label: "ours, ProcessPoolExecutor::new(2), no MPI",
    },
    Config {
        workload: Workload::Map,
        runner: Runner::Mpi4py,
        ranks: 3,
        label: "mpi4py.futures map, chunksize=10000, -n 3",
    },
];

// ------------------------------------------------- rank 0 of one job

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

/// Runs `work` once and prints its `measured` line: wall time and this
/// process's CPU.
fn timed(key: &str, items: u64, work: impl FnOnce()) {
    let threads = std::env::var_os(THREADS_VAR).is_some().then(thread_cpu);
    let cpu = cpu_seconds(libc::RUSAGE_SELF);
    let start = Instant::now();
    work();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu;
    println!("measured {key} {items} {wall:e} {cpu:e}");
    if let Some(before) = threads {
        for (tid, (name, after)) in thread_cpu() {
            let spent = after - before.get(&tid).map_or(0.0, |(_, cpu)| *cpu);
            if spent > 0.0 {
                eprintln!("thread {key} {name} {:.1} ms", spent * 1e3);
            }
        }
    }
}

/// With this variable set, a timed run also prints each thread's CPU
/// (for finding where rank 0's time goes).
const THREADS_VAR: &str = "CONCURRENT_FUTURES_BENCH_MPI_THREADS";

/// Each thread of this process: its name and CPU seconds so far, by
/// `/proc/self/task/*/schedstat` (nanoseconds on the CPU).
fn thread_cpu() -> std::collections::BTreeMap<u64, (String, f64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm"));
        let (Ok(name), Some(seconds)) = (name, harness::thread_run_seconds(&task.path())) else {
            continue;
        };
        let tid = task.file_name().to_string_lossy().parse().unwrap_or(0);
        out.insert(tid, (name.trim().replace(' ', "_"), seconds));
    }
    out
}

fn count_primes(flags: impl Iterator<Item = Result<bool, Error>>) -> usize {
    flags
        .filter(|flag| *flag.as_ref().expect("no item fails"))
        .count()
}

fn sum_doubles(values: impl Iterator<Item = Result<u64, Error>>) -> u64 {
    values
        .map(|value| value.expect("no item fails"))
        .fold(0, u64::wrapping_add)
}

/// The pool's part of a job: warm-up, then (if `timed`) the workload.
fn run_on(pool: &impl Executor, workload: Workload, timed_run: bool) {
    match workload {
        Workload::Noop => {
            for _ in 0..NOOP_WARMUP {
                assert_eq!(pool.submit(noop, 0).result(), Ok(0));
            }
            if timed_run {
                timed("pool", NOOP_TASKS, || {
                    for _ in 0..NOOP_TASKS {
                        let got = pool.submit(noop, black_box(0)).result();
                        assert_eq!(got, Ok(0));
                    }
                });
            }
        }
        Workload::Primes => {
            // The timed map is the pool's second: the first pays once
            // for what later maps reuse (see the module docs).
            let first = || {
                let count = count_primes(pool.map(is_prime, black_box(PRIMES)));
                assert_eq!(count, PRIMES_IN_RANGE);
            };
            if timed_run {
                timed("first", PRIMES.end - PRIMES.start, first);
            } else {
                first();
            }
            if timed_run {
                timed("pool", PRIMES.end - PRIMES.start, || {
                    let count = count_primes(pool.map(is_prime, black_box(PRIMES)));
                    assert_eq!(count, PRIMES_IN_RANGE);
                });
            }
        }
        Workload::Map => {
            let first = || {
                let sum = sum_doubles(pool.map(double, black_box(0..DOUBLES)));
                assert_eq!(sum, DOUBLES * (DOUBLES - 1));
            };
            if timed_run {
                timed("first", DOUBLES, first);
            } else {
                first();
            }
            if timed_run {
                timed("pool", DOUBLES, || {
                    let sum = sum_doubles(pool.map(double, black_box(0..DOUBLES)));
                    assert_eq!(sum, DOUBLES * (DOUBLES - 1));
                });
            }
        }
    }
}

/// Rank 0 of an MPI job, or the plain child: one job's measurement.
fn measure_here(workload: Workload, runner: Runner, timed_run: bool) {
    if workload == Workload::Primes && timed_run {
        // Before the pool: the worker ranks wait for its greeting, napping.
        timed("sequential", PRIMES.end - PRIMES.start, || {
            let count = black_box(PRIMES).filter(|&n| is_prime(n)).count();
            assert_eq!(count, PRIMES_IN_RANGE);
        });
    }
    let mpi = |built: Result<MpiPoolExecutor, Error>| {
        let pool = built.expect("the MPI pool");
        println!("info {} {}", pool.max_workers(), pool.worker_ranks());
        pool
    };
    match runner {
        Runner::Direct => {
            let pool = mpi(MpiPoolExecutor::builder().direct().build());
            run_on(&pool, workload, timed_run);
            pool.shutdown();
        }
        Runner::Local => {
            let pool = mpi(MpiPoolExecutor::new());
            run_on(&pool, workload, timed_run);
            pool.shutdown();
        }
        Runner::LocalOne => {
            let pool = mpi(MpiPoolExecutor::builder().workers_per_rank(1).build());
            run_on(&pool, workload, timed_run);
            pool.shutdown();
        }
        Runner::Plain => {
            let pool = ProcessPoolExecutor::new(2).expect("a process pool");
            println!("info {} 0", pool.max_workers());
            run_on(&pool, workload, timed_run);
            // Reaps the workers, whose CPU only then counts as the
            // launcher's children's.
            pool.shutdown();
        }
        Runner::Mpi4py => unreachable!("mpi4py's jobs are Python's"),
    }
}

/// `WORKLOAD RUNNER TIMED`, as on the command line of a job.
fn parse_spec(words: &[String]) -> Option<(Workload, Runner, bool)> {
    match words {
        [workload, runner, timed_run] => Some((
            Workload::from_key(workload)?,
            Runner::from_key(runner)?,
            timed_run == "1",
        )),
        _ => None,
    }
}

// ------------------------------------------------------- the launcher

/// What one job printed and cost.
#[derive(Debug, Default)]
struct JobOutput {
    /// The whole job's CPU: the launcher's `RUSAGE_CHILDREN` around it.
    job_cpu: f64,
    /// The CPU every other process of the machine used meanwhile, in
    /// cores (the machine is shared): its busy time by `/proc/stat`, less
    /// the job's, over the job's wall time.
    neighbours: f64,
    /// `(max_workers, worker_ranks)`.
    info: Option<(usize, usize)>,
    /// `(key, items, wall, rank 0's CPU)`.
    measured: Vec<(String, u64, f64, f64)>,
}

impl JobOutput {
    fn get(&self, key: &str) -> Option<(u64, f64, f64)> {
        self.measured
            .iter()
            .find(|(k, ..)| k == key)
            .map(|&(_, items, wall, cpu)| (items, wall, cpu))
    }
}

fn mpirun() -> Command {
    let mut command = Command::new("mpirun");
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    command
}

fn python() -> PathBuf {
    std::env::var_os(PYTHON_VAR).map_or_else(|| PathBuf::from(DEFAULT_PYTHON), PathBuf::from)
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/mpi_peer.py")
}

/// The command of one job of `config`.
fn job_command(config: &Config, timed_run: bool) -> Command {
    let flag = if timed_run { "1" } else { "0" };
    let exe = std::env::current_exe().expect("the bench's executable");
    match config.runner {
        Runner::Plain => {
            let mut command = Command::new(exe);
            let spec = format!("{} {} {flag}", config.workload.key(), config.runner.key());
            command.env(CHILD, spec);
            command
        }
        Runner::Mpi4py => {
            let mut command = mpirun();
            command
                .arg("-n")
                .arg(config.ranks.to_string())
                .arg(python())
                .args(["-m", "mpi4py.futures"])
                .arg(peer_script())
                .args([config.workload.key(), flag]);
            command
        }
        _ => {
            let mut command = mpirun();
            command
                .arg("-n")
                .arg(config.ranks.to_string())
                .arg(exe)
                .args([config.workload.key(), config.runner.key(), flag]);
            command
        }
    }
}

/// Runs one job of `config`; exits the bench if it fails.
fn run_job(config: &Config, timed_run: bool) -> JobOutput {
    let mut command = job_command(config, timed_run);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let busy_before = machine_busy();
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {command:?}: {e}")));
    let pid = child.id();
    // A watchdog: `wait_with_output` returns once the job ends.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(JOB_LIMIT).is_err() {
            // SAFETY: signalling a child not yet reaped: mpirun passes
            // SIGTERM on to every rank.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    });
    let output = child.wait_with_output();
    let _ = done.send(());
    let _ = watchdog.join();
    let job_cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - before;
    let elapsed = started.elapsed().as_secs_f64();
    let neighbours = match (busy_before, machine_busy()) {
        (Some(before), Some(after)) => ((after - before - job_cpu) / elapsed).max(0.0),
        _ => f64::NAN,
    };
    let output = output.unwrap_or_else(|e| fail(&format!("{command:?}: {e}")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut job = JobOutput {
        job_cpu,
        neighbours,
        ..JobOutput::default()
    };
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["info", workers, ranks] => {
                job.info = workers.parse().ok().zip(ranks.parse().ok());
            }
            ["measured", key, items, wall, cpu] => {
                if let (Ok(items), Ok(wall), Ok(cpu)) = (items.parse(), wall.parse(), cpu.parse()) {
                    job.measured.push((key.to_string(), items, wall, cpu));
                }
            }
            _ => {}
        }
    }
    let complete = job.info.is_some() && (!timed_run || job.get("pool").is_some());
    if !output.status.success() || !complete {
        fail(&format!(
            "the job {command:?} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    job
}

/// The machine's busy CPU time so far, in seconds: user, nice, system,
/// irq, softirq and steal of `/proc/stat`'s `cpu` line.
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum::<f64>();
    (ticks > 0.0).then(|| busy / ticks)
}

fn fail(why: &str) -> ! {
    eprintln!("mpi bench: {why}");
    std::process::exit(1);
}

/// Whether `program args…` runs and exits 0.
fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

// ------------------------------------------------------------ figures

/// One timed job of a configuration.
#[derive(Clone, Copy, Debug)]
struct Sample {
    items: u64,
    wall: f64,
    rank0_cpu: f64,
    job_cpu: f64,
    /// Other processes' CPU meanwhile, in cores.
    neighbours: f64,
    /// The sequential run's wall time and CPU in the same job (primes).
    sequential: Option<(f64, f64)>,
    /// The wall time of the pool's first map, before the timed one
    /// (primes and `x * 2`).
    first: Option<f64>,
}

/// Every job of one configuration.
#[derive(Debug, Default)]
struct Measured {
    samples: Vec<Sample>,
    /// The idle jobs' CPU.
    idle: Vec<f64>,
    info: Option<(usize, usize)>,
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `median (min–max)` of `values`, each shown by `show`.
fn spread(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() < 2 {
        return show(median(values));
    }
    format!("{} ({}–{})", show(median(values)), show(min), show(max))
}

/// Per-sample figures of one configuration, in seconds per item (or a
/// plain ratio for the speed-up).
struct Figures {
    wall: Vec<f64>,
    rank0_cpu: Vec<f64>,
    job_cpu: Vec<f64>,
    speedup: Vec<f64>,
    /// The same speed-up, of the pool's first map.
    first_speedup: Vec<f64>,
    sequential: Vec<f64>,
    neighbours: Vec<f64>,
    items: u64,
}

impl Figures {
    fn new(measured: &Measured) -> Option<Figures> {
        let first = measured.samples.first()?;
        let idle = if measured.idle.is_empty() {
            0.0
        } else {
            median(&measured.idle)
        };
        let per_item = |s: &Sample, x: f64| x / s.items as f64;
        let samples = &measured.samples;
        Some(Figures {
            wall: samples.iter().map(|s| per_item(s, s.wall)).collect(),
            rank0_cpu: samples.iter().map(|s| per_item(s, s.rank0_cpu)).collect(),
            job_cpu: samples
                .iter()
                .map(|s| {
                    let sequential = s.sequential.map_or(0.0, |(_, cpu)| cpu);
                    per_item(s, s.job_cpu - idle - sequential)
                })
                .collect(),
            speedup: samples
                .iter()
                .filter_map(|s| s.sequential.map(|(wall, _)| wall / s.wall))
                .collect(),
            first_speedup: samples
                .iter()
                .filter_map(|s| Some(s.sequential?.0 / s.first?))
                .collect(),
            sequential: samples
                .iter()
                .filter_map(|s| s.sequential.map(|(wall, _)| per_item(s, wall)))
                .collect(),
            neighbours: samples.iter().map(|s| s.neighbours).collect(),
            items: first.items,
        })
    }
}

/// `min–max` of `values`, each shown by `show`.
fn range(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}–{}", show(min), show(max))
}

fn rate_text(seconds_per_item: f64) -> String {
    format!("{:.2} M items/s", 1e-6 / seconds_per_item)
}

fn times_text(x: f64) -> String {
    format!("{}×", ratio_figure(x))
}

/// One configuration's jobs and figures.
struct Line<'a> {
    config: &'a Config,
    measured: &'a Measured,
    figures: Option<Figures>,
}

fn print_workload(workload: Workload, lines: &[Line<'_>]) {
    let lines: Vec<&Line<'_>> = lines
        .iter()
        .filter(|line| line.config.workload == workload)
        .collect();
    if lines.is_empty() {
        return;
    }
    println!("{}", workload.title());
    let header = [
        "wall per ".to_string() + workload.unit(),
        "rank 0 CPU".into(),
        "whole job's CPU".into(),
        if workload == Workload::Primes {
            "speed-up".into()
        } else if workload == Workload::Map {
            "rate".into()
        } else {
            String::new()
        },
    ];
    println!(
        "  {:<52} {:>28} {:>28} {:>28} {:>22} {:>20}",
        "median (min–max)", header[0], header[1], header[2], header[3], "neighbours (cores)"
    );
    let peer_wall = lines
        .iter()
        .find(|line| line.config.runner == Runner::Mpi4py)
        .and_then(|line| line.figures.as_ref().map(|f| median(&f.wall)));
    for line in lines {
        let (config, measured) = (line.config, line.measured);
        let Some(figures) = &line.figures else {
            continue;
        };
        let workers = measured.info.map_or(String::new(), |(workers, ranks)| {
            if ranks == 0 {
                format!(" [{workers} workers]")
            } else {
                let plural = |n: usize| if n == 1 { "" } else { "s" };
                format!(
                    " [{ranks} rank{}, {workers} lane{}]",
                    plural(ranks),
                    plural(workers)
                )
            }
        });
        let last = match workload {
            Workload::Primes => spread(&figures.speedup, times_text),
            Workload::Map => rate_text(median(&figures.wall)),
            Workload::Noop => String::new(),
        };
        println!(
            "  {:<52} {:>28} {:>28} {:>28} {:>22} {:>20}",
            format!("{}{workers}", config.label),
            spread(&figures.wall, human),
            spread(&figures.rank0_cpu, human),
            spread(&figures.job_cpu, human),
            last,
            spread(&figures.neighbours, |x| format!("{x:.2}")),
        );
        if workload == Workload::Primes {
            let what = if config.runner.ours() {
                "  (sequential Rust in the same jobs)"
            } else {
                "  (Python sequential in the same jobs)"
            };
            println!("  {what:<52} {:>28}", spread(&figures.sequential, human));
        }
        if let (true, Some(peer)) = (config.runner.ours(), peer_wall) {
            println!(
                "  {:<52} {:>28}",
                "    wall ÷ mpi4py's",
                times_text(median(&figures.wall) / peer)
            );
        }
        let idle = &measured.idle;
        if !idle.is_empty() {
            println!(
                "  {:<52} {:>28}",
                "    (idle job's CPU, subtracted)",
                spread(idle, human)
            );
        }
    }
    println!();
}

// ------------------------------------------------------------ scores

fn find<'a>(lines: &'a [Line<'_>], workload: Workload, runner: Runner) -> Option<&'a Figures> {
    lines
        .iter()
        .find(|line| line.config.workload == workload && line.config.runner == runner)
        .and_then(|line| line.figures.as_ref())
}

fn per_unit(seconds: f64, unit: &str) -> String {
    format!("{}/{unit}", human(seconds))
}

fn noop_score(lines: &[Line<'_>], runner: Runner, what: &str, target: f64) -> Vec<Score> {
    let Some(ours) = find(lines, Workload::Noop, runner) else {
        return Vec::new();
    };
    let peer = find(lines, Workload::Noop, Runner::Mpi4py);
    let wall = median(&ours.wall);
    let show = |f: &Figures, pick: fn(&Figures) -> &[f64]| {
        let values = pick(f);
        format!(
            "{} ({})",
            per_unit(median(values), "task"),
            range(values, human)
        )
    };
    let mut scores = vec![Score {
        section: SECTION,
        what: format!("no-op round trip, {what}, 1 worker rank (-n 2)"),
        ours: show(ours, |f| &f.wall),
        peers: peer
            .map(|p| format!("mpi4py.futures {}", show(p, |f| &f.wall)))
            .into_iter()
            .collect(),
        ratio: peer.map_or_else(
            || String::from("-"),
            |p| format!("{} mpi4py", times_text(wall / median(&p.wall))),
        ),
        target: format!("≤ {}/task", harness::plain_duration(target)),
        verdict: Verdict::from_check(wall <= target),
    }];
    scores.push(Score {
        section: SECTION,
        what: format!("no-op round trip, {what}: CPU of the whole job per task"),
        ours: show(ours, |f| &f.job_cpu),
        peers: peer
            .map(|p| format!("mpi4py.futures {}", show(p, |f| &f.job_cpu)))
            .into_iter()
            .collect(),
        ratio: peer.map_or_else(
            || String::from("-"),
            |p| {
                format!(
                    "{} mpi4py",
                    times_text(median(&ours.job_cpu) / median(&p.job_cpu))
                )
            },
        ),
        target: String::from("-"),
        verdict: Verdict::NoTarget,
    });
    scores
}

fn primes_score(lines: &[Line<'_>], runner: Runner, what: &str, target: f64) -> Option<Score> {
    let ours = find(lines, Workload::Primes, runner)?;
    let peer = find(lines, Workload::Primes, Runner::Mpi4py);
    let run = |x: f64, f: &Figures| human(x * f.items as f64);
    let speedup = median(&ours.speedup);
    let mut peers = vec![format!(
        "sequential Rust {}/run",
        run(median(&ours.sequential), ours)
    )];
    if !ours.first_speedup.is_empty() {
        peers.push(format!(
            "ours, the pool's first map: {} speed-up",
            spread(&ours.first_speedup, times_text)
        ));
    }
    if let Some(p) = peer {
        peers.push(format!(
            "mpi4py.futures map {}/run, {} speed-up over Python sequential",
            run(median(&p.wall), p),
            spread(&p.speedup, times_text)
        ));
    }
    Some(Score {
        section: SECTION,
        what: format!("primes seed, 2 worker ranks (-n 3), {what}: speed-up over sequential Rust"),
        ours: format!(
            "{}/run, {} speed-up",
            run(median(&ours.wall), ours),
            spread(&ours.speedup, times_text)
        ),
        peers,
        ratio: format!("{} speed-up", times_text(speedup)),
        target: format!("≥ {}× speed-up", plain(target)),
        verdict: Verdict::from_check(speedup >= target),
    })
}

fn map_score(lines: &[Line<'_>]) -> Option<Score> {
    let ours = find(lines, Workload::Map, Runner::Local)?;
    let local = find(lines, Workload::Map, Runner::Plain);
    let peer = find(lines, Workload::Map, Runner::Mpi4py);
    let rates = |f: &Figures| {
        let rates: Vec<f64> = f.wall.iter().map(|s| 1e-6 / s).collect();
        format!(
            "{:.2} M items/s ({})",
            median(&rates),
            range(&rates, |r| format!("{r:.2}"))
        )
    };
    let mut peers = Vec::new();
    if let Some(l) = local {
        peers.push(format!("local ProcessPoolExecutor(2) {}", rates(l)));
    }
    if let Some(p) = peer {
        peers.push(format!("mpi4py.futures chunksize=10000 {}", rates(p)));
    }
    let ratio = |f: &Figures, label: &str| {
        format!(
            "{} {label}'s rate",
            times_text(median(&f.wall) / median(&ours.wall))
        )
    };
    Some(Score {
        section: SECTION,
        what: String::from(
            "chunked map(x * 2) over 2·10^6 u64, MPI local pools (-n 3), automatic chunks",
        ),
        ours: rates(ours),
        peers,
        ratio: match (local, peer) {
            (Some(l), Some(p)) => format!("{}; {}", ratio(l, "the local pool"), ratio(p, "mpi4py")),
            (Some(l), None) => ratio(l, "the local pool"),
            (None, Some(p)) => ratio(p, "mpi4py"),
            (None, None) => String::from("-"),
        },
        target: String::from("-"),
        verdict: Verdict::NoTarget,
    })
}

/// The rows of the scoreboard's file: each configuration's median wall
/// time, rank 0's CPU and the job's CPU per unit.
fn rows(lines: &[Line<'_>]) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in lines {
        let config = line.config;
        let Some(figures) = &line.figures else {
            continue;
        };
        let workload = config.workload.row_workload();
        let name = if config.runner.ours() {
            format!("{OURS} {}", config.label.trim_start_matches("ours, "))
        } else {
            config.label.to_string()
        };
        let unit = Unit::Per(config.workload.unit());
        for (suffix, values) in [
            ("", &figures.wall),
            (": rank 0 CPU", &figures.rank0_cpu),
            (": whole job's CPU", &figures.job_cpu),
        ] {
            rows.push(Row::external(
                workload,
                format!("{name}{suffix}"),
                unit,
                1,
                median(values),
            ));
        }
    }
    rows
}

// --------------------------------------------------------------- main

fn main() {
    concurrent_futures::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let under_launcher = ["OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if under_launcher {
        let (workload, runner, timed_run) =
            parse_spec(&args).unwrap_or_else(|| fail(&format!("not a job: {args:?}")));
        measure_here(workload, runner, timed_run);
        return;
    }
    if let Some(spec) = std::env::var_os(CHILD) {
        let words: Vec<String> = spec
            .to_string_lossy()
            .split_whitespace()
            .map(String::from)
            .collect();
        let (workload, runner, timed_run) =
            parse_spec(&words).unwrap_or_else(|| fail(&format!("{CHILD}={words:?}: not a job")));
        measure_here(workload, runner, timed_run);
        return;
    }

    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, python_rounds) = if quick {
        (samples().min(3), python_samples().min(2))
    } else {
        (samples(), python_samples())
    };
    if !runs("mpirun", &["--version"]) {
        fail("mpirun not found (apt-get install openmpi-bin)");
    }
    let python = python();
    let peer = runs(&python, &["-c", "import mpi4py.futures"]);
    let wanted = harness::chosen_workloads();
    let configs: Vec<Config> = CONFIGS
        .into_iter()
        .filter(|c| wanted(c.workload.key()))
        .filter(|c| peer || c.runner.ours())
        .collect();
    println!(
        "mpi bench: each sample a job of its own, {rounds} rounds (mpi4py: {python_rounds}), \
         interleaved; median (min–max); CPU = user + system by getrusage, per item; the whole \
         job's less an idle job's (start, warm-up, stop)"
    );
    if !peer {
        println!(
            "mpi4py.futures: skipped: {} cannot import mpi4py.futures \
             (apt-get install python3-mpi4py, or set {PYTHON_VAR})",
            python.display()
        );
    }
    println!();
    let started = Instant::now();

    let mut measured: Vec<Measured> = configs.iter().map(|_| Measured::default()).collect();
    for round in 0..rounds.max(python_rounds) {
        eprintln!(
            "mpi bench: round {} of {}…",
            round + 1,
            rounds.max(python_rounds)
        );
        for (config, measured) in configs.iter().zip(&mut measured) {
            let wanted_rounds = if config.runner.ours() {
                rounds
            } else {
                python_rounds
            };
            if round >= wanted_rounds {
                continue;
            }
            let job = run_job(config, true);
            let (items, wall, rank0_cpu) = job.get("pool").expect("checked by run_job");
            measured.samples.push(Sample {
                items,
                wall,
                rank0_cpu,
                job_cpu: job.job_cpu,
                neighbours: job.neighbours,
                sequential: job.get("sequential").map(|(_, wall, cpu)| (wall, cpu)),
                first: job.get("first").map(|(_, wall, _)| wall),
            });
            measured.info = job.info;
            let idle = run_job(config, false);
            measured.idle.push(idle.job_cpu);
        }
    }

    let lines: Vec<Line<'_>> = configs
        .iter()
        .zip(&measured)
        .map(|(config, measured)| Line {
            config,
            measured,
            figures: Figures::new(measured),
        })
        .collect();
    for workload in Workload::ALL {
        print_workload(workload, &lines);
    }
    let mut scores = Vec::new();
    scores.extend(noop_score(
        &lines,
        Runner::Direct,
        "direct",
        NOOP_DIRECT_TARGET,
    ));
    scores.extend(noop_score(
        &lines,
        Runner::Local,
        "local pools",
        NOOP_LOCAL_TARGET,
    ));
    scores.extend(primes_score(
        &lines,
        Runner::Direct,
        "direct",
        PRIMES_DIRECT_TARGET,
    ));
    scores.extend(primes_score(
        &lines,
        Runner::LocalOne,
        "local pools of 1",
        PRIMES_LOCAL_TARGET,
    ));
    scores.extend(map_score(&lines));
    report("mpi", &rows(&lines), &scores);
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
