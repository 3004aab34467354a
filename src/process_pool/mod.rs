//! [`ProcessPoolExecutor`]: run functions in worker processes that are
//! copies of this very program.
//!
//! The parts, one file (or folder) each:
//!
//! * `entry` — how a re-executed binary becomes a worker, and its loop;
//! * `spawn` — starting, greeting, killing and reaping worker processes;
//! * `wire` — frames and messages on the pipes, the shared region's
//!   protocol (module docs), and `wire/block` for runs of outcomes;
//! * `dispatch` — the queue, the driver thread per worker with its two
//!   tasks in hand, and `dispatch/settle` for frames and dead workers;
//! * `job` — a submitted call or a map's chunk, and its outcomes;
//!   `payload` — a job's encoded arguments (bytes, a vector of numbers
//!   taken whole, or a block of the argument arena);
//! * `arena` — which bytes of the pool's argument arena (a memfd every
//!   worker maps read-only) belong to which chunk: a `map` of plain
//!   numbers gathers its chunks there and the worker reads them in place;
//! * `outcomes` — how a worker records a task's outcomes in the shared region;
//! * `sys` — every `unsafe` operation, each explained: `sys/region` (the
//!   shared memory, pidfds, `poll`), `sys/arena` (the argument arena's
//!   mapping), `sys/process` (`posix_spawn`, reaping),
//!   `sys/overflow` (the stack-overflow report).

pub(crate) mod arena;
mod builder;
mod chunks;
pub(crate) mod dispatch;
pub(crate) mod entry;
pub(crate) mod job;
pub(crate) mod outcomes;
pub(crate) mod payload;
pub(crate) mod spawn;
pub(crate) mod sys;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use builder::ProcessPoolBuilder;

use crate::future::Promise;
use crate::map::Map;
use crate::multiprocessing::transfer;
use crate::{Error, Future};
use chunks::{encode_argument, ProcessChunks};
use dispatch::Shared;
use job::{Completion, Job};

/// A pool of worker processes that runs plain functions and hands back
/// [`Future`]s.
///
/// The Rust form of Python's `concurrent.futures.ProcessPoolExecutor`: for
/// CPU-bound work that should use every core, and for work that must be
/// isolated — a panic, an `abort()`, a segfault or a leak in a task costs
/// that task alone. The workers are copies of the running executable
/// (started through `/proc/self/exe`, Linux only); arguments and results
/// travel over pipes and shared memory, encoded with `serde` in postcard's
/// layout with fixed-width numbers.
///
/// # Workers and `init()`
///
/// A worker is this program started again; it must not run `main`. On
/// Linux the crate catches a worker before `main` starts, so test binaries,
/// benches, doctests and programs that call [`init`](crate::init) late or
/// never (under `#[tokio::main]`, say) all work as they are. `init()` as
/// the first line of `main` is the portable form; its docs say exactly when
/// it matters. The program's static constructors do run in every worker.
///
/// # Functions, not closures
///
/// A task is a plain `fn(A) -> R` — a function item, or a closure that
/// captures nothing — because only code travels to the worker, by its
/// address, not data. Several arguments travel as a tuple. `A` and `R`
/// must be `Serialize + DeserializeOwned + Send + 'static`.
///
/// Code that should run on any pool takes an [`Executor`](crate::Executor),
/// whose methods are these.
///
/// ```compile_fail
/// use concurrent_futures::ProcessPoolExecutor;
/// let pool = ProcessPoolExecutor::new(1).unwrap();
/// let offset = 10u64;
/// let f = pool.submit(move |x: u64| x + offset, 1); // captures `offset`
/// ```
///
/// # Arguments and results
///
/// Each value is encoded with `serde`, item by item, in postcard's layout
/// except that numbers are fixed-width (a `u64` is 8 bytes, one store to
/// write and one load to read, where a varint is a loop). A value
/// whose own `Serialize` or `Deserialize` impl fails fails its task alone,
/// with [`Error::Encode`] or [`Error::Decode`] naming which value and
/// carrying the impl's own message.
///
/// **Bulk bytes: use `serde_bytes`.** serde hands a `Vec<u8>` (or `[u8; N]`,
/// `&[u8]`) to the format as a sequence, one `u8` at a time, which runs at
/// about 0.3 GB/s; as a byte string, in one piece, the same 64 MiB travel
/// at about 1.4 GB/s (measured on the development machine: the README's
/// performance notes). serde cannot tell `Vec<u8>` apart without
/// specialisation, so the pool cannot do this for you: wrap the bytes in
/// [`serde_bytes::ByteBuf`](https://docs.rs/serde_bytes) or mark the field
/// `#[serde(with = "serde_bytes")]`.
///
/// ```
/// use concurrent_futures::ProcessPoolExecutor;
/// use serde::{Deserialize, Serialize};
/// use serde_bytes::ByteBuf;
///
/// #[derive(Serialize, Deserialize)]
/// struct Image {
///     width: u32,
///     #[serde(with = "serde_bytes")] // one byte string, not a sequence of u8
///     pixels: Vec<u8>,
/// }
///
/// fn brightest(image: Image) -> u8 {
///     image.pixels.into_iter().max().unwrap_or(0)
/// }
///
/// fn inverted(bytes: ByteBuf) -> ByteBuf {
///     ByteBuf::from(bytes.iter().map(|b| !b).collect::<Vec<u8>>())
/// }
///
/// let pool = ProcessPoolExecutor::new(1).unwrap();
/// let image = Image { width: 1024, pixels: vec![7; 1 << 20] };
/// assert_eq!(pool.submit(brightest, image).result(), Ok(7));
/// let back = pool.submit(inverted, ByteBuf::from(vec![0u8; 1 << 20])).result().unwrap();
/// assert!(back.iter().all(|&b| b == 255));
/// ```
///
/// # Faults
///
/// A panic fails its task with [`Error::Panicked`] (message, location,
/// worker pid); the worker lives on. A worker that dies fails only the task
/// it ran, with [`Error::WorkerDied`] (pid and exit code or signal), and is
/// replaced. The pool breaks ([`Error::BrokenPool`]) only when a worker
/// cannot be started, for example because the initializer fails.
///
/// **Under `panic = "abort"`** a panic cannot be caught: it aborts the
/// worker that runs the task. The task then fails with
/// [`Error::WorkerDied`] with `signal: Some(6)` (`SIGABRT`) instead of
/// [`Error::Panicked`]; the message and location are not in the error, but
/// the panic hook has printed them on the worker's standard error, which
/// is the program's. The worker is replaced and the pool goes on, as after
/// any worker death (for the rest of a `map` chunk, see
/// [`map`](Self::map)). The isolation is
/// the point: under `panic = "abort"` the same panic on the
/// [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) ends the whole program.
///
/// # Examples
///
/// ```
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn is_prime(n: u64) -> bool {
///     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::init();
///     let pool = ProcessPoolExecutor::new(2)?;
///     assert!(pool.submit(is_prime, 1_000_003).result()?);
///     let primes: Vec<bool> = pool.map(is_prime, 1..=10).collect::<Result<_, _>>()?;
///     assert_eq!(primes.iter().filter(|&&p| p).count(), 4);
///     Ok(())
/// }
/// ```
pub struct ProcessPoolExecutor {
    shared: Arc<Shared>,
    /// Executable ranges of the object that holds this crate; functions
    /// outside them are refused.
    ranges: Vec<(usize, usize)>,
}

impl ProcessPoolExecutor {
    /// A pool of `max_workers` worker processes, with the other options at
    /// their defaults (see [`builder`](Self::builder)). The workers start at
    /// once, in the background.
    ///
    /// `0` means the default number, Python's `max_workers=None`: one per
    /// CPU. Python refuses 0 with a `ValueError`; here it means what it
    /// means for [`ThreadPoolExecutor::new`](crate::ThreadPoolExecutor::new),
    /// which returns the pool itself and so could refuse 0 only by
    /// panicking, and the two pools read their counts alike.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if the pool's threads or token cannot be set up.
    /// A worker that fails to start breaks the pool instead: its futures
    /// then fail with [`Error::BrokenPool`].
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(2).unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// The builder for a pool with options: the number of workers, an
    /// initializer, `max_tasks_per_child`, a per-task time limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    /// use std::time::Duration;
    ///
    /// let pool = ProcessPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .max_tasks_per_child(100)
    ///     .task_timeout(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(u64::count_ones, 7).result(), Ok(3));
    /// ```
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::new()
    }

    /// Queues a job made elsewhere: a task an MPI rank received for its
    /// local pool (`crate::mpi`). A job the queue refuses fails at once.
    #[cfg(feature = "mpi")]
    pub(crate) fn submit_job(&self, job: Box<dyn job::ProcessJob>) {
        if let Err((job, error)) = self.shared.submit(job) {
            job.fail_rest(error);
        }
    }

    /// The number of worker processes.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// assert_eq!(ProcessPoolExecutor::new(3).unwrap().max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.config.max_workers
    }

    /// The pids of the worker processes running now.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// pool.submit(u8::count_ones, 1).result().unwrap();
    /// assert_eq!(pool.worker_pids().len(), 1);
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    /// Runs `f(arg)` in a worker process and returns the [`Future`] of its
    /// result.
    ///
    /// The future fails at once, without running anything, if the pool is
    /// shut down ([`Error::Shutdown`]) or broken ([`Error::BrokenPool`]), if
    /// `arg` cannot be encoded ([`Error::Encode`]), or if `f` does not lie
    /// in the program's own executable code (a function from a library
    /// loaded at run time: [`Error::InvalidArgument`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn add((a, b): (u32, u32)) -> u32 {
    ///     a + b
    /// }
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// assert_eq!(pool.submit(add, (2, 3)).result(), Ok(5));
    /// assert_eq!(pool.submit(|s: String| s.len(), "four".into()).result(), Ok(4));
    /// ```
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let (promise, future) = Promise::new();
        let (call, func) = match self.addresses(f) {
            Ok(addresses) => addresses,
            Err(error) => {
                promise.complete(Err(error));
                return future;
            }
        };
        let mut payload = self.shared.call_payload_buffer();
        // Multiprocessing handles in `arg` give their descriptors to `fds`.
        let (pushed, fds) = transfer::capture(|| encode_argument(&mut payload, &arg));
        if let Err(reason) = pushed {
            promise.complete(Err(Error::Encode {
                what: "argument",
                reason,
            }));
            return future;
        }
        let bounds = wire::Bounds::one(payload.len() as u32);
        let mut job = Job::new(
            call,
            func,
            payload.into(),
            bounds,
            Completion::Single(promise),
        );
        job.fds = fds;
        if let Err((job, error)) = self.shared.submit(Box::new(job)) {
            job.abandon(error);
        }
        future
    }

    /// Applies `f` to every item in worker processes and yields the results
    /// in input order.
    ///
    /// Lazy and bounded like the thread pool's [`map`](crate::ThreadPoolExecutor::map):
    /// items are taken from `items` only as needed and sent in chunks, a
    /// window of chunks in flight, so memory stays constant over any input.
    /// The chunk size adapts to the measured time per item unless fixed
    /// with [`Map::chunksize`]. Each item's result stands on its own: a
    /// panicking item fails alone.
    ///
    /// # A worker that dies costs one item
    ///
    /// For every chunk size, when the worker running a chunk dies (killed,
    /// crashed, or killed for the time limit):
    ///
    /// * the items of the chunk it finished are delivered with their
    ///   results (they are kept in shared memory that outlives it);
    /// * the item it was running fails with [`Error::WorkerDied`] (pid, exit
    ///   code or signal), [`Error::TaskTimedOut`] when the time limit killed
    ///   it, or [`Error::StackOverflow`];
    /// * the items it had not started run on its replacement, and succeed or
    ///   fail on their own (so does a chunk it held next but had not begun);
    /// * no item runs twice, and none is delivered without having run.
    ///
    /// [`task_timeout`](crate::ProcessPoolBuilder::task_timeout) limits each
    /// item, not a whole chunk; after a chunk in which an item failed, the
    /// next automatic chunk is half the size, never larger.
    /// [`max_tasks_per_child`](crate::ProcessPoolBuilder::max_tasks_per_child)
    /// counts chunks: a worker is retired after that many, between two.
    ///
    /// # Cost per item
    ///
    /// Chunks of plain numbers (`bool`, the integers, `f32`, `f64`) move in
    /// bulk: their arguments are gathered straight into a memory region
    /// every worker maps (read-only), and read there, with no copy and no
    /// pipe (chunks larger than its 16 MiB, and `bool`s, are sent from the
    /// map's own vector, also uncopied); their results are decoded in one
    /// pass. Other types are encoded and decoded item by item. Each worker
    /// holds the chunk it runs and the next, so that it never waits for
    /// the parent between chunks; a fixed chunk whose arguments take more
    /// than the worker's task pipe (about 1 MiB: some 130 000 `u64`s) is sent
    /// only once the worker is free, as waiting on the pipe could deadlock.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(2).unwrap();
    /// let squares: Vec<u64> = pool.map(|x: u64| x * x, 1..=4).collect::<Result<_, _>>().unwrap();
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// ```
    pub fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let runner = ProcessChunks::<R>::new(Arc::clone(&self.shared), self.addresses(f));
        Map::new(Box::new(runner), items.into_iter())
    }

    /// The offsets of the trampoline for `A → R` and of `f`, after checking
    /// that `f` lies in this program's own code.
    fn addresses<A, R>(&self, f: fn(A) -> R) -> Result<(u64, u64), Error>
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
    {
        let func = f as usize;
        if !self
            .ranges
            .iter()
            .any(|&(start, end)| (start..end).contains(&func))
        {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "the function at {func:#x} is not in the program's own executable code, \
                     so a worker process cannot find it"
                ),
            });
        }
        let call = entry::trampoline::<A, R> as sys::Trampoline as usize;
        Ok((sys::offset_of(call), sys::offset_of(func)))
    }

    /// Shuts the pool down and waits: no new tasks are accepted, the queued
    /// ones still run, and this returns when every worker has exited and
    /// been reaped.
    ///
    /// Python's `shutdown(wait=True)`. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// let f = pool.submit(u8::count_ones, 3);
    /// pool.shutdown();
    /// assert_eq!(f.result(), Ok(2));
    /// assert_eq!(pool.submit(u8::count_ones, 3).result(), Err(Error::Shutdown));
    /// ```
    #[doc(alias = "shutdown(wait=True)")]
    pub fn shutdown(&self) {
        self.shared.queue.close(false);
        self.shared.wait_for_drivers();
    }

    /// Shuts the pool down, cancels every task that has not started, and
    /// waits for the running ones.
    ///
    /// Python's `shutdown(wait=True, cancel_futures=True)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// let futures: Vec<_> = (0..20u8).map(|i| pool.submit(u8::count_ones, i)).collect();
    /// pool.shutdown_cancel();
    /// assert!(futures.iter().all(|f| f.done()));
    /// ```
    #[doc(alias = "cancel_futures")]
    pub fn shutdown_cancel(&self) {
        self.shared.queue.close(true);
        self.shared.cancel_handed();
        self.shared.wait_for_drivers();
    }

    /// Stops the pool at once: cancels the queued tasks and sends `SIGTERM`
    /// to every worker; the tasks they were running fail with
    /// [`Error::WorkerDied`]. Waits until every worker is reaped.
    ///
    /// Python 3.14's `terminate_workers()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// pool.terminate_workers();
    /// assert!(pool.worker_pids().is_empty());
    /// ```
    pub fn terminate_workers(&self) {
        self.shared.stop_workers(libc::SIGTERM);
        self.shared.wait_for_drivers();
    }

    /// Like [`terminate_workers`](Self::terminate_workers), with `SIGKILL`,
    /// which a worker cannot catch or ignore.
    ///
    /// Python 3.14's `kill_workers()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// pool.kill_workers();
    /// assert!(pool.worker_pids().is_empty());
    /// ```
    pub fn kill_workers(&self) {
        self.shared.stop_workers(libc::SIGKILL);
        self.shared.wait_for_drivers();
    }

    /// Sends `signal` to every worker running now, without waiting or
    /// changing anything else (for `multiprocessing::Process`).
    pub(crate) fn signal_workers(&self, signal: i32) {
        self.shared.signal_workers(signal);
    }

    /// Whether the pool has been shut down (or broke) and takes no more
    /// tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::new(1).unwrap();
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.shared.queue.is_closed()
    }
}

impl Drop for ProcessPoolExecutor {
    /// Shuts down the way [`shutdown`](Self::shutdown) does: queued tasks
    /// run, every worker is reaped.
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gate = self.shared.queue.lock();
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.shared.config.max_workers)
            .field(
                "workers",
                &gate.pool.pids.iter().flatten().collect::<Vec<_>>(),
            )
            .field("shutdown", &gate.is_closed())
            .field("broken", &gate.broken())
            .finish()
    }
}
