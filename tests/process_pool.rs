//! `ProcessPoolExecutor` through its public API: values of several types
//! round-trip, `map` keeps order, tasks run in another process whose output
//! cannot corrupt the protocol, panics, `max_tasks_per_child`, the
//! initializer, cancellation and shutdown, and values that fail to encode or
//! decode. Worker deaths, time limits and process hygiene are in
//! `tests/process_faults.rs`.
//!
//! The workers are this very test binary, re-executed: every function
//! below can run in a worker.

use std::num::NonZeroUsize;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor};

mod common;
use common::{wait_for, TempDir};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ---------------------------------------------------------------- helpers

/// The argument of a [`block_until_released`] task.
fn blocker(dir: &TempDir, tag: u32) -> (String, u32) {
    (dir.text(), tag)
}

/// A task that says it started (a file holding its pid) and then waits
/// for the test's release file — 20 s at most, so that a worker never
/// outlives a failed test by long.
fn block_until_released((dir, tag): (String, u32)) -> u32 {
    let dir = Path::new(&dir);
    let pid = std::process::id();
    let temporary = dir.join(format!("started-{tag}.tmp"));
    std::fs::write(&temporary, pid.to_string()).expect("write the started file");
    std::fs::rename(&temporary, dir.join(format!("started-{tag}"))).expect("rename it");
    wait_for(|| dir.join("release").exists(), Duration::from_secs(20));
    pid
}

/// A task whose only effect is a file: it proves whether the task ran.
fn touch(path: String) -> bool {
    std::fs::write(path, b"ran").is_ok()
}

fn own_pid(_: ()) -> u32 {
    std::process::id()
}

fn double(x: u64) -> u64 {
    x * 2
}

fn fixed(n: usize) -> Chunksize {
    Chunksize::Fixed(NonZeroUsize::new(n).expect("a chunk size above 0"))
}

// ------------------------------------------------------- values and types

/// A struct with an enum, a vector of tuples and an option, by serde derive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    customer: String,
    lines: Vec<(String, u32)>,
    kind: Kind,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Retail,
    Wholesale { discount: u8 },
}

fn fill(mut order: Order) -> Order {
    order.lines.push(("packing".to_owned(), 1));
    order.kind = Kind::Wholesale { discount: 10 };
    order.note = order.note.map(|note| note.to_uppercase());
    order
}

fn describe((name, count, ratio): (String, u32, f64)) -> String {
    format!("{name}:{count}:{ratio:.2}")
}

fn reverse_bytes(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

#[test]
fn values_of_many_types_round_trip() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(pool.submit(double, 21).result(), Ok(42));
    assert_eq!(pool.submit(double, u64::MAX / 2).result(), Ok(u64::MAX - 1));
    let upper = pool.submit(|s: String| s.to_uppercase(), "grüße".to_owned());
    assert_eq!(upper.result().as_deref(), Ok("GRÜSSE"));
    let text = pool.submit(describe, ("pears".to_owned(), 7, 0.125));
    assert_eq!(text.result().as_deref(), Ok("pears:7:0.12"));
    // Over 64 KiB: the frame goes out in two writes.
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut expected = bytes.clone();
    expected.reverse();
    assert_eq!(pool.submit(reverse_bytes, bytes).result(), Ok(expected));
    assert_eq!(pool.submit(reverse_bytes, Vec::new()).result(), Ok(vec![]));
    let order = Order {
        customer: "Ada".to_owned(),
        lines: vec![("tea".to_owned(), 3)],
        kind: Kind::Retail,
        note: Some("by the door".to_owned()),
    };
    let mut expected = order.clone();
    expected.lines.push(("packing".to_owned(), 1));
    expected.kind = Kind::Wholesale { discount: 10 };
    expected.note = Some("BY THE DOOR".to_owned());
    assert_eq!(pool.submit(fill, order).result(), Ok(expected));
    // A non-capturing closure with a unit argument and an Option result.
    let none = pool.submit(|(): ()| Option::<u8>::None, ());
    assert_eq!(none.result(), Ok(None));
}

#[test]
fn map_yields_ten_thousand_results_in_order() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let expected: Vec<u64> = (0..10_000).map(|x| x * 2).collect();
    let chunked: Vec<u64> = pool
        .map(double, 0..10_000u64)
        .chunksize(fixed(64))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, expected);
    let auto: Vec<u64> = pool
        .map(double, 0..10_000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(auto, expected);
    let one_at_a_time: Vec<u64> = pool
        .map(double, 0..200u64)
        .chunksize(fixed(1))
        .window(1)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(one_at_a_time, expected[..200]);
}

/// Odd items panic: the consumers that fold (`sum`, `count`, `filter`)
/// see every outcome in place, as `next` does.
fn double_even(x: u64) -> u64 {
    assert!(x % 2 == 0, "odd {x}");
    x * 2
}

#[test]
fn folding_consumers_see_every_outcome_in_place() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let sum: u64 = pool.map(double, 0..100_000u64).map(Result::unwrap).sum();
    assert_eq!(sum, 100_000 * 99_999);
    let failed = pool
        .map(double_even, 0..1_000u64)
        .chunksize(fixed(7))
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 500);
    let mut map = pool.map(double_even, 0..1_000u64).chunksize(fixed(7));
    let head: Vec<bool> = map.by_ref().take(10).map(|r| r.is_ok()).collect();
    let rest = map.fold(Vec::new(), |mut rest, r| {
        rest.push(r.map_err(|e| e.to_string()));
        rest
    });
    assert_eq!(head, (0..10).map(|x| x % 2 == 0).collect::<Vec<_>>());
    assert_eq!(rest.len(), 990);
    for (x, r) in (10u64..).zip(&rest) {
        match r {
            Ok(v) => assert_eq!((x % 2, *v), (0, x * 2)),
            Err(e) => assert!(x % 2 == 1 && e.contains(&format!("odd {x}")), "{x}: {e}"),
        }
    }
}

#[test]
fn map_over_an_endless_iterator_takes_what_is_asked() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let first: Vec<u64> = pool
        .map(|x: u64| x * x, 1u64..)
        .chunksize(fixed(7))
        .take(1000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, (1..=1000u64).map(|x| x * x).collect::<Vec<_>>());
    // Dropping the map above cancelled its chunks in flight; the pool goes on.
    assert_eq!(pool.submit(double, 5).result(), Ok(10));
}

// --------------------------------------------------- in another process

/// What a task sees of the process it runs in.
fn where_am_i(_: ()) -> (u32, usize, Option<String>, bool) {
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
    let thread = std::thread::current().name().map(str::to_owned);
    let marker = std::env::var_os("CONCURRENT_FUTURES_WORKER").is_some();
    (std::process::id(), threads, thread, marker)
}

#[test]
fn tasks_run_in_a_worker_that_never_entered_main() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (pid, threads, thread, marker) = pool.submit(where_am_i, ()).result().unwrap();
    assert_ne!(pid, std::process::id());
    assert_eq!(pool.worker_pids(), [pid]);
    // Had the worker gone through the test harness's `main`, the task would
    // run on a test thread, next to the harness's own threads. A worker has
    // two: its main thread, waiting, and the one that runs tasks.
    assert_eq!(threads, 2, "the worker runs two threads");
    assert_eq!(thread, Some(format!("ProcessPoolExecutor-worker-{pid}")));
    assert!(
        !marker,
        "the worker marker is gone from the task's environment"
    );
}

/// Environment variable that makes [`child_helper`] do something.
const HELPER: &str = "CF_PROCESS_POOL_TEST_HELPER";

/// Bytes that look like frames of the protocol: a length prefix, then a
/// `Done` header and an outcome.
const FAKE_FRAME: [u8; 16] = [11, 0, 0, 0, 5, 1, 0, 0, 6, 0, 0, 0, 0xff, 0xfe, b'\n', 0];

fn print_storm(seed: u64) -> u64 {
    use std::io::Write;
    for i in 0..2_000 {
        println!("STORM-TEXT {seed} line {i}");
        eprintln!("storm on stderr {seed} line {i}");
    }
    let mut out = std::io::stdout().lock();
    for _ in 0..4_000 {
        out.write_all(&FAKE_FRAME).expect("write to stdout");
    }
    out.flush().expect("flush stdout");
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Runs in a child process of this test binary, with its output piped to
/// the test that started it (so the storm does not land on the terminal).
#[test]
#[ignore = "a helper: runs only when a test re-executes this binary"]
fn child_helper() {
    let Ok(mode) = std::env::var(HELPER) else {
        return;
    };
    assert_eq!(mode, "print_storm");
    let pool = ProcessPoolExecutor::new(1).unwrap();
    for seed in [1u64, 2, 3] {
        let expected = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        assert_eq!(pool.submit(print_storm, seed).result(), Ok(expected));
    }
    let mapped: Vec<u64> = pool
        .map(print_storm, 10..14u64)
        .chunksize(fixed(2))
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<u64> = (10..14u64)
        .map(|s| s.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    assert_eq!(mapped, expected);
    println!("HELPER-RESULTS-CORRECT");
}

#[test]
fn task_output_does_not_corrupt_the_protocol() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_helper", "--ignored", "--nocapture"])
        .env(HELPER, "print_storm")
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "helper failed: {stderr}");
    assert!(stdout.contains("HELPER-RESULTS-CORRECT"));
    // The tasks' output reached the user's streams, all of it.
    assert_eq!(stdout.matches("STORM-TEXT ").count(), 7 * 2_000);
    assert_eq!(stderr.matches("storm on stderr ").count(), 7 * 2_000);
}

// ---------------------------------------------------------------- panics

fn fragile(x: u64) -> u64 {
    if x % 10 == 5 {
        panic!("item {x} is cursed");
    }
    x * 3
}

#[test]
fn a_panic_reports_message_location_and_pid_and_the_worker_lives_on() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let pid = pool.submit(own_pid, ()).result().unwrap();
    match pool.submit(fragile, 5).result() {
        Err(Error::Panicked {
            message,
            location,
            pid: panic_pid,
        }) => {
            assert_eq!(message, "item 5 is cursed");
            let location = location.expect("a location");
            assert!(location.contains("process_pool.rs:"), "{location}");
            assert_eq!(panic_pid, Some(pid));
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(pool.submit(fragile, 4).result(), Ok(12));
    assert_eq!(pool.worker_pids(), [pid], "the same worker goes on");
    let odd = pool.submit(|_: ()| -> u8 { std::panic::panic_any(17u8) }, ());
    assert!(matches!(odd.result(), Err(Error::Panicked { pid: Some(p), .. }) if p == pid));
}

#[test]
fn a_panicking_item_fails_alone_in_its_chunk() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let results: Vec<_> = pool.map(fragile, 0..30u64).chunksize(fixed(10)).collect();
    assert_eq!(results.len(), 30);
    for (x, result) in (0..30u64).zip(results) {
        match result {
            Ok(value) => assert_eq!(value, x * 3),
            Err(Error::Panicked { message, .. }) if x % 10 == 5 => {
                assert_eq!(message, format!("item {x} is cursed"));
            }
            other => panic!("item {x}: {other:?}"),
        }
    }
}

// ----------------------------------------------------- number of workers

// Issue 11, hole 9: 0 workers means the default number, in `new` as in the
// builder, the same as for the thread pool (tests/thread_pool.rs). CPython
// refuses 0 with a ValueError; see `ProcessPoolExecutor::new` for why not
// here.
#[test]
fn zero_workers_means_the_default_number() {
    let default = ProcessPoolExecutor::builder()
        .build()
        .expect("a pool")
        .max_workers();
    assert!(default >= 1);
    let pool = ProcessPoolExecutor::new(0).expect("0 workers is the default");
    assert_eq!(pool.max_workers(), default);
    assert_eq!(pool.submit(double, 21).result(), Ok(42));
    let built = ProcessPoolExecutor::builder().max_workers(0).build();
    assert_eq!(built.map(|pool| pool.max_workers()), Ok(default));
}

// ------------------------------------- max_tasks_per_child, initializer

#[test]
fn max_tasks_per_child_replaces_the_worker_after_n_tasks() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..9)
        .map(|_| pool.submit(own_pid, ()).result().unwrap())
        .collect();
    for group in pids.chunks(3) {
        assert!(group.iter().all(|&p| p == group[0]), "{pids:?}");
    }
    assert!(pids[0] != pids[3] && pids[3] != pids[6] && pids[0] != pids[6]);
}

/// Set by [`remember_initializer`], in the worker it ran in.
static INITIALIZED_IN: AtomicU32 = AtomicU32::new(0);

fn remember_initializer() -> Result<(), String> {
    INITIALIZED_IN.store(std::process::id(), Ordering::SeqCst);
    Ok(())
}

fn initializer_seen(_: ()) -> (u32, u32) {
    (INITIALIZED_IN.load(Ordering::SeqCst), std::process::id())
}

#[test]
fn the_initializer_runs_in_every_worker_before_its_tasks() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(2)
        .initializer(remember_initializer)
        .build()
        .unwrap();
    let seen: Vec<(u32, u32)> = (0..12)
        .map(|_| pool.submit(initializer_seen, ()))
        .map(|f| f.result().unwrap())
        .collect();
    for (initialized_in, pid) in &seen {
        assert_eq!(initialized_in, pid, "{seen:?}");
    }
    let workers: std::collections::HashSet<u32> = seen.iter().map(|&(_, pid)| pid).collect();
    assert!(workers.len() >= 6, "replacements are initialized too");
    assert_eq!(
        INITIALIZED_IN.load(Ordering::SeqCst),
        0,
        "not in the parent"
    );
}

fn no_database() -> Result<(), String> {
    Err("no database at db.invalid".to_owned())
}

fn exploding_initializer() -> Result<(), String> {
    panic!("the initializer exploded")
}

#[test]
fn a_failing_initializer_breaks_the_pool_with_its_reason() {
    for (init, why) in [
        (
            no_database as fn() -> Result<(), String>,
            "no database at db.invalid",
        ),
        (exploding_initializer, "the initializer exploded"),
    ] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(2)
            .initializer(init)
            .build()
            .unwrap();
        let broken = |outcome: Result<u64, Error>| matches!(outcome, Err(Error::BrokenPool { reason }) if reason.contains(why));
        let first = pool.submit(double, 1).result();
        assert!(broken(first.clone()), "{first:?}");
        assert!(pool.is_shutdown());
        assert!(broken(pool.submit(double, 2).result()));
        assert!(pool.map(double, 0..5u64).all(broken));
    }
}

// -------------------------------------------- cancellation and shutdown

#[test]
fn a_queued_task_can_be_cancelled_and_never_runs() {
    let dir = TempDir::new("pool", "cancel");
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let busy = pool.submit(block_until_released, blocker(&dir, 0));
    let queued = pool.submit(touch, dir.file("queued-ran"));
    let worker = dir.started(0);
    assert!(busy.running());
    assert!(!queued.running(), "a queued task is not running");
    assert!(queued.cancel());
    assert!(queued.cancelled() && queued.done());
    dir.release();
    busy.wait();
    assert!(!busy.running() && busy.done());
    assert_eq!(busy.result(), Ok(worker));
    // The control: a task like the cancelled one leaves its file.
    assert_eq!(
        pool.submit(touch, dir.file("control-ran")).result(),
        Ok(true)
    );
    pool.shutdown();
    assert!(Path::new(&dir.file("control-ran")).exists());
    assert!(!Path::new(&dir.file("queued-ran")).exists());
    assert_eq!(queued.result(), Err(Error::Cancelled));
}

#[test]
fn shutdown_cancel_cancels_queued_work_and_waits_for_running() {
    let dir = TempDir::new("pool", "shutdown-cancel");
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let busy = pool.submit(block_until_released, blocker(&dir, 0));
    let queued: Vec<_> = (0..5)
        .map(|i| pool.submit(touch, dir.file(&format!("queued-{i}"))))
        .collect();
    let worker = dir.started(0);
    std::thread::scope(|s| {
        let shutting = s.spawn(|| pool.shutdown_cancel());
        // Done means cancelled here: the worker is still busy.
        queued.iter().for_each(|f| f.wait());
        assert!(!shutting.is_finished(), "it waits for the running task");
        dir.release();
    });
    assert_eq!(busy.result(), Ok(worker));
    for (i, f) in queued.into_iter().enumerate() {
        assert_eq!(f.result(), Err(Error::Cancelled));
        assert!(!Path::new(&dir.file(&format!("queued-{i}"))).exists());
    }
    assert!(pool.is_shutdown() && pool.worker_pids().is_empty());
    assert_eq!(pool.submit(double, 1).result(), Err(Error::Shutdown));
}

#[test]
fn shutdown_runs_queued_tasks_and_refuses_new_ones() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (0..50u64).map(|x| pool.submit(double, x)).collect();
    pool.shutdown();
    assert!(pool.is_shutdown() && pool.worker_pids().is_empty());
    for (x, f) in (0..50u64).zip(futures) {
        assert_eq!(f.result(), Ok(x * 2));
    }
    assert_eq!(pool.submit(double, 1).result(), Err(Error::Shutdown));
    assert!(pool.map(double, 0..3u64).all(|r| r == Err(Error::Shutdown)));
    pool.shutdown(); // idempotent
}

// ------------------------------------------------ encoding and decoding

/// Counts the calls of the functions below, in the worker.
static CALLS: AtomicU64 = AtomicU64::new(0);

fn calls(_: ()) -> u64 {
    CALLS.load(Ordering::SeqCst)
}

/// A number that refuses to be encoded when it is 13.
#[derive(Debug, Deserialize)]
struct Unlucky(u32);

impl Serialize for Unlucky {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("nope"));
        }
        serializer.serialize_newtype_struct("Unlucky", &self.0)
    }
}

/// Encodes like a `u32` and never decodes.
#[derive(Debug)]
struct Undecodable(u32);

impl Serialize for Undecodable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("nope"))
    }
}

fn count_unlucky(x: Unlucky) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x.0
}

fn count_undecodable(x: Undecodable) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x.0
}

fn make_unlucky(x: u32) -> Unlucky {
    Unlucky(x)
}

fn make_undecodable(x: u32) -> Undecodable {
    Undecodable(x)
}

fn is_encode(outcome: &Result<impl std::fmt::Debug, Error>, which: &str) -> bool {
    matches!(outcome, Err(Error::Encode { what, reason }) if *what == which && !reason.is_empty())
}

fn is_decode(outcome: &Result<impl std::fmt::Debug, Error>, which: &str) -> bool {
    matches!(outcome, Err(Error::Decode { what, reason }) if *what == which && !reason.is_empty())
}

#[test]
fn values_that_fail_to_encode_or_decode_fail_their_task_alone() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let pid = pool.submit(own_pid, ()).result().unwrap();
    let outcome = pool.submit(count_unlucky, Unlucky(13)).result();
    assert!(is_encode(&outcome, "argument"), "{outcome:?}");
    assert_eq!(pool.submit(calls, ()).result(), Ok(0), "nothing ran");
    let outcome = pool.submit(make_unlucky, 13).result();
    assert!(is_encode(&outcome, "result"), "{outcome:?}");
    let outcome = pool.submit(count_undecodable, Undecodable(1)).result();
    assert!(is_decode(&outcome, "argument"), "{outcome:?}");
    assert_eq!(pool.submit(calls, ()).result(), Ok(0), "nothing ran");
    let outcome = pool.submit(make_undecodable, 1).result();
    assert!(is_decode(&outcome, "result"), "{outcome:?}");
    // The pool goes on, on the same worker.
    assert_eq!(pool.submit(count_unlucky, Unlucky(12)).result(), Ok(12));
    assert_eq!(pool.submit(calls, ()).result(), Ok(1));
    assert_eq!(pool.worker_pids(), [pid]);
}

#[test]
fn in_a_map_only_the_item_that_fails_to_encode_fails() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let results: Vec<_> = pool
        .map(count_unlucky, (10..20).map(Unlucky))
        .chunksize(fixed(5))
        .collect();
    for (x, outcome) in (10..20u32).zip(&results) {
        if x == 13 {
            assert!(is_encode(outcome, "argument"), "{outcome:?}");
        } else {
            assert_eq!(outcome, &Ok(x));
        }
    }
    let results: Vec<_> = pool.map(make_unlucky, 10..20).chunksize(fixed(5)).collect();
    for (x, outcome) in (10..20u32).zip(&results) {
        match outcome {
            Ok(Unlucky(y)) => assert!(x != 13 && *y == x),
            outcome => assert!(x == 13 && is_encode(outcome, "result"), "{outcome:?}"),
        }
    }
}

/// A number that refuses to be decoded when it is 13, with its own reason.
#[derive(Debug, PartialEq, Serialize)]
struct Picky(u32);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u32::deserialize(deserializer)? {
            13 => Err(serde::de::Error::custom("Picky refuses 13")),
            x => Ok(Picky(x)),
        }
    }
}

fn count_picky(x: Picky) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x.0
}

fn make_picky(x: u32) -> Picky {
    Picky(x)
}

#[test]
fn in_a_map_only_the_item_that_fails_to_decode_fails() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let pid = pool.submit(own_pid, ()).result().unwrap();
    // The argument, in the worker: item 13 fails, its chunk mates run.
    let results: Vec<_> = pool
        .map(count_picky, (10..20).map(Picky))
        .chunksize(fixed(5))
        .collect();
    for (x, outcome) in (10..20u32).zip(&results) {
        if x == 13 {
            assert!(is_decode(outcome, "argument"), "{outcome:?}");
        } else {
            assert_eq!(outcome, &Ok(x));
        }
    }
    assert_eq!(pool.submit(calls, ()).result(), Ok(9), "13 never ran");
    // The result, in the parent: item 13 fails, its chunk mates arrive.
    let results: Vec<_> = pool.map(make_picky, 10..20).chunksize(fixed(5)).collect();
    for (x, outcome) in (10..20u32).zip(&results) {
        if x == 13 {
            assert!(is_decode(outcome, "result"), "{outcome:?}");
        } else {
            assert_eq!(outcome, &Ok(Picky(x)));
        }
    }
    assert_eq!(pool.worker_pids(), [pid], "no worker was replaced");
}

/// The design asks an encoding or decoding error to say which value and
/// why. When the why is the value's own serde impl, the error says so; the
/// impl's own message is lost on the way (postcard, the wire format, keeps
/// none), so the error says that too.
#[test]
fn encode_and_decode_errors_say_which_value_and_why() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    fn says<T>(outcome: &Result<T, Error>, which: &str, why: &str) -> bool {
        match outcome {
            Err(Error::Encode { what, reason } | Error::Decode { what, reason }) => {
                *what == which && reason.contains(why)
            }
            _ => false,
        }
    }
    let outcome = pool.submit(count_unlucky, Unlucky(13)).result();
    assert!(says(&outcome, "argument", "Serialize impl"), "{outcome:?}");
    let outcome = pool.submit(make_unlucky, 13).result();
    assert!(says(&outcome, "result", "Serialize impl"), "{outcome:?}");
    let outcome = pool.submit(count_picky, Picky(13)).result();
    assert!(
        says(&outcome, "argument", "Deserialize impl"),
        "{outcome:?}"
    );
    let outcome = pool.submit(make_picky, 13).result();
    assert!(says(&outcome, "result", "Deserialize impl"), "{outcome:?}");
    // A value whose serde impl needs a self-describing format.
    let outcome = pool.submit(count_untagged, Untagged::Number(7)).result();
    assert!(says(&outcome, "argument", "self-describing"), "{outcome:?}");
}

/// An untagged enum deserializes through `deserialize_any`, which postcard
/// cannot offer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

fn count_untagged(value: Untagged) -> u32 {
    match value {
        Untagged::Number(n) => n,
        Untagged::Text(text) => text.len() as u32,
    }
}

#[test]
fn a_message_over_the_size_limit_fails_its_task_and_the_pool_goes_on() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_message_size(4096)
        .build()
        .unwrap();
    let pid = pool.submit(own_pid, ()).result().unwrap();
    let outcome = pool.submit(reverse_bytes, vec![7u8; 8192]).result();
    assert!(is_encode(&outcome, "argument"), "{outcome:?}");
    let outcome = pool.submit(|n: usize| vec![1u8; n], 8192).result();
    assert!(is_encode(&outcome, "result"), "{outcome:?}");
    assert_eq!(
        pool.submit(reverse_bytes, vec![1, 2]).result(),
        Ok(vec![2, 1])
    );
    assert_eq!(
        pool.submit(|n: usize| vec![1u8; n], 100).result(),
        Ok(vec![1; 100])
    );
    assert_eq!(pool.worker_pids(), [pid], "the worker was not replaced");
}

// ------------------------------------------- programs that tasks start

/// Starts a long `sleep` that outlives this task and returns its pid.
// Deliberately never waited for here: the test kills it after its worker
// died, and init, which adopted it, reaps it.
#[allow(clippy::zombie_processes)]
fn start_a_sleeper(_: ()) -> u32 {
    let child = Command::new("sleep")
        .arg("600")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sleep");
    child.id()
}

fn abort_now(_: ()) -> u32 {
    std::process::abort()
}

/// The pipes (by inode) that process `pid` has open.
fn pipes_of(pid: &str) -> Vec<String> {
    let mut pipes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read a descriptor table")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("pipe:"))
        .collect();
    pipes.sort();
    pipes
}

/// A program that a task starts must not inherit the protocol's pipes: if
/// it did, the parent would not see end of file when the worker dies, and
/// the dead worker's task would wait for the program to exit.
#[test]
fn programs_started_by_tasks_do_not_hold_the_protocol_pipes() {
    let before = pipes_of("self");
    let pool = ProcessPoolExecutor::new(1).expect("a pool");
    let sleeper = pool.submit(start_a_sleeper, ()).result().expect("a pid");
    // The pool's pipes: those this process opened for it. (The test
    // harness may hand down pipes of its own, such as cargo's jobserver.)
    let protocol: Vec<String> = pipes_of("self")
        .into_iter()
        .filter(|pipe| !before.contains(pipe))
        .collect();
    let leaked: Vec<String> = pipes_of(&sleeper.to_string())
        .into_iter()
        .filter(|pipe| protocol.contains(pipe))
        .collect();
    let outcome = pool
        .submit(abort_now, ())
        .result_timeout(Duration::from_secs(60));
    kill_sleeper(sleeper);
    assert!(!protocol.is_empty(), "the pool's pipes were not found");
    assert!(
        leaked.is_empty(),
        "the program holds the protocol's pipes {leaked:?}"
    );
    assert!(
        matches!(outcome, Err(Error::WorkerDied { .. })),
        "the aborted task's outcome: {outcome:?}"
    );
    assert_eq!(pool.submit(double, 21).result(), Ok(42), "the pool goes on");
}

/// Kills the sleeper (the dead worker's child, adopted by init, which
/// reaps it).
fn kill_sleeper(pid: u32) {
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {pid}");
}

fn twenty_chars(x: u32) -> String {
    format!("{x:020}")
}

/// Found by reading the worker (the fuzz session's report): results over
/// the frame limit must fail their items, never the worker. Since results
/// travel in shared memory, the limit bounds each result, not a chunk's
/// total: a chunk of small results over the limit in total succeeds.
#[test]
fn results_over_a_small_limit_fail_their_items_and_the_worker_lives() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_message_size(1024)
        .build()
        .unwrap();
    let pid = pool.submit(own_pid, ()).result().unwrap();
    let outcomes: Vec<_> = pool
        .map(twenty_chars, 0..100)
        .chunksize(fixed(100))
        .collect();
    assert_eq!(outcomes.len(), 100);
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome, &Ok(format!("{i:020}")));
    }
    let big: Vec<_> = pool.map(|n: usize| "x".repeat(n), [10, 5000, 20]).collect();
    assert_eq!(big[0], Ok("x".repeat(10)));
    assert!(is_encode(&big[1], "result"), "{:?}", big[1]);
    assert_eq!(big[2], Ok("x".repeat(20)));
    assert_eq!(
        pool.submit(twenty_chars, 7).result().unwrap(),
        format!("{:020}", 7)
    );
    assert_eq!(pool.worker_pids(), [pid], "the worker lived on");
}

/// The pool reuses the buffer of an argument already sent for the next
/// one; arguments of very different sizes, one after another and from
/// several threads at once, must never see each other's bytes.
#[test]
fn arguments_of_every_size_in_turn_arrive_whole() {
    let pool = ProcessPoolExecutor::new(2).expect("a pool");
    let sizes = [3 << 20, 10, 0, 1 << 20, 1, 5 << 20, 64 * 1024 + 1, 7];
    std::thread::scope(|scope| {
        for thread in 0..3u8 {
            let pool = &pool;
            scope.spawn(move || {
                for (round, &size) in sizes.iter().enumerate() {
                    let seed = thread.wrapping_mul(31).wrapping_add(round as u8);
                    let bytes: Vec<u8> = (0..size).map(|i| seed.wrapping_add(i as u8)).collect();
                    let mut expected = bytes.clone();
                    expected.reverse();
                    let back = pool
                        .submit(reverse_bytes, bytes)
                        .result()
                        .expect("a result");
                    assert_eq!(back.len(), size, "thread {thread}, round {round}");
                    assert!(
                        back == expected,
                        "thread {thread}, round {round}: bytes differ"
                    );
                }
            });
        }
    });
}

fn thread_name(_: ()) -> (Option<String>, u32) {
    (
        std::thread::current().name().map(String::from),
        std::process::id(),
    )
}

/// Tasks run on a thread named after the worker, so that a panic's message
/// ("thread '…' panicked") says which worker it came from.
#[test]
fn tasks_run_on_a_thread_named_after_their_worker() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (name, pid) = pool.submit(thread_name, ()).result().unwrap();
    assert_eq!(name, Some(format!("ProcessPoolExecutor-worker-{pid}")));
}
