//! The worker's loop for plain numbers (a `fn` whose argument and result
//! are both `bool`, integers or floats runs without serde, its results
//! written straight into the shared slot) keeps every rule of the per-item
//! loop: a panic fails its item alone, a death costs exactly the item it
//! was running, nothing runs twice, and a chunk with more results than a
//! slot holds (65 536) hands the slot over and goes on.
//!
//! The task here gets only a number, so the number carries everything:
//! the item's index (low 32 bits), its fate (next 8) and the test's tag
//! (the rest), which names the log directory. Each item appends its index
//! to that log before it does anything else (one `write` with `O_APPEND`:
//! atomic), so the log tells how many times each item ran.

use std::collections::HashSet;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor};

const PASS: u64 = 0;
const PANIC: u64 = 1;
const ABORT: u64 = 2;
const EXIT: u64 = 3;
/// Sleeps far past the time limit of [`LIMIT`].
const SLEEP: u64 = 4;

/// The per-item time limit of the test that has one.
const LIMIT: Duration = Duration::from_millis(300);

/// The exit code of an item whose fate is `EXIT`.
const EXIT_CODE: i32 = 9;

fn log_dir(tag: u64) -> PathBuf {
    std::env::temp_dir().join(format!("cf-plain-numbers-{tag}"))
}

/// An item: its tag, fate and index in one number.
fn item(tag: u64, fate: u64, index: u64) -> u64 {
    (tag << 40) | (fate << 32) | index
}

/// The value an item that passes returns.
fn value(index: u64) -> u64 {
    index * 3 + 1
}

/// The task: logs the item's index, then meets its fate.
fn run(x: u64) -> u64 {
    let (tag, fate, index) = (x >> 40, (x >> 32) & 0xff, x & 0xffff_ffff);
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_dir(tag).join("log"))
        .expect("open the log");
    log.write_all(format!("{index}\n").as_bytes())
        .expect("append to the log");
    drop(log);
    match fate {
        PANIC => panic!("item {index} panics"),
        ABORT => std::process::abort(),
        EXIT => std::process::exit(EXIT_CODE),
        SLEEP => {
            std::thread::sleep(LIMIT * 7);
            value(index)
        }
        _ => value(index),
    }
}

/// Runs `len` items whose fates `fate` gives, in fixed chunks of `chunk`,
/// and checks every outcome and the log.
fn check(test: u64, len: u64, chunk: usize, fate: impl Fn(u64) -> u64) {
    check_with(test, len, chunk, None, fate);
}

/// [`check`], with a per-item time limit if `limit`.
fn check_with(
    test: u64,
    len: u64,
    chunk: usize,
    limit: Option<Duration>,
    fate: impl Fn(u64) -> u64,
) {
    let tag = (u64::from(std::process::id()) & 0xff_ffff) << 8 | test;
    let dir = log_dir(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the log directory");
    let mut builder = ProcessPoolExecutor::builder().max_workers(2);
    if let Some(limit) = limit {
        builder = builder.task_timeout(limit);
    }
    let pool = builder.build().unwrap();
    let items: Vec<u64> = (0..len).map(|i| item(tag, fate(i), i)).collect();
    let outcomes: Vec<Result<u64, Error>> = pool
        .map(run, items)
        .chunksize(Chunksize::Fixed(NonZeroUsize::new(chunk).unwrap()))
        .collect();
    let text = std::fs::read_to_string(dir.join("log")).expect("read the log");
    let _ = std::fs::remove_dir_all(&dir);
    let mut runs = vec![0u32; len as usize];
    for line in text.lines() {
        let index: usize = line.parse().expect("a whole line");
        runs[index] += 1;
    }
    assert_eq!(outcomes.len() as u64, len, "one outcome per item");
    let mut dead = HashSet::new();
    for (index, outcome) in outcomes.iter().enumerate() {
        let i = index as u64;
        match (fate(i), outcome) {
            (PASS, Ok(v)) => assert_eq!(*v, value(i), "item {index}"),
            (PANIC, Err(Error::Panicked { message, .. })) => {
                assert_eq!(message, &format!("item {index} panics"));
            }
            (
                ABORT,
                Err(Error::WorkerDied {
                    pid,
                    signal: Some(libc::SIGABRT),
                    ..
                }),
            )
            | (
                EXIT,
                Err(Error::WorkerDied {
                    pid,
                    exit_code: Some(EXIT_CODE),
                    ..
                }),
            )
            | (SLEEP, Err(Error::TaskTimedOut { pid, .. })) => {
                assert!(dead.insert(*pid), "item {index}: worker {pid} died twice");
            }
            (want, got) => panic!("item {index} (fate {want}): got {got:?}"),
        }
        assert_eq!(runs[index], 1, "item {index} ran {} times", runs[index]);
    }
}

#[test]
fn panics_and_deaths_in_a_chunk_larger_than_a_slot_cost_their_items_alone() {
    // One chunk of 140 000 outcomes: the slot fills at 65 536 and again
    // at 131 072; failures on both sides of those edges.
    check(1, 140_000, 140_000, |i| match i {
        10 | 65_535 | 65_536 | 65_537 | 131_071 => PANIC,
        70_000 => ABORT,
        100_000 | 139_999 => EXIT,
        _ => PASS,
    });
}

#[test]
fn time_limit_kills_cost_the_slow_items_alone() {
    check_with(3, 600, 100, Some(LIMIT), |i| match i {
        150 | 420 => SLEEP,
        151 => PANIC,
        _ => PASS,
    });
}

#[test]
fn panics_in_a_row_and_at_chunk_edges_cost_their_items_alone() {
    check(2, 3_000, 500, |i| match i {
        0 | 499 | 500 | 1_000..=1_004 | 2_999 => PANIC,
        1_500 => ABORT,
        _ => PASS,
    });
}

fn halve(x: i8) -> f32 {
    if x == -7 {
        panic!("minus seven");
    }
    f32::from(x) / 2.0
}

fn wide(flag: bool) -> u128 {
    if flag {
        u128::MAX - 1
    } else {
        1 << 100
    }
}

fn positive(x: f64) -> bool {
    x > 0.0
}

fn narrow(x: usize) -> i16 {
    (x % 60_000) as i16
}

/// Every plain type in and out, against the same function in this process.
#[test]
fn every_plain_type_comes_back_as_the_function_returns_it() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let fixed = |n| Chunksize::Fixed(NonZeroUsize::new(n).unwrap());
    let bytes: Vec<i8> = (0..1_000).map(|i| (i % 256 - 128) as i8).collect();
    let halves: Vec<_> = pool
        .map(halve, bytes.clone())
        .chunksize(fixed(77))
        .collect();
    for (x, got) in bytes.iter().zip(&halves) {
        match got {
            Ok(v) => assert_eq!(*v, halve(*x)),
            Err(Error::Panicked { message, .. }) => {
                assert_eq!(*x, -7);
                assert_eq!(message, "minus seven");
            }
            Err(e) => panic!("{x}: {e}"),
        }
    }
    assert_eq!(halves.iter().filter(|r| r.is_err()).count(), 4);
    let flags: Vec<bool> = (0..70_000).map(|i| i % 3 == 0).collect();
    let wides: Vec<u128> = pool
        .map(wide, flags.clone())
        .chunksize(fixed(70_000))
        .map(Result::unwrap)
        .collect();
    assert_eq!(wides, flags.iter().map(|&f| wide(f)).collect::<Vec<_>>());
    let floats: Vec<f64> = (0..5_000).map(|i| f64::from(i) - 2_500.5).collect();
    let signs: Vec<bool> = pool
        .map(positive, floats.clone())
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        signs,
        floats.iter().map(|&x| positive(x)).collect::<Vec<_>>()
    );
    let sizes: Vec<usize> = (0..200_000).map(|i| i * 7).collect();
    let narrows: Vec<i16> = pool
        .map(narrow, sizes.clone())
        .chunksize(fixed(150_000))
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        narrows,
        sizes.iter().map(|&x| narrow(x)).collect::<Vec<_>>()
    );
}

fn add_one(x: u64) -> u64 {
    x + 1
}

/// Plain-number arguments are gathered into the pool's argument arena
/// (16 MiB, shared with the workers) when a chunk fits the room left, and
/// into a vector sent through the pipe when it does not: a chunk larger
/// than the arena, a window of chunks that fills it, many small ones. Every
/// item comes back, in order, either way.
#[test]
fn chunks_larger_than_the_arena_or_past_its_room_come_back_whole() {
    let pool = ProcessPoolExecutor::new(2).expect("a pool");
    for (len, chunk, window) in [
        (2_200_000u64, 2_200_000usize, 1usize),
        (4_000_000, 1_000_000, 4),
        (300_000, 5_000, 16),
    ] {
        let chunksize = Chunksize::Fixed(NonZeroUsize::new(chunk).expect("not zero"));
        let mut next = 0u64;
        for result in pool
            .map(add_one, 0..len)
            .chunksize(chunksize)
            .window(window)
        {
            next += 1;
            assert_eq!(result, Ok(next), "{len} items in chunks of {chunk}");
        }
        assert_eq!(next, len, "{len} items in chunks of {chunk}");
    }
}

/// An input that panics while a chunk is being gathered into the arena
/// panics in the caller, as any input does; the pool goes on, and its
/// next maps get every item.
#[test]
fn an_input_that_panics_mid_chunk_leaves_the_pool_whole() {
    let pool = ProcessPoolExecutor::new(2).expect("a pool");
    for _ in 0..3 {
        let input = (0..100_000u64).inspect(|&x| assert!(x != 70_000, "the input ends badly"));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.map(add_one, input)
                .chunksize(Chunksize::Fixed(
                    NonZeroUsize::new(30_000).expect("not zero"),
                ))
                .count()
        }));
        assert!(caught.is_err(), "the input's panic reaches the caller");
        let sum: u64 = pool
            .map(add_one, 0..200_000u64)
            .map(|r| r.expect("no item fails"))
            .sum();
        assert_eq!(sum, 200_000 * 200_001 / 2);
    }
}
