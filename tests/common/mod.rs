//! Helpers shared by the test files.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::fmt::Display;
use std::path::PathBuf;
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
