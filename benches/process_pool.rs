//! The process pool against its peers, measured in one run (DESIGN.md §5).
//!
//! The harness is the thread-pool bench's (`harness.rs`): a warm-up, then
//! `SAMPLES` runs per implementation, interleaved, medians. The peers:
//!
//! * the physical floor, measured here too: this very binary re-executed
//!   with [`ECHO`] set, which makes it echo its standard input to its
//!   standard output over plain pipes (a 1-byte round trip; 64 MiB through
//!   and back; one exec);
//! * Python's `ProcessPoolExecutor` with the `spawn` and the `fork` start
//!   methods (`benches/python/process_pool.py`), skipped with a message if
//!   `python3` cannot run;
//! * sequential Rust for the CPU-bound map.
//!
//! The verdicts at the end are computed from this run's medians.
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --bench process_pool
//! ```

use std::hint::black_box;
use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::Instant;

use concurrent_futures::{Chunksize, ProcessPoolExecutor};
use serde_bytes::ByteBuf;

#[path = "harness.rs"]
mod harness;

use harness::{
    find, insert_after_workload, measure, measure_with, met, print_table, Candidate, Row, Unit,
    OURS, SAMPLES,
};

/// The environment variable that makes this binary an echo server.
const ECHO: &str = "CONCURRENT_FUTURES_BENCH_ECHO";

/// Round trips per run of workload 1.
const ROUND_TRIP_TASKS: u64 = 2_000;
/// Tasks per run of workload 2.
const SUBMIT_ALL_TASKS: u64 = 10_000;
/// Items per run of workload 3.
const MAP_ITEMS: u64 = 1_000_000;
/// The fixed chunk size of workload 3.
const MAP_CHUNK: usize = 1_000;
/// Bytes of the argument (and of the result) of workload 5.
const BIG: usize = 64 << 20;
/// The range of workload 6.
const PRIMES_FROM: u64 = 10;
const PRIMES_TO: u64 = 2_500_000;
/// Workers of workloads 2, 3, 4 and 6.
const WORKERS: usize = 2;

/// Python is slow: fewer tasks per run, fewer runs.
const PYTHON_ROUND_TRIP_TASKS: u64 = 2_000;
const PYTHON_SUBMIT_ALL_TASKS: u64 = 2_000;
const PYTHON_MAP_ITEMS: u64 = 200_000;
const PYTHON_SAMPLES: usize = 5;

/// DESIGN.md §5 targets.
const ROUND_TRIP_TARGET_US: f64 = 10.0;
const MAP_TARGET_US: f64 = 0.1;
const START_TARGET_MS: f64 = 5.0;
const BIG_TARGET_GBS: f64 = 1.0;
const SPEEDUP_TARGET: f64 = 0.95;

const W1: &str = "1 no-op round trip, 1 worker";
const W2: &str = "2 submit 10^4, then result all";
const W3: &str = "3 map x*2, 10^6 items";
const W4: &str = "4 new(2)+first result+shutdown";
const W5: &str = "5 64 MiB arg+result, 1 worker";
const W6: &str = "6 CPU-bound map, is_prime";

fn noop(x: u64) -> u64 {
    x
}

fn identity_vec(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn identity_bytes(bytes: ByteBuf) -> ByteBuf {
    bytes
}

/// Trial division: the classic CPU-bound task.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The echo server this binary becomes with [`ECHO`] set: whatever comes
/// in on standard input goes straight back out, until end of file.
fn echo() {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match input.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if output
                    .write_all(&buffer[..n])
                    .and_then(|()| output.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// This binary, started as an echo server, with both ends of its pipes.
struct Echo {
    child: Child,
    input: ChildStdin,
    output: ChildStdout,
}

impl Echo {
    fn start() -> Echo {
        let mut child = Command::new("/proc/self/exe")
            .env(ECHO, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("this binary starts as an echo server");
        let input = child.stdin.take().expect("a piped stdin");
        let output = child.stdout.take().expect("a piped stdout");
        Echo {
            child,
            input,
            output,
        }
    }

    /// One byte there and back.
    fn round_trip(&mut self, byte: u8) -> u8 {
        let mut back = [0u8; 1];
        self.input
            .write_all(&[byte])
            .expect("the echo server reads");
        self.output
            .read_exact(&mut back)
            .expect("the echo server answers");
        back[0]
    }

    /// `data` there and back (written by a second thread, so that neither
    /// pipe fills up), into `back`.
    fn stream(&mut self, data: &[u8], back: &mut [u8]) {
        let input = &mut self.input;
        thread::scope(|scope| {
            scope.spawn(move || input.write_all(data).expect("the echo server reads"));
            self.output
                .read_exact(back)
                .expect("the echo server answers");
        });
    }

    fn stop(self) {
        let Echo {
            mut child, input, ..
        } = self;
        drop(input);
        child.wait().expect("the echo server exits");
    }
}

/// Workload 1: submit one no-op task, wait for its result, repeat.
fn round_trip() -> Vec<Row> {
    const N: u64 = ROUND_TRIP_TASKS;
    let pool = ProcessPoolExecutor::new(1).expect("a pool");
    let mut echo = Echo::start();
    let candidates = vec![
        Candidate::new(format!("{OURS} ProcessPoolExecutor(1)"), N, || {
            for i in 0..N {
                assert_eq!(pool.submit(noop, black_box(i)).result(), Ok(i));
            }
        }),
        Candidate::new("floor: 1-byte pipe echo, child process", N, || {
            for i in 0..N {
                let byte = i as u8;
                assert_eq!(echo.round_trip(byte), byte);
            }
        }),
    ];
    let rows = measure(W1, "task", candidates);
    echo.stop();
    rows
}

/// Workload 2: submit `SUBMIT_ALL_TASKS` no-op tasks, then take every result.
fn submit_all() -> Vec<Row> {
    const N: u64 = SUBMIT_ALL_TASKS;
    let pool = ProcessPoolExecutor::new(WORKERS).expect("a pool");
    let candidates = vec![Candidate::new(
        format!("{OURS} ProcessPoolExecutor({WORKERS})"),
        N,
        || {
            let futures: Vec<_> = (0..N).map(|i| pool.submit(noop, i)).collect();
            let sum: u64 = futures
                .into_iter()
                .map(|future| future.result().expect("a no-op task"))
                .sum();
            assert_eq!(sum, N * (N - 1) / 2);
        },
    )];
    measure(W2, "task", candidates)
}

/// Workload 3: `map` of `x * 2` over `MAP_ITEMS` integers, into a `Vec`.
fn map() -> Vec<Row> {
    const N: u64 = MAP_ITEMS;
    fn check(out: &[u64]) {
        assert_eq!(out.len(), N as usize);
        assert_eq!(out[N as usize - 1], 2 * (N - 1));
        black_box(out);
    }
    let pool = ProcessPoolExecutor::new(WORKERS).expect("a pool");
    let fixed = NonZeroUsize::new(MAP_CHUNK).expect("not zero");
    let candidates = vec![
        Candidate::new(format!("{OURS} chunksize Fixed({MAP_CHUNK})"), N, || {
            let out = pool
                .map(|x: u64| x * 2, black_box(0..N))
                .chunksize(Chunksize::Fixed(fixed))
                .collect::<Result<Vec<u64>, _>>()
                .expect("no item fails");
            check(&out);
        }),
        Candidate::new("  (ours, automatic chunksize)", N, || {
            let out = pool
                .map(|x: u64| x * 2, black_box(0..N))
                .collect::<Result<Vec<u64>, _>>()
                .expect("no item fails");
            check(&out);
        }),
        Candidate::new("  (sequential, in process)", N, || {
            let out: Vec<u64> = black_box(0..N).map(|x| x * 2).collect();
            check(&out);
        }),
    ];
    measure(W3, "item", candidates)
}

/// Workload 4: a pool's whole life, for one task.
fn start() -> Vec<Row> {
    let candidates = vec![
        Candidate::new(format!("{OURS} ProcessPoolExecutor({WORKERS})"), 1, || {
            let pool = ProcessPoolExecutor::new(WORKERS).expect("a pool");
            assert_eq!(pool.submit(noop, 7).result(), Ok(7));
            drop(pool);
        }),
        Candidate::new("floor: exec self + 1-byte echo + exit", 1, || {
            let mut echo = Echo::start();
            assert_eq!(echo.round_trip(7), 7);
            echo.stop();
        }),
    ];
    measure(W4, "pool", candidates)
}

/// Workload 5: 64 MiB to a worker and back; the rate counts both
/// directions' bytes.
fn big() -> Vec<Row> {
    let moved = 2 * BIG as u64;
    let pool = ProcessPoolExecutor::new(1).expect("a pool");
    let mut echo = Echo::start();
    // Each run hands the bytes over and gets them back, ready for the next.
    let mut vec = Some(vec![7u8; BIG]);
    let mut buf = Some(ByteBuf::from(vec![7u8; BIG]));
    let data = vec![7u8; BIG];
    let mut back = vec![0u8; BIG];
    let candidates = vec![
        Candidate::new(
            format!("{OURS} Vec<u8> (postcard, per byte)"),
            moved,
            || {
                let arg = vec.take().expect("the bytes are back");
                let result = pool.submit(identity_vec, arg).result().expect("a result");
                assert_eq!(result.len(), BIG);
                vec = Some(result);
            },
        ),
        Candidate::new("  (ours, serde_bytes::ByteBuf)", moved, || {
            let arg = buf.take().expect("the bytes are back");
            let result = pool.submit(identity_bytes, arg).result().expect("a result");
            assert_eq!(result.len(), BIG);
            buf = Some(result);
        }),
        Candidate::new("floor: pipe echo, child process", moved, || {
            echo.stream(&data, &mut back);
            assert_eq!(back[BIG - 1], 7);
        }),
    ];
    let rows = measure_with(SAMPLES, W5, Unit::Bytes, candidates);
    echo.stop();
    rows
}

/// Workload 6: a CPU-bound map on every worker against one thread.
fn primes() -> Vec<Row> {
    const N: u64 = PRIMES_TO - PRIMES_FROM;
    let pool = ProcessPoolExecutor::new(WORKERS).expect("a pool");
    let expected = (PRIMES_FROM..PRIMES_TO).filter(|&n| is_prime(n)).count();
    let candidates = vec![
        Candidate::new(
            format!("{OURS} map, {WORKERS} workers, automatic chunks"),
            N,
            || {
                let count = pool
                    .map(is_prime, black_box(PRIMES_FROM..PRIMES_TO))
                    .filter(|prime| *prime.as_ref().expect("no item fails"))
                    .count();
                assert_eq!(count, expected);
            },
        ),
        Candidate::new("sequential Rust, one thread", N, || {
            let count = black_box(PRIMES_FROM..PRIMES_TO)
                .filter(|&n| is_prime(n))
                .count();
            assert_eq!(count, expected);
        }),
    ];
    measure(W6, "item", candidates)
}

/// Python's ProcessPoolExecutor with one start method, through
/// `benches/python/`: one row per workload, or `None` if python3 cannot
/// run it.
fn python(method: &str, wanted: &dyn Fn(&str) -> bool) -> Option<Vec<Row>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/process_pool.py");
    let mut workloads = vec![
        (W1, "round_trip", PYTHON_ROUND_TRIP_TASKS, Unit::Per("task")),
        (W2, "submit_all", PYTHON_SUBMIT_ALL_TASKS, Unit::Per("task")),
        (W3, "map", PYTHON_MAP_ITEMS, Unit::Per("item")),
        (W4, "start", 1, Unit::Per("pool")),
        (W5, "bytes", BIG as u64, Unit::Bytes),
    ];
    workloads.retain(|(workload, ..)| wanted(workload));
    if workloads.is_empty() {
        return Some(Vec::new());
    }
    let output = Command::new("python3")
        .arg(script)
        .args([method, &PYTHON_SAMPLES.to_string()])
        .args(
            workloads
                .iter()
                .map(|(_, mode, units, _)| format!("{mode}={units}")),
        )
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut rows = Vec::new();
    for (workload, mode, units, unit) in workloads {
        let median: f64 = stdout.lines().find_map(|line| {
            let (name, seconds) = line.split_once(' ')?;
            (name == mode).then(|| seconds.trim().parse().ok())?
        })?;
        let (name, units) = match (mode, unit) {
            ("round_trip", _) => (format!("Python ProcessPoolExecutor(1) {method}"), units),
            ("map", _) => (
                format!("Python ({WORKERS}) {method}, chunksize={MAP_CHUNK}, N={units}"),
                units,
            ),
            // There and back: both directions' bytes.
            (_, Unit::Bytes) => (format!("Python ProcessPoolExecutor(1) {method}"), 2 * units),
            _ => (
                format!("Python ProcessPoolExecutor({WORKERS}) {method}"),
                units,
            ),
        };
        rows.push(Row::external(workload, name, unit, units, median));
    }
    Some(rows)
}

fn verdicts(rows: &[Row]) {
    let row = |workload: &str, name: &str| find(rows, workload, name);
    let per_unit = |workload: &str, name: &str| row(workload, name).map(Row::per_unit);
    let pythons = |workload: &str, scale: f64, unit: &str, ours: f64| {
        ["spawn", "fork"]
            .iter()
            .filter_map(|method| {
                rows.iter()
                    .find(|r| {
                        r.workload.starts_with(workload)
                            && r.name.starts_with("Python")
                            && r.name.contains(method)
                    })
                    .map(|r| {
                        let python = r.per_unit();
                        format!(
                            ", Python {method} {:.2} {unit} ({:.1}× ours)",
                            python * scale,
                            python / ours
                        )
                    })
            })
            .collect::<String>()
    };

    println!();
    println!("Verdicts (DESIGN.md §5, from this run's medians):");
    if let Some(ours) = per_unit("1 ", OURS) {
        let us = ours * 1e6;
        let mut line = format!(
            "  1 no-op round trip: {us:.2} µs/task (target ≤ {ROUND_TRIP_TARGET_US}) {}",
            met(us <= ROUND_TRIP_TARGET_US)
        );
        if let Some(floor) = per_unit("1 ", "floor") {
            line += &format!(
                "; pipe floor {:.2} µs, ours {:.1}× it",
                floor * 1e6,
                ours / floor
            );
        }
        println!("{line}{}", pythons("1 ", 1e6, "µs", ours));
    }
    if let Some(ours) = per_unit("2 ", OURS) {
        println!(
            "  2 submit all, then result all (no target of its own): {:.2} µs/task{}",
            ours * 1e6,
            pythons("2 ", 1e6, "µs", ours)
        );
    }
    if let Some(ours) = per_unit("3 ", OURS) {
        let us = ours * 1e6;
        let mut line = format!(
            "  3 map chunked, Fixed({MAP_CHUNK}): {us:.3} µs/item (target ≤ {MAP_TARGET_US}) {}",
            met(us <= MAP_TARGET_US)
        );
        if let Some(auto) = per_unit("3 ", "  (ours, automatic") {
            let auto = auto * 1e6;
            line += &format!(
                "; automatic {auto:.3} µs/item {}",
                met(auto <= MAP_TARGET_US)
            );
        }
        println!("{line}{}", pythons("3 ", 1e6, "µs", ours));
    }
    if let Some(ours) = per_unit("4 ", OURS) {
        let ms = ours * 1e3;
        let mut line = format!(
            "  4 new({WORKERS}) + first result + shutdown: {ms:.2} ms (target ≤ {START_TARGET_MS}) {}",
            met(ms <= START_TARGET_MS)
        );
        if let Some(floor) = per_unit("4 ", "floor") {
            line += &format!("; one exec {:.2} ms", floor * 1e3);
        }
        println!("{line}{}", pythons("4 ", 1e3, "ms", ours));
    }
    if let Some(ours) = row("5 ", OURS) {
        let gbs = ours.rate() / 1e9;
        let mut line = format!(
            "  5 64 MiB through a worker, Vec<u8>: {gbs:.2} GB/s (target ≥ {BIG_TARGET_GBS}) {}",
            met(gbs >= BIG_TARGET_GBS)
        );
        if let Some(bytes) = row("5 ", "  (ours, serde_bytes") {
            let gbs = bytes.rate() / 1e9;
            line += &format!("; ByteBuf {gbs:.2} GB/s {}", met(gbs >= BIG_TARGET_GBS));
        }
        if let Some(floor) = row("5 ", "floor") {
            line += &format!("; pipe floor {:.2} GB/s", floor.rate() / 1e9);
        }
        println!("{line}");
    }
    if let (Some(ours), Some(sequential)) = (per_unit("6 ", OURS), per_unit("6 ", "sequential")) {
        let speedup = sequential / ours;
        let target = SPEEDUP_TARGET * WORKERS as f64;
        println!(
            "  6 CPU-bound map on {WORKERS} workers: {speedup:.2}× sequential (target ≥ {target:.2}×) {}",
            met(speedup >= target)
        );
    }
}

/// A workload's measurement.
type Workload = fn() -> Vec<Row>;

fn main() {
    concurrent_futures::init();
    if std::env::var_os(ECHO).is_some() {
        echo();
        return;
    }
    let cpus = thread::available_parallelism().map_or(2, NonZeroUsize::get);
    println!(
        "process_pool bench: {cpus} CPUs, {SAMPLES} samples after a warm-up, medians \
         (Python: {PYTHON_SAMPLES}); 'vs ours' = time per task/item ÷ ours (above 1 = slower \
         than ours)"
    );
    println!();

    // `cargo bench … -- 1 5` runs workloads 1 and 5 only (and their Python
    // peers); cargo's own `--bench` argument is ignored.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wanted = |workload: &str| {
        chosen.is_empty() || chosen.iter().any(|n| workload.starts_with(n.as_str()))
    };

    let started = Instant::now();
    let workloads: [(&str, Workload); 6] = [
        (W1, round_trip),
        (W2, submit_all),
        (W3, map),
        (W4, start),
        (W5, big),
        (W6, primes),
    ];
    let mut rows = Vec::new();
    for (workload, run) in workloads {
        if wanted(workload) {
            rows.extend(run());
        }
    }

    let mut skipped = Vec::new();
    for method in ["spawn", "fork"] {
        match python(method, &wanted) {
            Some(python_rows) => {
                for row in python_rows {
                    insert_after_workload(&mut rows, row);
                }
            }
            None => skipped.push(method),
        }
    }

    print_table(&rows);
    if !skipped.is_empty() {
        println!();
        println!(
            "Python ProcessPoolExecutor ({}): skipped: python3 not available or the script failed",
            skipped.join(", ")
        );
    }
    verdicts(&rows);
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
