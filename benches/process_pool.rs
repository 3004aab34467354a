//! The process pool against its peers, measured in one run (DESIGN.md §5).
//!
//! The harness is the thread-pool bench's (`harness.rs`): a warm-up, then
//! `samples()` runs per implementation, interleaved, medians. The peers:
//!
//! * the physical floor, measured here too: this very binary re-executed
//!   with [`ECHO`] set, which makes it echo its standard input to its
//!   standard output over plain pipes (a 1-byte round trip; 64 MiB through
//!   and back; one exec);
//! * Python's `ProcessPoolExecutor` with the `spawn` and the `fork` start
//!   methods, and `multiprocessing.Pool` with the default one
//!   (`benches/python/process_pool.py`), skipped with a message if
//!   `python3` cannot run;
//! * procspawn's `Pool` (`procspawn_peer.rs`), with the `peers-procspawn`
//!   feature only (`benches/scoreboard` turns it on).
//!
//! The CPU-bound map against sequential Rust is the seed programs' bench
//! (`seeds.rs`). The scoreboard lines at the end (the process-pool
//! section, and automatic chunking for the map) come from this run's
//! medians.
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

#[path = "procspawn_peer.rs"]
mod procspawn_peer;

use harness::{
    chunk_score, insert_after_workload, measure, measure_with, print_table, python_samples, report,
    samples, score, Candidate, Row, Score, Target, Unit, CHUNK_SWEEP, OURS,
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
/// Workers of workloads 2, 3 and 4.
const WORKERS: usize = 2;

/// Python and procspawn are slow: fewer tasks per run.
const PYTHON_ROUND_TRIP_TASKS: u64 = 2_000;
const PYTHON_SUBMIT_ALL_TASKS: u64 = 2_000;
const PYTHON_MAP_ITEMS: u64 = 200_000;
const PROCSPAWN_ROUND_TRIP_TASKS: u64 = 1_000;
const PROCSPAWN_SUBMIT_ALL_TASKS: u64 = 2_000;

/// DESIGN.md §5 targets.
const ROUND_TRIP_TARGET_US: f64 = 10.0;
const MAP_TARGET_US: f64 = 0.1;
const START_TARGET_MS: f64 = 5.0;
const BIG_TARGET_GBS: f64 = 1.0;

const W1: &str = "1 no-op round trip, 1 worker";
const W2: &str = "2 submit 10^4, then result all";
const W3: &str = "3 map x*2, 10^6 items";
const W4: &str = "4 new(2)+first result+shutdown";
const W5: &str = "5 64 MiB arg+result, 1 worker";

fn noop(x: u64) -> u64 {
    x
}

fn identity_vec(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn identity_bytes(bytes: ByteBuf) -> ByteBuf {
    bytes
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

    /// One byte there and back, the answer polled for rather than slept
    /// on: a thread that sleeps in `read` is woken by the kernel, which on
    /// a virtual machine whose CPUs went idle can take tens of
    /// microseconds; a pool's caller spins briefly instead.
    fn round_trip_polling(&mut self, byte: u8) -> u8 {
        let mut back = [0u8; 1];
        self.input
            .write_all(&[byte])
            .expect("the echo server reads");
        loop {
            match self.output.read(&mut back) {
                Ok(1) => return back[0],
                Ok(_) => panic!("the echo server closed its output"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("the echo server answers: {e}"),
            }
        }
    }

    /// Sets whether reading the echo server's answers blocks.
    fn set_nonblocking(&self, nonblocking: bool) {
        use std::os::fd::AsRawFd;
        let fd = self.output.as_raw_fd();
        // SAFETY: `fcntl` on a descriptor this process owns (the child's
        // standard output pipe), changing only its O_NONBLOCK flag.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            assert!(flags >= 0, "fcntl(F_GETFL) on the echo pipe");
            let flags = if nonblocking {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            assert!(libc::fcntl(fd, libc::F_SETFL, flags) == 0, "fcntl(F_SETFL)");
        }
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
    let echo = std::cell::RefCell::new(Echo::start());
    let mut candidates = vec![
        Candidate::new(format!("{OURS} ProcessPoolExecutor(1)"), N, || {
            for i in 0..N {
                assert_eq!(pool.submit(noop, black_box(i)).result(), Ok(i));
            }
        }),
        Candidate::new(
            "floor: 1-byte pipe echo, child process, parent polls",
            N,
            || {
                let mut echo = echo.borrow_mut();
                echo.set_nonblocking(true);
                for i in 0..N {
                    let byte = i as u8;
                    assert_eq!(echo.round_trip_polling(byte), byte);
                }
                echo.set_nonblocking(false);
            },
        ),
        Candidate::new(
            "  (1-byte pipe echo, child process, parent sleeps)",
            N,
            || {
                let mut echo = echo.borrow_mut();
                for i in 0..N {
                    let byte = i as u8;
                    assert_eq!(echo.round_trip(byte), byte);
                }
            },
        ),
    ];
    candidates.extend(procspawn_peer::round_trip(PROCSPAWN_ROUND_TRIP_TASKS));
    let rows = measure(W1, "task", candidates);
    echo.into_inner().stop();
    rows
}

/// Workload 2: submit `SUBMIT_ALL_TASKS` no-op tasks, then take every result.
fn submit_all() -> Vec<Row> {
    const N: u64 = SUBMIT_ALL_TASKS;
    let pool = ProcessPoolExecutor::new(WORKERS).expect("a pool");
    let mut candidates = vec![Candidate::new(
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
    candidates.extend(procspawn_peer::submit_all(
        WORKERS,
        PROCSPAWN_SUBMIT_ALL_TASKS,
    ));
    measure(W2, "task", candidates)
}

/// Workload 3: `map` of `x * 2` over `MAP_ITEMS` integers, into a `Vec`;
/// ours also with each chunk size of the sweep.
fn map() -> Vec<Row> {
    const N: u64 = MAP_ITEMS;
    fn check(out: &[u64]) {
        assert_eq!(out.len(), N as usize);
        assert_eq!(out[N as usize - 1], 2 * (N - 1));
        black_box(out);
    }
    let pool = ProcessPoolExecutor::new(WORKERS).expect("a pool");
    let fixed = NonZeroUsize::new(MAP_CHUNK).expect("not zero");
    let mut candidates = vec![
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
    for size in CHUNK_SWEEP {
        let fixed = Chunksize::Fixed(NonZeroUsize::new(size).expect("not zero"));
        let pool = &pool;
        candidates.push(Candidate::new(
            format!("  ours Fixed({size})"),
            N,
            move || {
                let out = pool
                    .map(|x: u64| x * 2, black_box(0..N))
                    .chunksize(fixed)
                    .collect::<Result<Vec<u64>, _>>()
                    .expect("no item fails");
                check(&out);
            },
        ));
    }
    candidates.extend(procspawn_peer::map_chunked(WORKERS, N, MAP_CHUNK));
    measure(W3, "item", candidates)
}

/// Workload 4: a pool's whole life, for one task.
fn start() -> Vec<Row> {
    let mut candidates = vec![
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
    candidates.extend(procspawn_peer::start(WORKERS));
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
    let mut candidates = vec![
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
        // What serde and postcard alone cost, with no pipe and no second
        // process: the argument encoded and decoded, then the result.
        Candidate::new(
            "  (serde alone, Vec<u8>: postcard there and back, one process)",
            moved,
            || {
                let mut value = data.clone();
                for _ in 0..2 {
                    let bytes = postcard::to_allocvec(&value).expect("encodes");
                    value = postcard::from_bytes(&bytes).expect("decodes");
                }
                assert_eq!(value.len(), BIG);
            },
        ),
        Candidate::new(
            "  (serde alone, ByteBuf: postcard there and back, one process)",
            moved,
            || {
                let mut value = ByteBuf::from(data.clone());
                for _ in 0..2 {
                    let bytes = postcard::to_allocvec(&value).expect("encodes");
                    value = postcard::from_bytes(&bytes).expect("decodes");
                }
                assert_eq!(value.len(), BIG);
            },
        ),
    ];
    candidates.extend(procspawn_peer::bytes(BIG));
    let rows = measure_with(samples(), W5, Unit::Bytes, candidates);
    echo.stop();
    rows
}

/// Python's process pools through `benches/python/process_pool.py`:
/// `peer` is `spawn` or `fork` (a ProcessPoolExecutor with that start
/// method) or `pool` (multiprocessing.Pool). One row per workload it
/// measured, or `None` if python3 cannot run it.
fn python(peer: &str, wanted: &dyn Fn(&str) -> bool) -> Option<Vec<Row>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/process_pool.py");
    let mut workloads = vec![
        (W1, "round_trip", PYTHON_ROUND_TRIP_TASKS, Unit::Per("task")),
        (W2, "submit_all", PYTHON_SUBMIT_ALL_TASKS, Unit::Per("task")),
        (W3, "map", PYTHON_MAP_ITEMS, Unit::Per("item")),
        (W4, "start", 1, Unit::Per("pool")),
        (W5, "bytes", BIG as u64, Unit::Bytes),
    ];
    if peer == "pool" {
        // A ProcessPoolExecutor's own chunk size is 1: no automatic peer.
        workloads.insert(3, (W3, "map_auto", PYTHON_MAP_ITEMS, Unit::Per("item")));
    }
    workloads.retain(|(workload, ..)| wanted(workload));
    if workloads.is_empty() {
        return Some(Vec::new());
    }
    let output = Command::new("python3")
        .arg(script)
        .args([peer, &python_samples().to_string()])
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
    let value = |key: &str| {
        stdout.lines().find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.trim().to_string())
        })
    };
    let (pool, method) = match peer {
        "pool" => (
            "multiprocessing.Pool",
            value("method").unwrap_or_else(|| String::from("default")),
        ),
        method => ("ProcessPoolExecutor", method.to_string()),
    };
    let mut rows = Vec::new();
    for (workload, mode, units, unit) in workloads {
        let Some(median) = value(mode).and_then(|median| median.parse().ok()) else {
            continue;
        };
        let workers = if matches!(mode, "round_trip" | "bytes") {
            1
        } else {
            WORKERS
        };
        let mut name = format!("Python {pool}({workers}) {method}");
        match mode {
            "map" => name += &format!(", chunksize={MAP_CHUNK}, N={units}"),
            "map_auto" => name += &format!(", auto chunksize, N={units}"),
            _ => {}
        }
        // There and back: both directions' bytes.
        let units = if unit == Unit::Bytes {
            2 * units
        } else {
            units
        };
        rows.push(Row::external(workload, name, unit, units, median));
    }
    Some(rows)
}

/// This bench's lines of the scoreboard.
fn scores(rows: &[Row]) -> Vec<Score> {
    const SECTION: &str = "process pool";
    const PPE_SPAWN: (&str, &str) = ("Python ProcessPoolExecutor*spawn", "Python PPE spawn");
    const PPE_FORK: (&str, &str) = ("Python ProcessPoolExecutor*fork", "Python PPE fork");
    const POOL: (&str, &str) = ("Python multiprocessing.Pool", "Python mp.Pool");
    const PROCSPAWN: (&str, &str) = (procspawn_peer::NAME, procspawn_peer::NAME);
    const PIPE: (&str, &str) = ("floor", "pipe floor");
    let map_target = Target::PerUnitAtMost(MAP_TARGET_US * 1e-6);
    [
        score(
            rows,
            SECTION,
            "no-op submit→result round trip, 1 worker",
            W1,
            OURS,
            &[PIPE, PROCSPAWN, PPE_SPAWN, PPE_FORK, POOL],
            Target::PerUnitAtMost(ROUND_TRIP_TARGET_US * 1e-6),
        ),
        score(
            rows,
            SECTION,
            format!(
                "submit 10^{} no-op tasks, then result all, {WORKERS} workers",
                SUBMIT_ALL_TASKS.ilog10()
            ),
            W2,
            OURS,
            &[PPE_FORK, PPE_SPAWN, POOL, PROCSPAWN],
            Target::None,
        ),
        score(
            rows,
            SECTION,
            format!("map x*2 over 10^6 items, chunk size {MAP_CHUNK}, {WORKERS} workers"),
            W3,
            OURS,
            &[
                PPE_FORK,
                PPE_SPAWN,
                ("Python multiprocessing.Pool*chunksize=", "Python mp.Pool"),
                PROCSPAWN,
            ],
            map_target,
        ),
        score(
            rows,
            SECTION,
            format!("map x*2 over 10^6 items, automatic chunks, {WORKERS} workers"),
            W3,
            "  (ours, automatic",
            &[
                ("Python multiprocessing.Pool*auto", "Python mp.Pool auto"),
                ("  (sequential", "sequential, in process"),
            ],
            map_target,
        ),
        score(
            rows,
            SECTION,
            format!("new({WORKERS}) + first result + shutdown"),
            W4,
            OURS,
            &[PPE_SPAWN, PPE_FORK, POOL, PROCSPAWN, ("floor", "one exec")],
            Target::PerUnitAtMost(START_TARGET_MS * 1e-3),
        ),
        score(
            rows,
            SECTION,
            "64 MiB argument and result, Vec<u8>",
            W5,
            OURS,
            &[
                PIPE,
                ("  (serde alone, Vec", "serde alone, no pipes"),
                PROCSPAWN,
                PPE_SPAWN,
                PPE_FORK,
                POOL,
            ],
            Target::RateAtLeast(BIG_TARGET_GBS * 1e9),
        ),
        score(
            rows,
            SECTION,
            "64 MiB argument and result, serde_bytes::ByteBuf",
            W5,
            "  (ours, serde_bytes",
            &[
                PIPE,
                ("  (serde alone, ByteBuf", "serde alone, no pipes"),
                PROCSPAWN,
                PPE_SPAWN,
                PPE_FORK,
                POOL,
            ],
            Target::RateAtLeast(BIG_TARGET_GBS * 1e9),
        ),
        chunk_score(
            rows,
            format!("process pool map over 10^6 × (x*2), {WORKERS} workers"),
            W3,
            "  (ours, automatic",
            "  ours ",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A workload's measurement.
type Workload = fn() -> Vec<Row>;

fn main() {
    concurrent_futures::init();
    procspawn_peer::init();
    if std::env::var_os(ECHO).is_some() {
        echo();
        return;
    }
    let cpus = thread::available_parallelism().map_or(2, NonZeroUsize::get);
    println!(
        "process_pool bench: {cpus} CPUs, {} samples after a warm-up, medians \
         (Python: {}); 'vs ours' = time per task/item ÷ ours (above 1 = slower than ours)",
        samples(),
        python_samples(),
    );
    if !procspawn_peer::ENABLED {
        println!("procspawn: not built (the benches crate's `peers-procspawn` feature is off)");
    }
    println!();

    // `cargo bench … -- 1 5` runs workloads 1 and 5 only (and their Python
    // peers); cargo's own `--bench` argument is ignored.
    let wanted = harness::chosen_workloads();

    let started = Instant::now();
    let workloads: [(&str, Workload); 5] = [
        (W1, round_trip),
        (W2, submit_all),
        (W3, map),
        (W4, start),
        (W5, big),
    ];
    let mut rows = Vec::new();
    for (workload, run) in workloads {
        if wanted(workload) {
            rows.extend(run());
        }
    }

    let mut skipped = Vec::new();
    for peer in ["spawn", "fork", "pool"] {
        match python(peer, &wanted) {
            Some(python_rows) => {
                for row in python_rows {
                    insert_after_workload(&mut rows, row);
                }
            }
            None => skipped.push(peer),
        }
    }

    print_table(&rows);
    if !skipped.is_empty() {
        println!();
        println!(
            "Python process pools ({}): skipped: python3 not available or the script failed",
            skipped.join(", ")
        );
    }
    report("process_pool", &rows, &scores(&rows));
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
