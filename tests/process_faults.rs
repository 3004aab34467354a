//! `ProcessPoolExecutor` when things go wrong: workers that abort, exit,
//! crash or are killed; the per-task time limit; stopping the workers;
//! process hygiene (no zombies, no leaked descriptors, workers die with
//! their parent); and a worker started with a marker that does not check
//! out.
//!
//! Random kills during a long `map`, a stack overflow, a pool dropped while
//! its tasks run and a parent killed while its workers are inside a task
//! are in `tests/fault_injection.rs`; hand-made bad frames on the pipes in
//! `tests/bad_input.rs`.
//!
//! The workers are this very test binary, re-executed. Tests that need a
//! process of their own run this binary again with `--exact child_helper`
//! and tell the helper what to do through an environment variable.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor};

mod common;
use common::{fd_count, is_our_child, proc_stat, wait_for, wait_for_workers, TempDir};

// ---------------------------------------------------------------- helpers

/// A task that writes its pid to `started-<tag>` and then waits for a
/// `release` file that these tests never create (20 s at most, so that a
/// worker never outlives a failed test by long). Other items pass.
fn block_on_tag((dir, x, tag): (String, u64, u64)) -> u64 {
    if x == tag {
        let dir = Path::new(&dir);
        let temporary = dir.join(format!("started-{tag}.tmp"));
        std::fs::write(&temporary, std::process::id().to_string()).expect("write");
        std::fs::rename(&temporary, dir.join(format!("started-{tag}"))).expect("rename");
        wait_for(|| dir.join("release").exists(), Duration::from_secs(20));
    }
    x * 2
}

fn own_pid(_: ()) -> u32 {
    std::process::id()
}

// ---------------------------------------------------------- worker death

fn die_by_abort(_: ()) -> u32 {
    std::process::abort()
}

fn die_by_exit(_: ()) -> u32 {
    std::process::exit(3)
}

fn die_by_segfault(_: ()) -> u32 {
    // SAFETY: raising a signal is always sound; this one ends the process.
    unsafe { libc::raise(libc::SIGSEGV) };
    0
}

fn die_by_sigkill(_: ()) -> u32 {
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGKILL) };
    0
}

/// Runs `task` on a one-worker pool and checks that it fails with the
/// worker's death, which is reaped and replaced.
fn assert_death(task: fn(()) -> u32, exit_code: Option<i32>, signal: Option<i32>) {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let before = pool.submit(own_pid, ()).result().unwrap();
    assert_eq!(pool.worker_pids(), [before]);
    let outcome = pool.submit(task, ()).result();
    let expected = Error::WorkerDied {
        pid: before,
        exit_code,
        signal,
    };
    assert_eq!(outcome, Err(expected));
    assert!(!is_our_child(before), "the dead worker was reaped");
    let after = pool.submit(own_pid, ()).result().unwrap();
    assert_ne!(after, before);
    assert_eq!(pool.worker_pids(), [after], "replaced, the dead pid gone");
}

#[test]
fn a_worker_that_aborts_fails_its_task_and_is_replaced() {
    assert_death(die_by_abort, None, Some(libc::SIGABRT));
}

#[test]
fn a_worker_that_exits_fails_its_task_with_the_exit_code() {
    assert_death(die_by_exit, Some(3), None);
}

#[test]
fn a_worker_that_segfaults_fails_its_task_with_the_signal() {
    assert_death(die_by_segfault, None, Some(libc::SIGSEGV));
}

#[test]
fn a_worker_that_kills_itself_fails_its_task_with_the_signal() {
    assert_death(die_by_sigkill, None, Some(libc::SIGKILL));
}

#[test]
fn a_worker_killed_in_the_middle_of_a_map_fails_only_the_item_it_ran() {
    let dir = TempDir::new("faults", "kill-mid-map");
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let items: Vec<(String, u64, u64)> = (0..100).map(|x| (dir.text(), x, 15)).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let ten = Chunksize::Fixed(std::num::NonZeroUsize::new(10).unwrap());
            pool.map(block_on_tag, items)
                .chunksize(ten)
                .collect::<Vec<_>>()
        });
        let victim = dir.started(15);
        assert!(pool.worker_pids().contains(&victim));
        // SAFETY: `kill` takes plain integers; `victim` is our own worker,
        // not yet reaped (it is blocked), so the pid is not reused.
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
        let results = consumer.join().expect("the consumer");
        let died = Err(Error::WorkerDied {
            pid: victim,
            exit_code: None,
            signal: Some(libc::SIGKILL),
        });
        for (x, result) in (0..100u64).zip(&results) {
            // Only the item it was running; the chunk's others ran (or run
            // on its replacement).
            let expected = if x == 15 { &died } else { &Ok(x * 2) };
            assert_eq!(result, expected, "item {x}");
        }
        results
    });
    assert_eq!(results.len(), 100);
    assert_eq!(pool.submit(own_pid, ()).result().map(|_| ()), Ok(()));
}

// ----------------------------------------------------- time limit, stop

/// A task that outlives any limit under test: the workload that the time
/// limit must stop, not a way to wait for anything.
fn stall(seconds: u64) -> u32 {
    std::thread::sleep(Duration::from_secs(seconds));
    std::process::id()
}

#[test]
fn a_task_over_its_time_limit_fails_and_its_worker_is_replaced() {
    let limit = Duration::from_millis(300);
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .task_timeout(limit)
        .build()
        .unwrap();
    let before = pool.submit(own_pid, ()).result().unwrap();
    let start = Instant::now();
    let outcome = pool.submit(stall, 20).result();
    let took = start.elapsed();
    assert_eq!(outcome, Err(Error::TaskTimedOut { limit, pid: before }));
    assert!(took >= limit && took < Duration::from_secs(10), "{took:?}");
    assert!(
        !is_our_child(before),
        "the stuck worker was killed and reaped"
    );
    let after = pool.submit(own_pid, ()).result().unwrap();
    assert_ne!(after, before);
    assert_eq!(pool.worker_pids(), [after]);
}

fn stop_running_workers(stop: fn(&ProcessPoolExecutor), signal: i32) {
    let dir = TempDir::new("faults", &format!("stop-{signal}"));
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let running: Vec<_> = (0..2)
        .map(|x| pool.submit(block_on_tag, (dir.text(), x, x)))
        .collect();
    let queued: Vec<_> = (2..5)
        .map(|x| pool.submit(block_on_tag, (dir.text(), x, x)))
        .collect();
    let pids = [dir.started(0), dir.started(1)];
    assert!(running.iter().all(|f| f.running()));
    assert!(queued.iter().all(|f| !f.running()));
    stop(&pool);
    for (f, pid) in running.into_iter().zip(pids) {
        let died = Error::WorkerDied {
            pid,
            exit_code: None,
            signal: Some(signal),
        };
        assert_eq!(f.result(), Err(died));
        assert!(!is_our_child(pid));
    }
    for f in queued {
        assert_eq!(f.result(), Err(Error::Cancelled));
    }
    assert!(pool.worker_pids().is_empty() && pool.is_shutdown());
    assert!(!dir.0.join("started-2").exists(), "no queued task ran");
    assert_eq!(pool.submit(own_pid, ()).result(), Err(Error::Shutdown));
}

#[test]
fn kill_workers_fails_running_tasks_and_cancels_queued_ones() {
    stop_running_workers(ProcessPoolExecutor::kill_workers, libc::SIGKILL);
}

#[test]
fn terminate_workers_fails_running_tasks_and_cancels_queued_ones() {
    stop_running_workers(ProcessPoolExecutor::terminate_workers, libc::SIGTERM);
}

// --------------------------------------------- idle workers and reaping

#[test]
fn worker_pids_never_lists_a_reaped_worker() {
    let pool = Arc::new(ProcessPoolExecutor::new(1).unwrap());
    let before = pool.submit(own_pid, ()).result().unwrap();
    let (seen, seen_rx) = mpsc::channel();
    let observer = Arc::clone(&pool);
    let doomed = pool.submit(die_by_exit, ());
    doomed.add_done_callback(move |_| {
        let _ = seen.send((observer.worker_pids(), is_our_child(before)));
    });
    let (pids, still_a_child) = seen_rx.recv().expect("the callback ran");
    assert!(!still_a_child, "reaped before the future completed");
    assert!(
        !pids.contains(&before),
        "{pids:?} lists reaped worker {before}"
    );
}

#[test]
fn a_worker_that_dies_while_idle_is_reaped_and_replaced() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let before = pool.submit(own_pid, ()).result().unwrap();
    // SAFETY: `before` is our own idle worker, not yet reaped.
    assert_eq!(unsafe { libc::kill(before as i32, libc::SIGKILL) }, 0);
    let replaced = wait_for(
        || !is_our_child(before) && pool.worker_pids().len() == 1,
        Duration::from_secs(10),
    );
    assert!(
        replaced,
        "worker {before} is still an unreaped child after 10 s"
    );
}

#[test]
fn a_task_is_not_failed_by_a_worker_that_died_before_it() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let before = pool.submit(own_pid, ()).result().unwrap();
    // SAFETY: `before` is our own idle worker, not yet reaped.
    assert_eq!(unsafe { libc::kill(before as i32, libc::SIGKILL) }, 0);
    let dead = wait_for(
        || match proc_stat(before) {
            Some((state, parent, _)) => state == 'Z' || parent != std::process::id(),
            None => true,
        },
        Duration::from_secs(10),
    );
    assert!(dead, "the worker did not die");
    let outcome = pool.submit(own_pid, ()).result();
    assert!(matches!(outcome, Ok(pid) if pid != before), "{outcome:?}");
}

// --------------------------------------------------------------- hygiene

#[test]
fn dropping_the_pool_reaps_every_worker() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let pids = wait_for_workers(&pool);
    assert!(pids.iter().all(|&pid| is_our_child(pid)));
    drop(pool);
    for pid in pids {
        assert!(
            !is_our_child(pid),
            "worker {pid} is left as a zombie or alive"
        );
    }
}

/// Environment variable that makes [`child_helper`] do something.
const HELPER: &str = "CF_PROCESS_FAULTS_TEST_HELPER";

/// Starts this test binary again, running only [`child_helper`] in `mode`.
fn helper_command(mode: &str) -> Command {
    common::helper_command(HELPER, mode)
}

/// Runs [`child_helper`] in `mode` to its end and checks that it passed.
fn run_helper(mode: &str) {
    common::run_helper(HELPER, mode);
}

/// A test that runs only in a process of its own, started by another test:
/// descriptor counts are only meaningful where no other test opens pipes.
#[test]
#[ignore = "a helper: runs only when a test re-executes this binary"]
fn child_helper() {
    let Ok(mode) = std::env::var(HELPER) else {
        return;
    };
    match mode.as_str() {
        "descriptors_over_many_tasks" => descriptors_over_many_tasks(),
        "descriptors_over_many_replacements" => descriptors_over_many_replacements(),
        "own_a_pool" => own_a_pool(),
        other => panic!("unknown helper mode {other}"),
    }
    println!("HELPER-PASSED");
}

fn assert_flat(before: usize, after: usize, what: &str) {
    assert!(
        before.abs_diff(after) <= 2,
        "{what}: {before} descriptors before, {after} after"
    );
}

fn descriptors_over_many_tasks() {
    let at_start = fd_count();
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let pids = wait_for_workers(&pool);
    let with_workers = fd_count();
    let futures: Vec<_> = (0..10_000u64)
        .map(|x| pool.submit(|x: u64| x + 1, x))
        .collect();
    for (x, f) in (0..10_000u64).zip(futures) {
        assert_eq!(f.result(), Ok(x + 1));
    }
    assert_eq!(pool.worker_pids(), pids, "no worker was replaced");
    assert_flat(with_workers, fd_count(), "over 10 000 tasks");
    drop(pool);
    assert_flat(at_start, fd_count(), "after the pool");
}

fn descriptors_over_many_replacements() {
    let at_start = fd_count();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    wait_for_workers(&pool);
    let with_workers = fd_count();
    let futures: Vec<_> = (0..100).map(|_| pool.submit(own_pid, ())).collect();
    let pids: Vec<u32> = futures.into_iter().map(|f| f.result().unwrap()).collect();
    let distinct: std::collections::HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 100, "every task had a fresh worker");
    // Steady again: both slots hold fresh workers, none that ran a task.
    let fresh = || {
        let now = pool.worker_pids();
        now.len() == 2 && now.iter().all(|pid| !distinct.contains(pid))
    };
    assert!(wait_for(fresh, Duration::from_secs(10)), "no fresh workers");
    assert_flat(with_workers, fd_count(), "over 100 replacements");
    drop(pool);
    assert_flat(at_start, fd_count(), "after the pool");
    for pid in pids {
        assert!(!is_our_child(pid), "worker {pid} was not reaped");
    }
}

/// Starts a pool, prints its workers' pids and waits for its standard
/// input to close: the test that started it kills it first.
fn own_a_pool() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let pids = wait_for_workers(&pool);
    let text: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("WORKER-PIDS {}", text.join(" "));
    std::io::stdout().flush().expect("flush");
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).expect("read stdin");
}

#[test]
fn descriptors_stay_flat_over_ten_thousand_tasks() {
    run_helper("descriptors_over_many_tasks");
}

#[test]
fn descriptors_stay_flat_over_a_hundred_worker_replacements() {
    run_helper("descriptors_over_many_replacements");
}

#[test]
fn workers_die_with_their_parent() {
    let mut owner = helper_command("own_a_pool")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let stdout = owner.stdout.take().expect("its stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("WORKER-PIDS "))
        .expect("the helper printed its workers' pids");
    let workers: Vec<(u32, u64)> = line
        .split_whitespace()
        .skip(1)
        .map(|pid| pid.parse().expect("a pid"))
        .map(|pid| {
            let (_, parent, started) = proc_stat(pid).expect("the worker is alive");
            assert_eq!(parent, owner.id(), "{pid} is the helper's child");
            (pid, started)
        })
        .collect();
    assert_eq!(workers.len(), 2);
    owner.kill().expect("kill the helper");
    owner.wait().expect("reap the helper");
    // Gone, a zombie of whoever adopted it, or its pid reused by another.
    let gone = |&(pid, started): &(u32, u64)| match proc_stat(pid) {
        Some((state, _, now_started)) => state == 'Z' || now_started != started,
        None => true,
    };
    let all_gone = wait_for(|| workers.iter().all(gone), Duration::from_secs(10));
    assert!(
        all_gone,
        "workers {workers:?} outlived their parent by 10 s"
    );
}

// -------------------------------------------------------------- bad start

const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

/// Runs this binary as a would-be worker. `--list` makes a process that got
/// past the marker print the test names, so stdout shows if it did.
fn bad_start(marker: &str, keep: &[RawFd]) -> (Option<i32>, String, String) {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command.arg("--list").env(MARKER, marker);
    let keep = keep.to_vec();
    // SAFETY: runs between fork and exec, where only async-signal-safe
    // calls are allowed: `fcntl` is one; nothing allocates (the vector was
    // built before the fork).
    unsafe {
        command.pre_exec(move || {
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let output = command.output().expect("run the binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stdout, stderr)
}

fn assert_refused(marker: &str, keep: &[RawFd], why: &str) {
    let (code, stdout, stderr) = bad_start(marker, keep);
    assert_eq!(code, Some(86), "stderr: {stderr}");
    assert!(stdout.is_empty(), "it ran the test harness: {stdout}");
    assert!(
        stderr.contains("concurrent-futures") && stderr.contains(why),
        "{stderr}"
    );
}

#[test]
fn a_garbage_marker_is_refused() {
    assert_refused("garbage", &[], "is not of the form");
    assert_refused("v1:5:6", &[], "is not of the form");
}

#[test]
fn a_marker_naming_closed_descriptors_is_refused() {
    assert_refused("v1:900:901:00", &[], "descriptor 900 is not open");
}

/// A close-on-exec pipe: `(read, write)`.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: `pipe2` succeeded: two new descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A `Hello` frame, encoded by hand as postcard does: variant 0, version 3,
/// `token` (under 128, one byte), executable (0, 0), probe 0, no
/// initializer, frame limit 4096, region descriptor 0, no arena.
fn hello_frame(token: u8) -> Vec<u8> {
    assert!(token < 128);
    let header = [0, 3, token, 0, 0, 0, 0, 0x80, 0x20, 0, 0];
    let mut frame = (header.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&header);
    frame
}

/// Greets a would-be worker with `hello_token` on real pipes, its marker
/// saying `marker_token`.
fn greet(marker_token: u8, hello_token: u8, why: &str) {
    let (task_read, task_write) = pipe();
    let (result_read, result_write) = pipe();
    std::fs::File::from(task_write)
        .write_all(&hello_frame(hello_token))
        .expect("write the greeting");
    let keep = [task_read.as_raw_fd(), result_write.as_raw_fd()];
    let marker = format!("v1:{}:{}:{marker_token:x}", keep[0], keep[1]);
    assert_refused(&marker, &keep, why);
    drop((task_read, result_write, result_read));
}

#[test]
fn a_worker_greeted_with_a_wrong_token_is_refused() {
    greet(0x78, 0x77, "token does not match");
    // The control: with the right token the same greeting gets past the
    // token check and fails on the next one, so the check above is real.
    greet(0x77, 0x77, "different executable");
}
