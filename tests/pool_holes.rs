//! Issue 11, section 2: the holes in the process pool, one test each, and
//! the exactness of `shutdown_cancel` and `Future::running()` on the
//! process pool.
//!
//! 1. a result whose `Deserialize` panics in the parent;
//! 2. an argument whose `Serialize` panics;
//! 3. a frame half written into the result pipe, the task then running on;
//! 4. a task that forks (the child keeping the pipes open) and aborts;
//! 5. a task that closes every descriptor and sleeps;
//! 6. automatic chunking after time-limit kills;
//! 7. a transient shortage of descriptors (`RLIMIT_NOFILE` 64, 18 workers);
//! 8. a thread pool dropped after `shutdown_background` while a task never
//!    returns: tested in `tests/thread_pool.rs`
//!    (`dropping_the_pool_after_shutdown_background_does_not_wait`), not
//!    repeated here;
//! 9. `new(0)` in both pools means that pool's default number of workers
//!    (Python's: `min(32, cpus + 4)` threads, `cpus` processes): tested in
//!    `tests/thread_pool.rs` and `tests/process_pool.rs`
//!    (`zero_workers_means_the_default_number`), not repeated here.
//!
//! Every wait on the pool has a watchdog (`result_timeout`, or a helper
//! process with a deadline), so a hang fails the test instead of stalling
//! the suite. Tests that need a process of their own (its standard error,
//! its descriptor limit) run this binary again as `child_helper`.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{Chunksize, Error, Future, ProcessPoolExecutor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod common;
use common::{is_our_child, proc_stat, result_pipe, wait_for, wait_for_workers, TempDir};

// ---------------------------------------------------------------- helpers

/// How long any single outcome may take before the test calls it a hang.
const WATCHDOG: Duration = Duration::from_secs(15);

/// The outcome of `future`, or a test failure if it takes over
/// [`WATCHDOG`]; and how long it took.
fn outcome<T>(future: &Future<T>, what: &str) -> Result<T, Error> {
    match future.result_timeout(WATCHDOG) {
        Err(Error::Timeout(_)) => panic!("{what}: no outcome within {WATCHDOG:?}, a hang"),
        outcome => outcome,
    }
}

fn fixed(n: usize) -> Chunksize {
    Chunksize::Fixed(std::num::NonZeroUsize::new(n).expect("a chunk size above 0"))
}

fn own_pid(_: ()) -> u32 {
    std::process::id()
}

fn double(x: u64) -> u64 {
    x * 2
}

/// Waits until the pool lists all its workers, each a live child of ours.
fn assert_workers_consistent(pool: &ProcessPoolExecutor) {
    let consistent = wait_for(
        || {
            let pids = pool.worker_pids();
            pids.len() == pool.max_workers() && pids.iter().all(|&pid| is_our_child(pid))
        },
        Duration::from_secs(10),
    );
    assert!(
        consistent,
        "worker_pids() {:?} is not {} live children after 10 s",
        pool.worker_pids(),
        pool.max_workers()
    );
}

// ---------------------------------------- hole 1: a result that panics

/// A result whose `Deserialize` panics (in the parent, which is the only
/// side that decodes results) for values ending in 13.
#[derive(Debug, PartialEq, Eq)]
struct Bomb(u64);

impl Serialize for Bomb {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Bomb {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if value % 100 == 13 {
            panic!("Bomb {value} explodes while it is decoded");
        }
        Ok(Bomb(value))
    }
}

fn make_bomb(x: u64) -> Bomb {
    Bomb(x)
}

fn is_decode_failure(outcome: &Result<Bomb, Error>) -> bool {
    matches!(
        outcome,
        Err(Error::Decode { what: "result", .. } | Error::Panicked { .. })
    )
}

/// Five panicking results on a two-worker pool (more than there are
/// drivers, so a driver that died of the panic would leave the pool
/// without one), then normal results; then maps with panicking items.
#[test]
fn hole_1_a_result_whose_deserialize_panics_fails_alone() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    wait_for_workers(&pool);
    for k in 0..5 {
        let f = pool.submit(make_bomb, 100 * k + 13);
        let got = outcome(&f, "a panicking result");
        assert!(is_decode_failure(&got), "bomb {k}: {got:?}");
    }
    let normal: Vec<_> = (0..20).map(|x| pool.submit(make_bomb, 2 * x)).collect();
    for (x, f) in (0..20).map(|x| 2 * x).zip(&normal) {
        assert_eq!(outcome(f, "a normal result"), Ok(Bomb(x)));
    }
    assert_workers_consistent(&pool);
    for chunksize in [fixed(10), Chunksize::Auto] {
        let results = collect_within(&pool, chunksize);
        assert_eq!(results.len(), 300);
        for (x, got) in (0..300u64).zip(&results) {
            if x % 100 == 13 {
                assert!(is_decode_failure(got), "item {x} ({chunksize:?}): {got:?}");
            } else {
                assert_eq!(got, &Ok(Bomb(x)), "item {x} ({chunksize:?})");
            }
        }
    }
    assert_workers_consistent(&pool);
    assert_eq!(
        outcome(&pool.submit(make_bomb, 7), "after the maps"),
        Ok(Bomb(7))
    );
}

/// `pool.map(make_bomb, 0..300)` collected on a thread of its own, with
/// [`WATCHDOG`] as the limit.
fn collect_within(pool: &ProcessPoolExecutor, chunksize: Chunksize) -> Vec<Result<Bomb, Error>> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let results: Vec<_> = pool.map(make_bomb, 0..300).chunksize(chunksize).collect();
            let _ = tx.send(results);
        });
        match rx.recv_timeout(WATCHDOG) {
            Ok(results) => results,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the map ({chunksize:?}) did not end within {WATCHDOG:?}")
            }
            // The map's thread panicked; the scope re-raises its panic.
            Err(mpsc::RecvTimeoutError::Disconnected) => Vec::new(),
        }
    })
}

// -------------------------------------- hole 2: an argument that panics

/// An argument whose `Serialize` panics (in the parent, which is the only
/// side that encodes arguments) for 13.
#[derive(Debug, Deserialize)]
struct Dud(u64);

impl Serialize for Dud {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            panic!("Dud 13 refuses to be encoded");
        }
        self.0.serialize(serializer)
    }
}

fn open_dud(dud: Dud) -> u64 {
    dud.0 * 2
}

#[test]
fn hole_2_an_argument_whose_serialize_panics_fails_alone() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let submitted = catch_unwind(AssertUnwindSafe(|| pool.submit(open_dud, Dud(13))));
    let f = submitted.unwrap_or_else(|_| panic!("the panic unwound into `submit`'s caller"));
    let got = outcome(&f, "a panicking argument");
    assert!(
        matches!(
            got,
            Err(Error::Encode {
                what: "argument",
                ..
            })
        ),
        "{got:?}"
    );
    assert_eq!(outcome(&pool.submit(open_dud, Dud(5)), "after it"), Ok(10));
    for chunksize in [fixed(10), Chunksize::Auto] {
        let mapped = catch_unwind(AssertUnwindSafe(|| {
            pool.map(open_dud, (0..100).map(Dud))
                .chunksize(chunksize)
                .collect::<Vec<_>>()
        }));
        let results =
            mapped.unwrap_or_else(|_| panic!("the panic unwound out of the map ({chunksize:?})"));
        assert_eq!(results.len(), 100, "the map went on ({chunksize:?})");
        for (x, got) in (0..100u64).zip(&results) {
            if x == 13 {
                assert!(
                    matches!(
                        got,
                        Err(Error::Encode {
                            what: "argument",
                            ..
                        })
                    ),
                    "item 13 ({chunksize:?}): {got:?}"
                );
            } else {
                assert_eq!(got, &Ok(x * 2), "item {x} ({chunksize:?})");
            }
        }
    }
}

// ---------------------------------------------- hole 3: half a frame

/// Writes a plausible frame header (100 bytes to follow) and three of the
/// bytes into this worker's result pipe, then runs on for `seconds`.
fn half_a_frame(seconds: u64) -> u32 {
    // SAFETY: `result_pipe` found an open descriptor; the file is
    // forgotten below, so it is not closed here.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(result_pipe()) };
    pipe.write_all(&[100, 0, 0, 0, 1, 2, 3])
        .expect("write into the result pipe");
    std::mem::forget(pipe);
    std::thread::sleep(Duration::from_secs(seconds));
    std::process::id()
}

/// Without a time limit, the frame stall limit (5 s) ends the task with
/// `Protocol`, and the worker is replaced; with a 1 s time limit, the task
/// ends in about that time (`TaskTimedOut`, or `Protocol`).
#[test]
fn hole_3_a_half_written_frame_fails_its_task_within_the_stall_limit() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let before = outcome(&pool.submit(own_pid, ()), "the first task").unwrap();
    let start = Instant::now();
    let got = outcome(&pool.submit(half_a_frame, 30), "half a frame");
    let took = start.elapsed();
    assert!(
        matches!(got, Err(Error::Protocol { pid, .. }) if pid == before),
        "{got:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "Protocol only after {took:?}"
    );
    let after = outcome(&pool.submit(own_pid, ()), "after it").unwrap();
    assert_ne!(after, before, "the worker was replaced");
    assert!(!is_our_child(before), "the old worker was reaped");

    let limit = Duration::from_secs(1);
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .task_timeout(limit)
        .build()
        .unwrap();
    let before = outcome(&pool.submit(own_pid, ()), "the first task").unwrap();
    let start = Instant::now();
    let got = outcome(&pool.submit(half_a_frame, 30), "half a frame, 1 s limit");
    let took = start.elapsed();
    assert!(
        matches!(
            got,
            Err(Error::TaskTimedOut { pid, .. } | Error::Protocol { pid, .. }) if pid == before
        ),
        "{got:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "under a 1 s limit, the task ended only after {took:?}: {got:?}"
    );
    let after = outcome(&pool.submit(own_pid, ()), "after it").unwrap();
    assert_ne!(after, before, "the worker was replaced");
}

// ------------------------------------------------ hole 4: fork and abort

/// Forks a child that keeps every descriptor (the pipes too) for 4 s, writes
/// its pid to `<dir>/forked`, and aborts.
fn fork_then_abort(dir: String) -> u32 {
    // SAFETY: the child of a fork in a process that may have threads may
    // only call async-signal-safe functions: it calls `sleep` and `_exit`,
    // nothing else.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above; both are async-signal-safe.
        unsafe {
            libc::sleep(4);
            libc::_exit(0);
        }
    }
    assert!(child > 0, "fork failed");
    let dir = Path::new(&dir);
    let temporary = dir.join("forked.tmp");
    std::fs::write(&temporary, child.to_string()).expect("write the child's pid");
    std::fs::rename(&temporary, dir.join("forked")).expect("rename");
    std::process::abort()
}

/// Kills the forked grandchild named in `<dir>/forked` when dropped, so
/// that it never outlives the test, whatever the test's outcome.
struct KillForked<'a>(&'a TempDir);

impl Drop for KillForked<'_> {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.0 .0.join("forked")) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        // Still there and not a zombie: ours to kill (it lives 4 s at most,
        // so its pid has not been reused within the test).
        if proc_stat(pid as u32).is_some_and(|(state, _, _)| state != 'Z') {
            // SAFETY: `kill` takes plain integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn fork_then_abort_on(pool: &ProcessPoolExecutor, name: &str) {
    let dir = TempDir::new("holes", name);
    let _cleanup = KillForked(&dir);
    let before = outcome(&pool.submit(own_pid, ()), "the first task").unwrap();
    let start = Instant::now();
    let got = outcome(&pool.submit(fork_then_abort, dir.text()), name);
    let took = start.elapsed();
    let died = Error::WorkerDied {
        pid: before,
        exit_code: None,
        signal: Some(libc::SIGABRT),
    };
    assert_eq!(got, Err(died), "{name}");
    assert!(
        took < Duration::from_secs(2),
        "{name}: the death was seen after {took:?}, not at once (the forked child holds the pipes for 4 s)"
    );
    assert!(dir.0.join("forked").exists(), "{name}: the task forked");
    let after = outcome(&pool.submit(own_pid, ()), "after it").unwrap();
    assert_ne!(after, before);
}

#[test]
fn hole_4_a_task_that_forks_and_aborts_fails_at_once_with_worker_died() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    fork_then_abort_on(&pool, "fork-no-limit");
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .task_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    fork_then_abort_on(&pool, "fork-3s-limit");
}

// ------------------------------------- hole 5: every descriptor closed

/// Closes every descriptor from 3 to 1023, then runs on for `ms`.
fn close_everything(ms: u64) -> u32 {
    for fd in 3..1024 {
        // SAFETY: closing a descriptor is sound; the ones this closes
        // belong to the worker (its pipes, its region), which is the
        // point of the test. Nothing in this task uses them afterwards.
        unsafe { libc::close(fd) };
    }
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// In a helper process (so that the worker's standard error, inherited
/// from the helper, can be read): a task closes every descriptor and then
/// sleeps 5 s (`then_sleep`) or returns at once (`then_return`), under a
/// 1 s limit. Either way its future resolves within 2 s, as `WorkerDied`
/// (exit code 87 if the worker saw its pipe lost) or `TaskTimedOut`; or,
/// for the task that returns at once, with its value (it finished: its
/// outcome is in the shared region, which no `close` unmaps). Either way
/// the worker is replaced.
fn close_everything_then(ms: u64) {
    let limit = Duration::from_secs(1);
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .task_timeout(limit)
        .build()
        .unwrap();
    let before = outcome(&pool.submit(own_pid, ()), "the first task").unwrap();
    let start = Instant::now();
    let got = outcome(&pool.submit(close_everything, ms), "close everything");
    let took = start.elapsed();
    println!("OUTCOME {got:?} AFTER {took:?}");
    match &got {
        Err(Error::WorkerDied {
            pid,
            exit_code: None | Some(87),
            ..
        }) if *pid == before => {}
        Err(Error::TaskTimedOut { pid, .. }) if *pid == before => {}
        // Returned at once: its value was in the shared region before the
        // worker found its pipe gone, and a finished item is delivered.
        Ok(pid) if *pid == before && ms == 0 => {}
        other => panic!("unexpected outcome {other:?}"),
    }
    assert!(
        took < Duration::from_secs(2),
        "resolved only after {took:?}"
    );
    let after = outcome(&pool.submit(own_pid, ()), "after it").unwrap();
    assert_ne!(after, before);
}

#[test]
fn hole_5_a_task_that_closes_every_descriptor_fails_within_two_seconds() {
    for mode in ["close_then_sleep", "close_then_return"] {
        let (stdout, stderr) = run_helper_within(mode, Duration::from_secs(30));
        assert!(
            !stderr.contains("exits without running anything"),
            "{mode}: the worker's message is wrong:\n{stderr}"
        );
        if stdout.contains("exit_code: Some(87)") {
            assert!(
                stderr.contains("lost its pipe"),
                "{mode}: exit code 87 without its message:\n{stdout}\n{stderr}"
            );
        }
    }
}

// ----------------------------------- hole 6: automatic chunks, time limit

fn slow_every_50th(x: u64) -> u64 {
    if x % 50 == 25 {
        std::thread::sleep(Duration::from_secs(2));
    }
    x * 2
}

/// Every 50th of 2 000 items sleeps past a 300 ms limit, in automatic
/// chunks: each of those 40 fails with `TaskTimedOut`, and failures stay
/// under twice their number (the hole: a killed chunk once read as free
/// items and the next chunk grew to thousands, all lost to the next kill).
#[test]
fn hole_6_automatic_chunks_after_time_limit_kills_lose_only_the_slow_items() {
    let limit = Duration::from_millis(300);
    let pool = ProcessPoolExecutor::builder()
        .max_workers(4)
        .task_timeout(limit)
        .build()
        .unwrap();
    let results: Vec<_> = pool.map(slow_every_50th, 0..2000).collect();
    assert_eq!(results.len(), 2000);
    let mut failed = 0;
    for (x, got) in (0..2000u64).zip(&results) {
        match got {
            Ok(v) => {
                assert_ne!(x % 50, 25, "slow item {x} was not stopped");
                assert_eq!(*v, x * 2, "item {x}");
            }
            Err(Error::TaskTimedOut { limit: l, .. }) if *l == limit => failed += 1,
            Err(other) => panic!("item {x}: {other:?}"),
        }
    }
    let slow = 40;
    println!("{failed} items failed, {slow} of them slow");
    assert!(
        failed <= 2 * slow,
        "{failed} items failed for {slow} slow ones"
    );
}

// --------------------------------------- hole 7: too few descriptors

/// In a helper process whose descriptor limit is 64: a pool of 18 workers
/// (more than the limit allows at once) still works, with fewer workers.
fn few_descriptors() {
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: `setrlimit` reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let pool = ProcessPoolExecutor::new(18).expect("a pool under a low descriptor limit");
    let results: Vec<_> = pool.map(double, 0..1000).collect();
    for (x, got) in (0..1000u64).zip(&results) {
        assert_eq!(got, &Ok(x * 2), "item {x}");
    }
    assert_eq!(results.len(), 1000);
    println!("WORKERS {}", pool.worker_pids().len());
    let f = pool.submit(double, 21);
    assert_eq!(outcome(&f, "after the map"), Ok(42));
}

#[test]
fn hole_7_a_pool_under_a_low_descriptor_limit_works() {
    run_helper_within("few_descriptors", Duration::from_secs(60));
}

// ----------------------------- shutdown_cancel and running(), exactly

/// Writes `ran-<tag>`; if `block`, also `started-<tag>` (its pid) and then
/// waits for the `release` file (20 s at most).
fn mark((dir, tag, block): (String, u64, bool)) -> u64 {
    let dir = Path::new(&dir);
    std::fs::write(dir.join(format!("ran-{tag}")), b"ran").expect("write");
    if block {
        let temporary = dir.join(format!("started-{tag}.tmp"));
        std::fs::write(&temporary, std::process::id().to_string()).expect("write");
        std::fs::rename(&temporary, dir.join(format!("started-{tag}"))).expect("rename");
        wait_for(|| dir.join("release").exists(), Duration::from_secs(20));
    }
    tag
}

fn ran(dir: &TempDir, tag: u64) -> bool {
    dir.0.join(format!("ran-{tag}")).exists()
}

/// A one-worker pool; the task that blocks and five behind it are
/// submitted at once, before the worker is up, so that the driver finds
/// them all queued and hands the second to the worker behind the first.
/// `shutdown_cancel` while the first runs cancels all five, the handed one
/// too: none of them ever runs, and the running one finishes.
#[test]
fn shutdown_cancel_cancels_the_queued_and_the_handed_tasks() {
    let dir = TempDir::new("holes", "shutdown-cancel");
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let running = pool.submit(mark, (dir.text(), 0, true));
    let queued: Vec<_> = (1..6)
        .map(|tag| pool.submit(mark, (dir.text(), tag, false)))
        .collect();
    dir.started(0);
    assert!(running.running());
    assert!(queued.iter().all(|f| !f.running()), "only the first runs");
    let (done_tx, done) = mpsc::channel();
    for f in &queued {
        let done_tx = done_tx.clone();
        f.add_done_callback(move |_| {
            let _ = done_tx.send(());
        });
    }
    std::thread::scope(|s| {
        let stopper = s.spawn(|| pool.shutdown_cancel());
        for k in 0..queued.len() {
            let resolved = done.recv_timeout(WATCHDOG);
            assert!(
                resolved.is_ok(),
                "queued task {k} unresolved after {WATCHDOG:?}"
            );
        }
        assert!(!running.done(), "the running task still runs");
        dir.release();
        stopper.join().expect("shutdown_cancel");
    });
    assert_eq!(outcome(&running, "the running task"), Ok(0));
    for (tag, f) in (1..).zip(&queued) {
        assert_eq!(
            outcome(f, "a queued task"),
            Err(Error::Cancelled),
            "task {tag}"
        );
        assert!(!ran(&dir, tag), "cancelled task {tag} ran");
    }
    assert!(pool.worker_pids().is_empty());
}

/// `running()` is true only for the task the worker executes: on a
/// one-worker pool a second task, handed behind a blocking one (submitted
/// before the worker is up) or queued (submitted after the first started),
/// is not running, `cancel()` succeeds, and it never runs; the pool goes on.
#[test]
fn running_is_true_only_for_the_executing_task_and_the_next_can_be_cancelled() {
    let dir = TempDir::new("holes", "running");
    let pool = ProcessPoolExecutor::new(1).unwrap();
    for (round, handed) in [true, false].into_iter().enumerate() {
        let round = round as u64 * 10;
        let blocker = pool.submit(mark, (dir.text(), round, true));
        let second = handed.then(|| pool.submit(mark, (dir.text(), round + 1, false)));
        dir.started(round);
        let second = second.unwrap_or_else(|| pool.submit(mark, (dir.text(), round + 1, false)));
        assert!(blocker.running(), "round {round}: the blocker runs");
        assert!(
            !second.running(),
            "round {round}: the second does not run yet"
        );
        assert!(
            second.cancel(),
            "round {round}: the second can be cancelled"
        );
        assert!(second.cancelled() && !second.running());
        std::fs::write(dir.0.join("release"), b"go").expect("release");
        assert_eq!(outcome(&blocker, "the blocker"), Ok(round));
        assert_eq!(outcome(&second, "the cancelled"), Err(Error::Cancelled));
        // The worker went on past the withdrawn task: the next one runs.
        let third = pool.submit(mark, (dir.text(), round + 2, false));
        assert_eq!(outcome(&third, "the third"), Ok(round + 2));
        assert!(
            !ran(&dir, round + 1),
            "round {round}: the cancelled task ran"
        );
        std::fs::remove_file(dir.0.join("release")).expect("unrelease");
    }
}

// ------------------------------------------------------- helper processes

/// Environment variable that makes [`child_helper`] do something.
const HELPER: &str = "CF_POOL_HOLES_TEST_HELPER";

/// Runs [`child_helper`] in `mode`, kills it if it takes over `limit`, and
/// checks that it passed; its standard output and error.
fn run_helper_within(mode: &str, limit: Duration) -> (String, String) {
    let mut child = common::helper_command(HELPER, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let mut stdout = child.stdout.take().expect("its stdout");
    let mut stderr = child.stderr.take().expect("its stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let finished = wait_for(|| matches!(child.try_wait(), Ok(Some(_))), limit);
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().expect("reap the helper");
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    assert!(
        finished,
        "helper {mode} still ran after {limit:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        status.success() && stdout.contains("HELPER-PASSED"),
        "helper {mode} failed ({status}):\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// A test that runs only in a process of its own, started by another test.
#[test]
#[ignore = "a helper: runs only when a test re-executes this binary"]
fn child_helper() {
    let Ok(mode) = std::env::var(HELPER) else {
        return;
    };
    match mode.as_str() {
        "close_then_sleep" => close_everything_then(5000),
        "close_then_return" => close_everything_then(0),
        "few_descriptors" => few_descriptors(),
        other => panic!("unknown helper mode {other}"),
    }
    println!("HELPER-PASSED");
}
