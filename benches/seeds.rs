//! The seed programs (the Python tutorials this crate comes from, in
//! `shared/seeds`), in Rust on both pools, against sequential Rust and the
//! same programs in Python (`benches/python/seeds.py`), measured in one run:
//!
//! 1. `is_prime` over the 100 integers from 112 272 535 095 293, chunk
//!    size 1 (Python: `ProcessPoolExecutor().map(…, chunksize=1)`);
//! 2. the primes in 10..2 500 000: sequential, thread pool, process pool
//!    (Python: sequential and `multiprocessing.Pool().map`), each pool also
//!    with every fixed chunk size of the sweep, for the automatic-chunking
//!    lines; and postcard alone encoding and decoding every argument and
//!    result, for the process pool's floor;
//! 3. the prime factors of 20 integers, the tutorial's recursive trial
//!    division (Python: `multiprocessing.Pool().map`);
//! 4. not a tutorial's: a CPU-bound map of 10 000 items of ~20 µs each, so
//!    heavy that neither pool's cost per item should show: sequential, a
//!    plain thread per CPU, and each pool with automatic chunks.
//!
//! Every pool has one worker per CPU and is started before the timed runs.
//! Programs 1 to 3 take long: at most 5 samples (`samples()`), and Python's
//! at most 3, with no warm-up run.
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --bench seeds
//! ```

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use concurrent_futures::{Chunksize, ProcessPoolExecutor, ThreadPoolExecutor};

#[path = "harness.rs"]
mod harness;

use harness::{
    chunk_score, insert_after_workload, measure_with, print_table, python_samples, report, samples,
    score, Candidate, Row, Score, Target, Unit, CHUNK_SWEEP, OURS,
};

/// The first of the 100 integers of program 1.
const BIG_FIRST: u64 = 112_272_535_095_293;
/// The range of program 2.
const PRIMES: Range<u64> = 10..2_500_000;
/// The 20 integers of program 3: those of the tutorial's printed run (it
/// draws them at random).
const TO_FACTOR: [u64; 20] = [
    5999312, 27175366, 13193645, 11026294, 30474659, 11600878, 12645941, 20106508, 25179463,
    15382779, 49595626, 6147277, 44304094, 41354114, 17934710, 39763829, 38295778, 11053859,
    6658471, 4971588,
];

/// The items of program 4: about 200 ms of work, 100 ms on two CPUs.
/// With 2 000 items (20 ms on two CPUs) the first and last chunks, which
/// no pool can fill evenly (the first items are measured one by one, the
/// last chunk ends when it ends), weighed 3 to 6 % and the runs measured
/// start-up and wind-down more than a CPU-bound map.
const HEAVY_ITEMS: Range<u64> = 0..10_000;
/// The rounds of [`heavy`]: 19.7 to 20.2 µs of one core on the 2-CPU
/// machine they were calibrated on.
const HEAVY_ROUNDS: u32 = 8_000;

/// DESIGN.md §5: a CPU-bound map on N cores, at least this times N faster
/// than sequential Rust.
const SPEEDUP_PER_CORE: f64 = 0.95;

const S1: &str = "1 is_prime, 100 big integers, chunk 1";
const S2: &str = "2 primes in 10..2 500 000";
const S3: &str = "3 prime factors of 20 integers";
const S4: &str = "4 CPU-bound map, 10 000 items of ~20 µs";

/// The name of program 2's row that measures postcard alone.
const SERDE_ONLY: &str = "  (serde only: postcard encode+decode of every argument and result)";

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

/// The tutorial's recursive factorisation: the first divisor found splits
/// the value in two, each factored again.
fn prime_factor(value: u64) -> Vec<u64> {
    for divisor in 2..value.saturating_sub(1) {
        if value.is_multiple_of(divisor) {
            let mut factors = prime_factor(divisor);
            factors.extend(prime_factor(value / divisor));
            return factors;
        }
    }
    vec![value]
}

/// Program 4's item: [`HEAVY_ROUNDS`] rounds of xorshift and multiply, a
/// chain of dependent steps that takes the same time for every item. The
/// round count goes through `black_box`, so the loop cannot be folded.
fn heavy(item: u64) -> u64 {
    // Never zero, which xorshift would keep at zero.
    let mut x = (item << 1) | 1;
    for _ in 0..black_box(HEAVY_ROUNDS) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    x
}

/// Timed runs of these long programs.
fn seed_samples() -> usize {
    samples().min(5)
}

/// The CPUs of this machine (2 if it cannot tell): the pools' workers and
/// the floors' threads.
fn cpus() -> usize {
    thread::available_parallelism().map_or(2, NonZeroUsize::get)
}

fn count_primes(flags: impl Iterator<Item = Result<bool, concurrent_futures::Error>>) -> usize {
    flags
        .filter(|flag| *flag.as_ref().expect("no item fails"))
        .count()
}

fn wrapping_sum(values: impl Iterator<Item = Result<u64, concurrent_futures::Error>>) -> u64 {
    values
        .map(|value| value.expect("no item fails"))
        .fold(0, u64::wrapping_add)
}

/// The machine's own limit for a CPU-bound map over `range`, the floor
/// rows: one plain thread per CPU, each taking every N-th block of `block`
/// items, no pool, no queue. `per_block` gives a block's share of the
/// answer; the shares are added up (wrapping).
fn on_every_cpu(
    range: Range<u64>,
    block: u64,
    per_block: impl Fn(Range<u64>) -> u64 + Sync,
) -> u64 {
    let parts = cpus();
    let per_block = &per_block;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..parts)
            .map(|part| {
                let range = range.clone();
                scope.spawn(move || {
                    (range.start..range.end)
                        .step_by(block as usize)
                        .skip(part)
                        .step_by(parts)
                        .map(|start| per_block(start..(start + block).min(range.end)))
                        .fold(0, u64::wrapping_add)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .fold(0, u64::wrapping_add)
    })
}

/// What a process pool adds to every item of a map, without the pool:
/// each argument encoded with postcard into a buffer and decoded, then
/// each result, one after the other on this thread. Gives the decoded
/// arguments' wrapping sum and the number of decoded results that are
/// true, for the caller to check.
fn postcard_round_trips(arguments: Range<u64>, results: &[bool]) -> (u64, usize) {
    let mut buffer = Vec::with_capacity(16);
    let mut sum = 0u64;
    let mut trues = 0;
    for (argument, result) in arguments.zip(results) {
        buffer.clear();
        buffer = postcard::to_extend(&argument, buffer).expect("a u64 encodes");
        let argument: u64 = postcard::from_bytes(&buffer).expect("a u64 decodes");
        sum = sum.wrapping_add(argument);
        buffer.clear();
        buffer = postcard::to_extend(result, buffer).expect("a bool encodes");
        let result: bool = postcard::from_bytes(&buffer).expect("a bool decodes");
        trues += usize::from(result);
    }
    (sum, trues)
}

/// Program 1: `is_prime` over 100 large integers, one item per task.
fn is_prime_big(threads: &ThreadPoolExecutor, processes: &ProcessPoolExecutor) -> Vec<Row> {
    let numbers = BIG_FIRST..BIG_FIRST + 100;
    let one = Chunksize::Fixed(NonZeroUsize::MIN);
    let expected = numbers.clone().filter(|&n| is_prime(n)).count();
    let candidates = vec![
        Candidate::new(format!("{OURS} process pool, chunksize 1"), 1, || {
            let flags = processes
                .map(is_prime, black_box(numbers.clone()))
                .chunksize(one);
            assert_eq!(count_primes(flags), expected);
        }),
        Candidate::new("  (ours, thread pool, chunksize 1)", 1, || {
            let flags = threads
                .map(is_prime, black_box(numbers.clone()))
                .chunksize(one);
            assert_eq!(count_primes(flags), expected);
        }),
        Candidate::new("sequential Rust", 1, || {
            let count = black_box(numbers.clone()).filter(|&n| is_prime(n)).count();
            assert_eq!(count, expected);
        }),
    ];
    measure_with(seed_samples(), S1, Unit::Per("run"), candidates)
}

/// Program 2: the primes in [`PRIMES`], sequentially and on each pool,
/// with automatic chunks and every fixed chunk size of the sweep; and the
/// process pool's floor, `(sequential + serde) / N`, from the medians of
/// sequential Rust and of postcard alone.
fn primes(threads: &ThreadPoolExecutor, processes: &ProcessPoolExecutor) -> Vec<Row> {
    let flags: Vec<bool> = PRIMES.map(is_prime).collect();
    let expected = flags.iter().filter(|&&flag| flag).count();
    let arguments_sum = PRIMES.fold(0, u64::wrapping_add);
    let flags = &flags;
    let mut candidates = vec![
        Candidate::new("sequential Rust", 1, || {
            let count = black_box(PRIMES).filter(|&n| is_prime(n)).count();
            assert_eq!(count, expected);
        }),
        // The machine's own limit for this workload: one plain thread per
        // CPU, each taking every N-th block of 4096 numbers (blocks, not
        // single numbers: with two threads, one would get every even
        // number, which is no work), no pool, no queue, no allocation.
        Candidate::new("floor: std::thread::scope, interleaved blocks", 1, || {
            let count = on_every_cpu(black_box(PRIMES), 4096, |block| {
                block.filter(|&n| is_prime(n)).count() as u64
            });
            assert_eq!(count, expected as u64);
        }),
        // What a pool that moves every argument and result through postcard
        // adds to the work: the process pool's floor is the sequential time
        // plus this, spread over N CPUs (the external row below).
        Candidate::new(SERDE_ONLY, 1, || {
            let (sum, trues) = postcard_round_trips(black_box(PRIMES), black_box(flags));
            assert_eq!((sum, trues), (arguments_sum, expected));
        }),
        Candidate::new(format!("{OURS} thread pool, automatic chunks"), 1, || {
            assert_eq!(
                count_primes(threads.map(is_prime, black_box(PRIMES))),
                expected
            );
        }),
        Candidate::new(format!("{OURS} process pool, automatic chunks"), 1, || {
            assert_eq!(
                count_primes(processes.map(is_prime, black_box(PRIMES))),
                expected
            );
        }),
    ];
    for size in CHUNK_SWEEP {
        let fixed = Chunksize::Fixed(NonZeroUsize::new(size).expect("not zero"));
        candidates.push(Candidate::new(
            format!("  threads Fixed({size})"),
            1,
            move || {
                let flags = threads.map(is_prime, black_box(PRIMES)).chunksize(fixed);
                assert_eq!(count_primes(flags), expected);
            },
        ));
        candidates.push(Candidate::new(
            format!("  processes Fixed({size})"),
            1,
            move || {
                let flags = processes.map(is_prime, black_box(PRIMES)).chunksize(fixed);
                assert_eq!(count_primes(flags), expected);
            },
        ));
    }
    let mut rows = measure_with(seed_samples(), S2, Unit::Per("run"), candidates);
    let median = |name: &str| {
        let row = rows.iter().find(|row| row.name == name);
        row.expect("a measured candidate").median
    };
    let serde_floor = (median("sequential Rust") + median(SERDE_ONLY)) / cpus() as f64;
    let at = rows.iter().position(|row| row.name == SERDE_ONLY);
    rows.insert(
        at.expect("a measured candidate") + 1,
        Row::external(
            S2,
            "floor: (sequential + serde) / N",
            Unit::Per("run"),
            1,
            serde_floor,
        ),
    );
    rows
}

/// Program 3: the prime factors of [`TO_FACTOR`], automatic chunks.
fn factors(threads: &ThreadPoolExecutor, processes: &ProcessPoolExecutor) -> Vec<Row> {
    fn check(all: Vec<Vec<u64>>) {
        for (value, factors) in TO_FACTOR.iter().zip(all) {
            assert_eq!(factors.iter().product::<u64>(), *value);
        }
    }
    let candidates = vec![
        Candidate::new(format!("{OURS} process pool"), 1, || {
            let all = processes
                .map(prime_factor, black_box(TO_FACTOR))
                .collect::<Result<Vec<_>, _>>()
                .expect("no item fails");
            check(all);
        }),
        Candidate::new("  (ours, thread pool)", 1, || {
            let all = threads
                .map(prime_factor, black_box(TO_FACTOR))
                .collect::<Result<Vec<_>, _>>()
                .expect("no item fails");
            check(all);
        }),
        Candidate::new("sequential Rust", 1, || {
            check(black_box(TO_FACTOR).map(prime_factor).to_vec());
        }),
    ];
    measure_with(seed_samples(), S3, Unit::Per("run"), candidates)
}

/// Program 4: [`heavy`] over [`HEAVY_ITEMS`], sequentially, at the
/// machine's floor and on each pool with automatic chunks. Short enough
/// for every sample of `samples()`.
fn heavy_map(threads: &ThreadPoolExecutor, processes: &ProcessPoolExecutor) -> Vec<Row> {
    let items = HEAVY_ITEMS.end - HEAVY_ITEMS.start;
    let expected = HEAVY_ITEMS.map(heavy).fold(0, u64::wrapping_add);
    let candidates = vec![
        Candidate::new("sequential Rust", items, || {
            let sum = black_box(HEAVY_ITEMS).map(heavy).fold(0, u64::wrapping_add);
            assert_eq!(sum, expected);
        }),
        // Every item costs the same, so one contiguous block per CPU
        // shares the work out exactly.
        Candidate::new("floor: std::thread::scope, a block per CPU", items, || {
            let block = items.div_ceil(cpus() as u64);
            let sum = on_every_cpu(black_box(HEAVY_ITEMS), block, |block| {
                block.map(heavy).fold(0, u64::wrapping_add)
            });
            assert_eq!(sum, expected);
        }),
        Candidate::new(
            format!("{OURS} thread pool, automatic chunks"),
            items,
            || {
                let sum = wrapping_sum(threads.map(heavy, black_box(HEAVY_ITEMS)));
                assert_eq!(sum, expected);
            },
        ),
        Candidate::new(
            format!("{OURS} process pool, automatic chunks"),
            items,
            || {
                let sum = wrapping_sum(processes.map(heavy, black_box(HEAVY_ITEMS)));
                assert_eq!(sum, expected);
            },
        ),
    ];
    measure_with(samples(), S4, Unit::Per("item"), candidates)
}

/// The same programs in Python: one row per program it ran, or `None` if
/// python3 cannot run them.
fn python(workers: usize, wanted: &dyn Fn(&str) -> bool) -> Option<Vec<Row>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/seeds.py");
    let mut programs = vec![
        (
            S1,
            "is_prime_big",
            format!("Python ProcessPoolExecutor({workers}), chunksize=1"),
        ),
        (S2, "primes_sequential", String::from("Python sequential")),
        (
            S2,
            "primes_pool",
            format!("Python multiprocessing.Pool({workers})"),
        ),
        (
            S3,
            "factors_pool",
            format!("Python multiprocessing.Pool({workers})"),
        ),
    ];
    programs.retain(|(workload, ..)| wanted(workload));
    if programs.is_empty() {
        return Some(Vec::new());
    }
    let output = Command::new("python3")
        .arg(script)
        .args([workers.to_string(), python_samples().min(3).to_string()])
        .args(programs.iter().map(|(_, program, _)| *program))
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = programs
        .into_iter()
        .filter_map(|(workload, program, name)| {
            let median = stdout.lines().find_map(|line| {
                let (key, seconds) = line.split_once(' ')?;
                (key == program).then(|| seconds.trim().parse().ok())?
            })?;
            Some(Row::external(workload, name, Unit::Per("run"), 1, median))
        })
        .collect();
    Some(rows)
}

/// This bench's lines of the scoreboard.
fn scores(rows: &[Row], workers: usize) -> Vec<Score> {
    const SECTION: &str = "seed programs";
    const SEQUENTIAL: (&str, &str) = ("sequential Rust", "sequential Rust");
    let speedup = Target::SpeedupAtLeast(SPEEDUP_PER_CORE * workers as f64);
    let python_seq = ("Python sequential", "Python sequential");
    let python_pool = ("Python multiprocessing.Pool", "Python mp.Pool");
    let floor = (
        "floor: std",
        "floor: std::thread::scope, interleaved blocks",
    );
    let serde_floor = (
        "floor: (sequential + serde)",
        "floor: (sequential + serde) / N",
    );
    let block_floor = ("floor: std", "floor: std::thread::scope, a block per CPU");
    [
        score(
            rows,
            SECTION,
            format!(
                "is_prime over the 100 integers from 112 272 535 095 293, chunk size 1, \
                 process pool of {workers}"
            ),
            S1,
            OURS,
            &[
                ("Python", "Python PPE"),
                SEQUENTIAL,
                ("  (ours, thread pool", "ours on threads"),
            ],
            Target::None,
        ),
        score(
            rows,
            SECTION,
            format!("primes in 10..2 500 000, thread pool of {workers}"),
            S2,
            &format!("{OURS} thread pool"),
            &[SEQUENTIAL, floor, python_seq, python_pool],
            speedup,
        ),
        score(
            rows,
            SECTION,
            format!("primes in 10..2 500 000, process pool of {workers}"),
            S2,
            &format!("{OURS} process pool"),
            &[SEQUENTIAL, serde_floor, floor, python_seq, python_pool],
            speedup,
        ),
        score(
            rows,
            SECTION,
            format!("prime factors of 20 integers, process pool of {workers}"),
            S3,
            OURS,
            &[
                ("Python", "Python mp.Pool"),
                SEQUENTIAL,
                ("  (ours, thread pool", "ours on threads"),
            ],
            Target::None,
        ),
        // Program 4 judges the same target as the primes lines, in the same
        // section, just below them: a section of its own would come after
        // "automatic chunking" in `benches/scoreboard`'s order, far from
        // them.
        score(
            rows,
            SECTION,
            format!("CPU-bound map of 10 000 items of ~20 µs, thread pool of {workers}"),
            S4,
            &format!("{OURS} thread pool"),
            &[SEQUENTIAL, block_floor],
            speedup,
        ),
        score(
            rows,
            SECTION,
            format!("CPU-bound map of 10 000 items of ~20 µs, process pool of {workers}"),
            S4,
            &format!("{OURS} process pool"),
            &[SEQUENTIAL, block_floor],
            speedup,
        ),
        chunk_score(
            rows,
            format!("thread pool map is_prime over 10..2 500 000, {workers} threads"),
            S2,
            &format!("{OURS} thread pool"),
            "  threads ",
        ),
        chunk_score(
            rows,
            format!("process pool map is_prime over 10..2 500 000, {workers} workers"),
            S2,
            &format!("{OURS} process pool"),
            "  processes ",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A program's measurement.
type Program = fn(&ThreadPoolExecutor, &ProcessPoolExecutor) -> Vec<Row>;

fn main() {
    concurrent_futures::init();
    let workers = cpus();
    println!(
        "seeds bench: {workers} CPUs, pools of {workers}, {} samples after a warm-up ({} for \
         program 4), medians (Python: {}, no warm-up); 'vs ours' = time ÷ ours (above 1 = \
         slower than ours)",
        seed_samples(),
        samples(),
        python_samples().min(3),
    );
    println!();

    // `cargo bench … -- 2` runs program 2 only (and its Python peers).
    let wanted = harness::chosen_workloads();

    let started = Instant::now();
    let threads = ThreadPoolExecutor::new(workers);
    let processes = ProcessPoolExecutor::new(workers).expect("a process pool");
    let programs: [(&str, Program); 4] = [
        (S1, is_prime_big),
        (S2, primes),
        (S3, factors),
        (S4, heavy_map),
    ];
    let mut rows = Vec::new();
    for (workload, run) in programs {
        if wanted(workload) {
            rows.extend(run(&threads, &processes));
        }
    }
    let python_rows = python(workers, &wanted);
    let skipped = python_rows.is_none();
    for row in python_rows.into_iter().flatten() {
        insert_after_workload(&mut rows, row);
    }

    print_table(&rows);
    if skipped {
        println!();
        println!("Python seed programs: skipped: python3 not available or the script failed");
    }
    report("seeds", &rows, &scores(&rows, workers));
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
