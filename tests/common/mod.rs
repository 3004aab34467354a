//! Helpers shared by the test files.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::fmt::Display;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use concurrent_futures::{Future, ThreadPoolExecutor};

/// Keeps one of the pool's workers busy, in a task that has started and
/// waits at a gate, until the returned sender sends (or is dropped).
pub(crate) fn hold_the_worker(pool: &ThreadPoolExecutor) -> (Future<()>, Sender<()>) {
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let busy = pool.submit(move || {
        started_tx.send(()).unwrap();
        let _ = gate.recv();
    });
    started.recv().unwrap();
    (busy, release)
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor: poll, park until woken, poll again. It has no
/// time limit: a lost wake-up shows as a waiter that never returns.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// A directory of its own for one test, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A fresh directory named after the test file (`prefix`), this
    /// process and the test (`name`).
    pub(crate) fn new(prefix: &str, name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cf-{prefix}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the test's directory");
        TempDir(path)
    }

    /// The directory's path as a string, to send to a task.
    pub(crate) fn text(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    /// The path of `name` in the directory, as a string.
    pub(crate) fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// Waits (10 s at most) until blocker `tag` runs; returns its pid.
    pub(crate) fn started(&self, tag: impl Display) -> u32 {
        let path = self.0.join(format!("started-{tag}"));
        assert!(
            wait_for(|| path.exists(), Duration::from_secs(10)),
            "blocker {tag} did not start within 10 s"
        );
        let text = std::fs::read_to_string(&path).expect("read the started file");
        text.parse().expect("the started file holds a pid")
    }

    /// Creates the release file the blockers wait for.
    pub(crate) fn release(&self) {
        std::fs::write(self.0.join("release"), b"go").expect("create the release file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `condition` until it holds or `limit` passes; whether it held. A
/// failure detector for conditions only the OS can tell (a process gone),
/// never a way to wait for the code under test.
pub(crate) fn wait_for(mut condition: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
    true
}

// ------------------------------------------------- processes, from /proc

/// State, parent and start time of process `pid`, from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((
        state,
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// Whether `pid` is a child of this process (running, or a zombie not yet
/// reaped).
pub(crate) fn is_our_child(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(_, parent, _)| parent == std::process::id())
}

/// Every child of this process, running or a zombie, from a scan of
/// `/proc`. Only meaningful in a process where no other test starts
/// children (a helper process).
pub(crate) fn our_children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(_, parent, _)| parent == me))
        .collect()
}

/// The number of descriptors this process has open.
pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

/// The write end of this worker's result pipe, for a task that breaks the
/// protocol on purpose: from the worker marker in the environment the
/// process started with, or else the one close-on-exec, write-only pipe
/// the process has open.
pub(crate) fn result_pipe() -> std::os::fd::RawFd {
    let environ = std::fs::read("/proc/self/environ").unwrap_or_default();
    let marker = environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(b"CONCURRENT_FUTURES_WORKER=".as_slice()));
    if let Some(marker) = marker {
        let marker = String::from_utf8_lossy(marker);
        let fd = marker.split(':').nth(2).and_then(|fd| fd.parse().ok());
        return fd.unwrap_or_else(|| panic!("a marker without a result pipe: {marker}"));
    }
    let fds: Vec<std::os::fd::RawFd> = std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &std::os::fd::RawFd| fd > 2)
        .filter(|fd| {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|line| line.strip_prefix("flags:"))
                .and_then(|flags| i32::from_str_radix(flags.trim(), 8).ok())
                .unwrap_or(0);
            link.to_string_lossy().starts_with("pipe:")
                && flags & libc::O_ACCMODE == libc::O_WRONLY
                && flags & libc::O_CLOEXEC != 0
        })
        .collect();
    assert_eq!(fds.len(), 1, "the result pipe is not the only one: {fds:?}");
    fds[0]
}

/// Waits (10 s at most) until every worker of `pool` has started; their
/// pids.
#[cfg(target_os = "linux")]
pub(crate) fn wait_for_workers(pool: &concurrent_futures::ProcessPoolExecutor) -> Vec<u32> {
    let all_up = wait_for(
        || pool.worker_pids().len() == pool.max_workers(),
        Duration::from_secs(10),
    );
    assert!(all_up, "the workers did not start within 10 s");
    pool.worker_pids()
}

// ------------------------------------------------------ helper processes

/// This test binary again, running only its `#[ignore]`d test named
/// `child_helper`, with `var=mode` in its environment to say what to do.
/// Tests that need a process of their own (descriptor counts, killing the
/// parent of a pool) use it.
pub(crate) fn helper_command(var: &str, mode: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", "child_helper", "--ignored", "--nocapture"])
        .env(var, mode);
    command
}

/// Runs the helper in `mode` to its end and checks that it passed: it
/// exited successfully and printed `HELPER-PASSED`.
pub(crate) fn run_helper(var: &str, mode: &str) {
    let output = helper_command(var, mode).output().expect("run the helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("HELPER-PASSED"),
        "helper {mode} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
