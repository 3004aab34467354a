//! [`Process`]: one function run in a fresh copy of this program.
//!
//! A `Process` is a one-worker [`ProcessPoolExecutor`] made "one-shot"
//! (its worker is never replaced), so it shares everything the pool does
//! to start, greet, watch and reap a worker: `/proc/self/exe`, the
//! handshake, the function sent by its offset, `PR_SET_PDEATHSIG`, handles
//! in the argument passed as descriptors. The pool runs two tasks on its
//! worker: first one that reports the worker's pid (so [`Process::pid`]
//! is exact from the start), then the user's function; after that the
//! worker retires, is reaped, and is not replaced.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Future, ProcessPoolExecutor};

/// A function running in another process: Python's
/// `multiprocessing.Process`.
///
/// [`spawn`](Self::spawn) starts a fresh copy of this program (the same
/// executable, through `/proc/self/exe`, as the process pool's workers)
/// and runs `f(arg)` in it; [`join`](Self::join) waits and gives back
/// `f`'s return value — or, as an [`Error`], how the process failed: a
/// panic ([`Error::Panicked`], with message, location and pid), or its
/// death ([`Error::WorkerDied`], with its exit code or signal, also for
/// [`terminate`](Self::terminate), [`kill`](Self::kill) and
/// `std::process::exit`).
///
/// The process dies with its parent (`PR_SET_PDEATHSIG`, and end of file
/// on its pipe). It is reaped by `join`; dropping a `Process` without
/// joining it detaches it: it runs on, and is reaped in the background
/// when it ends — never a zombie.
///
/// As with the pool, the program must call
/// [`concurrent_futures::init()`](crate::init) first in `main` (test
/// binaries need not: workers are caught before `main`).
///
/// # Examples
///
/// ```no_run
/// use concurrent_futures::multiprocessing::{Process, Queue};
///
/// fn calc_square((numbers, q): (Vec<u64>, Queue<u64>)) {
///     for n in numbers {
///         q.put(n * n).unwrap();
///     }
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::init();
///     let q = Queue::bounded(10)?;
///     let p = Process::spawn(calc_square, (vec![2, 3, 5], q.clone()))?;
///     p.join()?;
///     while let Some(square) = q.try_get()? {
///         println!("{square}");
///     }
///     Ok(())
/// }
/// ```
pub struct Process<R> {
    /// `None` once joined (and reaped) or detached.
    pool: Option<ProcessPoolExecutor>,
    future: Future<R>,
    pid: u32,
}

/// The first task of every `Process`: who am I.
fn own_pid(_: ()) -> u32 {
    std::process::id()
}

impl<R> Process<R>
where
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// Starts a new process that runs `f(arg)`, and returns once it runs.
    ///
    /// `f` is a plain function (or a closure that captures nothing), as
    /// for [`ProcessPoolExecutor::submit`]; several arguments travel as a
    /// tuple. `arg` may hold multiprocessing handles ([`Lock`](super::Lock),
    /// [`Value`](super::Value), [`Queue`](super::Queue), …): their
    /// descriptors travel with it.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if the process cannot be started or fails its
    /// handshake; [`Error::InvalidArgument`] if `f` is not in the
    /// program's own executable code. An argument that fails to encode is
    /// reported by [`join`](Self::join), as [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use concurrent_futures::multiprocessing::Process;
    ///
    /// let p = Process::spawn(|(a, b): (u32, u32)| a + b, (2, 3))?;
    /// assert!(p.pid() > 0);
    /// assert_eq!(p.join()?, 5);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn spawn<A>(f: fn(A) -> R, arg: A) -> Result<Process<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .max_tasks_per_child(2)
            .one_shot()
            .build()?;
        let pid = pool.submit(own_pid, ()).result().map_err(|e| match e {
            Error::BrokenPool { reason } => Error::Spawn { reason },
            Error::WorkerDied { pid, .. } => Error::Spawn {
                reason: format!("process {pid} died as it started"),
            },
            e => e,
        })?;
        let future = pool.submit(f, arg);
        Ok(Process {
            pool: Some(pool),
            future,
            pid,
        })
    }

    /// The process id. Python's `p.pid`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use concurrent_futures::multiprocessing::Process;
    ///
    /// let p = Process::spawn(|(): ()| std::process::id(), ())?;
    /// let pid = p.pid();
    /// assert_eq!(p.join()?, pid);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the function is still running: false once it has
    /// returned, panicked, or the process died. (A process whose function
    /// has returned exits at once; [`join`](Self::join) reaps it.)
    /// Python's `is_alive()`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use concurrent_futures::multiprocessing::Process;
    ///
    /// let p = Process::spawn(|(): ()| std::thread::sleep(std::time::Duration::from_secs(60)), ())?;
    /// assert!(p.is_alive());
    /// p.kill();
    /// assert!(p.join().is_err());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        !self.future.done()
    }

    /// Waits for the function to end and the process to be reaped;
    /// returns what the function returned.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] if it panicked; [`Error::WorkerDied`] if the
    /// process died first (killed, aborted, `exit`ed: the exit code or
    /// signal is in the error); [`Error::Encode`] / [`Error::Decode`] if
    /// the argument or the result could not travel.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use concurrent_futures::{multiprocessing::Process, Error};
    ///
    /// let p = Process::spawn(|(): ()| -> u8 { panic!("boom") }, ())?;
    /// assert!(matches!(p.join(), Err(Error::Panicked { .. })));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn join(mut self) -> Result<R, Error> {
        self.future.wait();
        let result = self
            .future
            .try_result()
            .unwrap_or(Err(Error::AlreadyRetrieved));
        self.reap();
        result
    }

    /// Like [`join`](Self::join), waiting at most `timeout`: Python's
    /// `join(timeout)`. If the function has not ended by then, the process
    /// goes on and the error is [`Error::Timeout`]; join again later. Once
    /// this has returned the function's outcome, the process is reaped and
    /// a later `join` returns [`Error::AlreadyRetrieved`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use concurrent_futures::{multiprocessing::Process, Error};
    /// use std::time::Duration;
    ///
    /// let mut p = Process::spawn(|(): ()| std::thread::sleep(Duration::from_secs(60)), ())?;
    /// assert!(matches!(p.join_timeout(Duration::from_millis(10)), Err(Error::Timeout(_))));
    /// p.terminate();
    /// assert!(matches!(p.join(), Err(Error::WorkerDied { signal: Some(15), .. })));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, Error> {
        let result = self.future.result_timeout(timeout);
        if !matches!(result, Err(Error::Timeout(_))) {
            self.reap();
        }
        result
    }

    /// Sends the process `SIGTERM`, and returns at once. Python's
    /// `terminate()`.
    ///
    /// # Examples
    ///
    /// See [`join_timeout`](Self::join_timeout).
    pub fn terminate(&self) {
        if let Some(pool) = &self.pool {
            pool.signal_workers(libc::SIGTERM);
        }
    }

    /// Sends the process `SIGKILL`, which it cannot catch, and returns at
    /// once. Python's `kill()`.
    ///
    /// # Examples
    ///
    /// See [`is_alive`](Self::is_alive).
    pub fn kill(&self) {
        if let Some(pool) = &self.pool {
            pool.signal_workers(libc::SIGKILL);
        }
    }

    /// Shuts the pool down, which reaps the process (it has ended).
    fn reap(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.shutdown();
        }
    }
}

impl<R> Drop for Process<R> {
    /// Detaches a process that is still running: a thread waits for it and
    /// reaps it. One that has ended is reaped at once.
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        if self.future.done() {
            return drop(pool);
        }
        // Should no thread start, the closure, and the pool in it, is
        // dropped right here: this waits rather than leave a zombie.
        let _ = std::thread::Builder::new()
            .name(format!("Process-{}-reaper", self.pid))
            .spawn(move || drop(pool));
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("done", &self.future.done())
            .finish()
    }
}
