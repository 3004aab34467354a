//! Fault injection on `ProcessPoolExecutor`: workers killed at random
//! while a long `map` or a stream of `submit`s runs, a task that overflows
//! its stack, a pool dropped while its tasks run, and a parent killed while
//! its workers are inside a task.
//!
//! The property under test is the design's promise: a crash in one worker
//! costs the task (or the one `map` chunk) it was running and nothing else:
//! no other result is lost or wrong, nothing hangs, and the pool goes on
//! with a fresh worker. Single deaths of each kind (abort, exit, segfault,
//! the time limit, `kill_workers`) are in `tests/process_faults.rs`.
//!
//! The kills are paced by the consumer's progress, not by the clock: the
//! consumer asks for a kill every so many results, so every run interleaves
//! kills with work the same way however fast the machine is.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor};

mod common;
use common::{
    fd_count, is_our_child, our_children, proc_stat, wait_for, wait_for_workers, TempDir,
};

// ---------------------------------------------------------------- helpers

/// The work: a function whose every value is checkable, mixed a few
/// hundred times so that an item takes a little CPU (a microsecond or so):
/// a worker then spends its time inside chunks rather than between them,
/// and a kill lands on a running item (the map test checks that some do;
/// with items of a few nanoseconds a fast worker idles between chunks and
/// kills could all miss).
fn scramble(x: u64) -> u64 {
    let mut value = x;
    for _ in 0..256 {
        value = std::hint::black_box(value.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ x);
    }
    value
}

fn own_pid(_: ()) -> u32 {
    std::process::id()
}

fn fixed(n: usize) -> Chunksize {
    Chunksize::Fixed(NonZeroUsize::new(n).expect("a chunk size above 0"))
}

/// A small xorshift generator: which worker to kill. Seeded from the pid
/// so that runs differ; the seed is printed with any failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A worker that was killed: its pid and start time (so that a pid the
/// system hands out again later is not mistaken for it).
#[derive(Debug, Clone, Copy)]
struct Victim {
    pid: u32,
    started: u64,
}

impl Victim {
    /// Gone for good: not running, not a zombie of ours, not adopted.
    fn is_gone(&self) -> bool {
        match proc_stat(self.pid) {
            Some((_, _, started)) => started != self.started,
            None => true,
        }
    }
}

/// The killer thread's loop: for every request on `requests`, SIGKILL a
/// random live worker of `pool`. Ends when the requests' sender is dropped
/// and returns the workers it killed.
fn killer(pool: &ProcessPoolExecutor, requests: Receiver<()>, seed: u64) -> Vec<Victim> {
    let mut rng = Rng(seed | 1);
    let mut victims = Vec::new();
    while requests.recv().is_ok() {
        // Both workers may be being replaced right now.
        let has_workers = wait_for(|| !pool.worker_pids().is_empty(), Duration::from_secs(10));
        assert!(has_workers, "no live worker for 10 s");
        let pids = pool.worker_pids();
        let Some(&pid) = pids.get(rng.next() as usize % pids.len().max(1)) else {
            continue;
        };
        let Some((_, parent, started)) = proc_stat(pid) else {
            continue; // reaped in the meantime
        };
        if parent != std::process::id() {
            continue;
        }
        // SAFETY: `kill` takes plain integers. `pid` is a child of ours that
        // the pool listed a moment ago; a listed worker is not reaped until
        // it is unlisted, so the pid names our worker.
        if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
            victims.push(Victim { pid, started });
        }
    }
    victims
}

/// Checks that every victim was reaped: no zombie, no orphan.
fn assert_all_reaped(victims: &[Victim]) {
    let reaped = wait_for(
        || victims.iter().all(Victim::is_gone),
        Duration::from_secs(10),
    );
    let left: Vec<_> = victims.iter().filter(|v| !v.is_gone()).collect();
    assert!(reaped, "killed workers still present after 10 s: {left:?}");
}

/// The error of a task whose worker was SIGKILLed.
fn killed(pid: u32) -> Error {
    Error::WorkerDied {
        pid,
        exit_code: None,
        signal: Some(libc::SIGKILL),
    }
}

// ------------------------------------------------------- random SIGKILLs

const MAP_ITEMS: usize = 100_000;
const MAP_CHUNK: usize = 100;
/// Results consumed between two kills: 200 kills over the map.
const MAP_KILL_EVERY: usize = 500;

#[test]
fn random_sigkills_during_a_map_cost_at_most_the_item_they_hit() {
    let seed = u64::from(std::process::id()).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let pool = ProcessPoolExecutor::new(2).unwrap();
    wait_for_workers(&pool);
    let (results, victims) = thread::scope(|s| {
        let (kill, requests) = mpsc::channel();
        let killer = s.spawn(|| killer(&pool, requests, seed));
        let mut results = Vec::with_capacity(MAP_ITEMS);
        let map = pool
            .map(scramble, 0..MAP_ITEMS as u64)
            .chunksize(fixed(MAP_CHUNK));
        for result in map {
            results.push(result);
            if results.len() % MAP_KILL_EVERY == MAP_KILL_EVERY / 2 {
                kill.send(()).expect("the killer is alive");
            }
        }
        drop(kill);
        (results, killer.join().expect("the killer thread"))
    });

    // The map completed: one result per item.
    assert_eq!(results.len(), MAP_ITEMS, "seed {seed:#x}");
    let killed_pids: HashSet<u32> = victims.iter().map(|v| v.pid).collect();
    // No wrong value, and every failure is the death of a killed worker.
    let mut chunks_lost: HashMap<u32, HashSet<usize>> = HashMap::new();
    let mut failed = 0;
    for (x, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(*value, scramble(x as u64), "item {x}, seed {seed:#x}"),
            Err(Error::WorkerDied { pid, .. }) if killed_pids.contains(pid) => {
                assert_eq!(result, &Err(killed(*pid)), "item {x}");
                chunks_lost.entry(*pid).or_default().insert(x / MAP_CHUNK);
                failed += 1;
            }
            Err(error) => panic!("item {x} failed with {error:?} (seed {seed:#x})"),
        }
    }
    // A kill costs at most the one item its worker was running: the
    // chunk's finished items are delivered, its others run elsewhere.
    for (pid, chunks) in &chunks_lost {
        let lost = results.iter().filter(|r| *r == &Err(killed(*pid))).count();
        assert_eq!(
            lost, 1,
            "killing {pid} failed {lost} items (chunks {chunks:?})"
        );
    }
    assert!(failed <= killed_pids.len());
    // The test did what it says: it killed, and the kills hit work.
    let asked = MAP_ITEMS / MAP_KILL_EVERY;
    assert!(
        victims.len() * 2 >= asked,
        "only {} of {asked} kills landed",
        victims.len()
    );
    assert!(
        failed > 0,
        "{} kills never hit a running chunk",
        victims.len()
    );
    // Nothing is left of the killed workers, and the pool recovered.
    assert_all_reaped(&victims);
    assert_eq!(pool.submit(scramble, 7).result(), Ok(scramble(7)));
    let now = wait_for_workers(&pool);
    assert!(now.iter().all(|pid| !killed_pids.contains(pid)));
}

const SUBMITS: usize = 10_000;
/// Results consumed between two kills: 200 kills over the submits.
const SUBMIT_KILL_EVERY: usize = 50;

#[test]
fn random_sigkills_during_submits_fail_at_most_one_task_per_kill() {
    let seed = u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let pool = ProcessPoolExecutor::new(2).unwrap();
    wait_for_workers(&pool);
    let (results, victims) = thread::scope(|s| {
        let (kill, requests) = mpsc::channel();
        let killer = s.spawn(|| killer(&pool, requests, seed));
        let futures: Vec<_> = (0..SUBMITS as u64)
            .map(|x| pool.submit(scramble, x))
            .collect();
        let mut results = Vec::with_capacity(SUBMITS);
        for future in futures {
            results.push(future.result());
            if results.len() % SUBMIT_KILL_EVERY == SUBMIT_KILL_EVERY / 2 {
                kill.send(()).expect("the killer is alive");
            }
        }
        drop(kill);
        (results, killer.join().expect("the killer thread"))
    });

    let killed_pids: HashSet<u32> = victims.iter().map(|v| v.pid).collect();
    let mut lost: HashMap<u32, Vec<usize>> = HashMap::new();
    for (x, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(*value, scramble(x as u64), "task {x}, seed {seed:#x}"),
            Err(Error::WorkerDied { pid, .. }) if killed_pids.contains(pid) => {
                assert_eq!(result, &Err(killed(*pid)), "task {x}");
                lost.entry(*pid).or_default().push(x);
            }
            Err(error) => panic!("task {x} failed with {error:?} (seed {seed:#x})"),
        }
    }
    // A worker runs one task at a time: a kill costs one task at most (and
    // none if it lands between tasks: the one it had next runs elsewhere).
    for (pid, tasks) in &lost {
        assert_eq!(tasks.len(), 1, "killing {pid} failed tasks {tasks:?}");
    }
    let asked = SUBMITS / SUBMIT_KILL_EVERY;
    assert!(
        victims.len() * 2 >= asked,
        "only {} of {asked} kills landed",
        victims.len()
    );
    assert_all_reaped(&victims);
    assert_eq!(pool.submit(scramble, 9).result(), Ok(scramble(9)));
    wait_for_workers(&pool);
}

// ---------------------------------------------------------- stack overflow

/// Recursion that never ends by itself: every frame holds a kilobyte that
/// `black_box` keeps the optimiser from removing, and the addition after the
/// call keeps it from becoming a loop.
fn deep(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        return u64::from(frame[0]);
    }
    deep(depth - 1) + u64::from(std::hint::black_box(frame)[depth as usize % 1024])
}

/// Whether the stack limit is bounded (and small enough for [`deep`] to
/// reach it).
fn stack_is_bounded() -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` into the one we pass.
    (unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) }) == 0
        && limit.rlim_cur != libc::RLIM_INFINITY
        && limit.rlim_cur <= 256 << 20
}

/// Overflows the stack for item 13; the others pass.
fn overflow_on_13(x: u64) -> u64 {
    if x != 13 {
        return scramble(x);
    }
    // Deep enough for any bounded stack (8 MiB is usual): 1 GiB of frames.
    // With an unlimited stack limit the main thread could grow that far,
    // so then the recursion runs on a thread with a stack of 8 MiB.
    let depth = 1 << 20;
    if stack_is_bounded() {
        deep(depth)
    } else {
        let thread = std::thread::Builder::new().stack_size(8 << 20);
        thread.spawn(move || deep(depth)).unwrap().join().unwrap()
    }
}

#[test]
fn a_task_that_overflows_its_stack_fails_alone() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let before = pool.submit(own_pid, ()).result().unwrap();
    // An overflow on the thread that runs the task is reported as such
    // (the worker prints Rust's line and the parent says StackOverflow);
    // with an unlimited stack the recursion runs on a thread of the task's
    // own, whose overflow is a plain SIGSEGV.
    let overflowed = |result: &Result<u64, Error>, victim: u32| {
        if stack_is_bounded() {
            matches!(result, Err(Error::StackOverflow { pid }) if *pid == victim)
        } else {
            matches!(result, Err(Error::WorkerDied { pid, exit_code: None, signal: Some(s) })
                if *pid == victim && *s == libc::SIGSEGV)
        }
    };
    let outcome = pool.submit(overflow_on_13, 13).result();
    assert!(overflowed(&outcome, before), "{outcome:?}");
    assert!(!is_our_child(before), "the dead worker was reaped");
    assert_eq!(pool.submit(overflow_on_13, 12).result(), Ok(scramble(12)));

    // In a map with one item per chunk, only item 13 fails.
    let victim = pool.submit(own_pid, ()).result().unwrap();
    assert_ne!(victim, before, "replaced");
    let results: Vec<_> = pool
        .map(overflow_on_13, 0..30u64)
        .chunksize(fixed(1))
        .collect();
    for (x, result) in (0..30u64).zip(&results) {
        if x == 13 {
            assert!(overflowed(result, victim), "item 13: {result:?}");
        } else {
            assert_eq!(result, &Ok(scramble(x)), "item {x}");
        }
    }
    assert_eq!(pool.worker_pids().len(), 1);
}

// ------------------------------------------------- helper-process tests

/// Environment variable that makes [`child_helper`] do something.
const HELPER: &str = "CF_FAULT_INJECTION_TEST_HELPER";

/// A task that says it started (`started-<tag>` holding its pid) and waits
/// for the test's `release` file, `limit` seconds at most.
fn hold((dir, tag, limit): (String, u32, u64)) -> u32 {
    let dir = Path::new(&dir);
    let temporary = dir.join(format!("started-{tag}.tmp"));
    std::fs::write(&temporary, std::process::id().to_string()).expect("write");
    std::fs::rename(&temporary, dir.join(format!("started-{tag}"))).expect("rename");
    wait_for(|| dir.join("release").exists(), Duration::from_secs(limit));
    std::process::id()
}

/// The threads of this process whose name starts with `prefix` (Linux
/// truncates thread names to 15 bytes).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list /proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// A test that runs only in a process of its own, started by another test,
/// where no other test starts children, threads or descriptors.
#[test]
#[ignore = "a helper: runs only when a test re-executes this binary"]
fn child_helper() {
    let Ok(mode) = std::env::var(HELPER) else {
        return;
    };
    match mode.as_str() {
        "drop_while_running" => drop_while_running(),
        "own_a_busy_pool" => own_a_busy_pool(),
        other => panic!("unknown helper mode {other}"),
    }
    println!("HELPER-PASSED");
}

/// Drops a pool whose two workers are inside tasks, with more tasks queued
/// and a `map` half consumed; checks that the drop waited for them all and
/// left no process, thread or descriptor behind.
fn drop_while_running() {
    let dir = TempDir::new("inject", "drop-running");
    let fds_at_start = fd_count();
    assert_eq!(threads_named("ProcessPoolExe"), 0);
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let mut map = pool.map(scramble, 0..1_000u64).chunksize(fixed(10));
    let first: Vec<_> = map.by_ref().take(50).collect();
    assert!(first.iter().zip(0..).all(|(r, x)| r == &Ok(scramble(x))));
    let running: Vec<_> = (0..2)
        .map(|tag| pool.submit(hold, (dir.text(), tag, 20)))
        .collect();
    let queued: Vec<_> = (0..20u64).map(|x| pool.submit(scramble, x)).collect();
    let workers: Vec<Victim> = [dir.started(0), dir.started(1)]
        .into_iter()
        .map(|pid| {
            let (_, _, started) = proc_stat(pid).expect("the worker runs");
            Victim { pid, started }
        })
        .collect();
    thread::scope(|s| {
        let dropper = s.spawn(move || drop(pool));
        // Both workers are held, so the drop cannot be over.
        assert!(!dropper.is_finished(), "the drop did not wait");
        dir.release();
        dropper.join().expect("the drop");
    });
    // The drop waited: the running tasks finished, the queued ones ran.
    for (future, worker) in running.into_iter().zip(&workers) {
        assert_eq!(future.result(), Ok(worker.pid));
    }
    for (x, future) in (0..20u64).zip(queued) {
        assert_eq!(future.result(), Ok(scramble(x)));
    }
    // The map, begun on the pool before it went, yields one result per
    // item: correct values for what ran, then the shutdown for the rest.
    let results: Vec<_> = first.into_iter().chain(map.by_ref()).collect();
    assert_eq!(results.len(), 1_000);
    let ran = results.iter().take_while(|r| r.is_ok()).count();
    assert!((50..1_000).contains(&ran), "{ran} items ran");
    for (x, result) in results.iter().enumerate() {
        if x < ran {
            assert_eq!(result, &Ok(scramble(x as u64)));
        } else {
            assert_eq!(result, &Err(Error::Shutdown), "item {x}");
        }
    }
    drop(map);
    // No zombie, no orphan, no driver thread, no descriptor left.
    assert_eq!(our_children(), Vec::<u32>::new(), "children left");
    for worker in &workers {
        assert!(worker.is_gone(), "worker {} outlived the pool", worker.pid);
    }
    // A driver counts itself out just before its thread ends: give the
    // thread the moment it needs to be gone from /proc.
    let no_drivers = wait_for(
        || threads_named("ProcessPoolExe") == 0,
        Duration::from_secs(10),
    );
    assert!(no_drivers, "driver threads left");
    let fds = fd_count();
    assert!(
        fds <= fds_at_start,
        "{fds_at_start} descriptors before the pool, {fds} after"
    );
}

/// Starts a pool whose two workers go into tasks that would hold them for
/// a minute, prints the workers' pids, and waits for its standard input to
/// close: the test that started it kills it first.
fn own_a_busy_pool() {
    let dir = TempDir::new("inject", "busy-pool");
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let _running: Vec<_> = (0..2)
        .map(|tag| pool.submit(hold, (dir.text(), tag, 60)))
        .collect();
    let pids = [dir.started(0), dir.started(1)];
    println!("WORKER-PIDS {} {}", pids[0], pids[1]);
    use std::io::Write;
    std::io::stdout().flush().expect("flush");
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).expect("read stdin");
}

#[test]
fn dropping_the_pool_while_tasks_run_waits_and_leaves_nothing_behind() {
    common::run_helper(HELPER, "drop_while_running");
}

/// Idle workers die of end of file on their pipe when their parent dies
/// (`process_faults.rs` tests that). Workers inside a task read no pipe:
/// only the parent-death signal stops them.
#[test]
fn workers_inside_a_task_die_with_their_parent() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut owner = common::helper_command(HELPER, "own_a_busy_pool")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let stdout = owner.stdout.take().expect("its stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("WORKER-PIDS "));
    let Some(line) = line else {
        let _ = owner.kill();
        let status = owner.wait();
        panic!("the helper printed no pids ({status:?})");
    };
    let workers: Vec<Victim> = line
        .split_whitespace()
        .skip(1)
        .map(|pid| pid.parse().expect("a pid"))
        .map(|pid| {
            let (state, parent, started) = proc_stat(pid).expect("the worker is alive");
            assert_eq!(parent, owner.id(), "{pid} is the helper's child");
            assert_ne!(state, 'Z', "{pid} is inside its task");
            Victim { pid, started }
        })
        .collect();
    assert_eq!(workers.len(), 2);
    owner.kill().expect("kill the helper");
    owner.wait().expect("reap the helper");
    // Their tasks would hold them for a minute; 10 s is the parent-death
    // signal or nothing. A zombie of whoever adopted them counts as gone.
    let gone = |w: &Victim| match proc_stat(w.pid) {
        Some((state, _, started)) => state == 'Z' || started != w.started,
        None => true,
    };
    let all_gone = wait_for(|| workers.iter().all(gone), Duration::from_secs(10));
    let helper_dir = std::env::temp_dir().join(format!("cf-inject-{}-busy-pool", owner.id()));
    let _ = std::fs::remove_dir_all(helper_dir);
    assert!(
        all_gone,
        "workers {workers:?} outlived their parent by 10 s"
    );
}
