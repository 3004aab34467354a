//! [`ThreadPoolExecutor`]: run closures on a pool of threads.
//!
//! The facade lives here; the shared state, the queue of tasks and the
//! worker loop are in `worker.rs`, the options in `builder.rs`. A task is
//! its closure riding in its future's own allocation
//! ([`Task`](crate::future::Task), `future/task.rs`): one allocation per
//! submission.

mod builder;
mod worker;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

pub use builder::ThreadPoolBuilder;

use crate::future::Task;
use crate::map::{ChunkOutput, ChunkRunner, Map, Submitted};
use crate::queue::{Queue, Resolve};
use crate::Future;
use worker::{Initializer, Shared, Threads};

/// A pool of threads that runs closures and hands back [`Future`]s.
///
/// The Rust form of Python's `concurrent.futures.ThreadPoolExecutor`: for
/// I/O-bound work, or CPU-bound work that needs no isolation. Threads start
/// lazily, one per submission while none is idle, up to
/// [`max_workers`](ThreadPoolBuilder::max_workers), and idle ones are
/// reused.
///
/// A task that panics resolves its future to [`Error::Panicked`]
/// (with the panic's message and location); the worker thread lives on.
///
/// **Under `panic = "abort"` a task's panic aborts the whole program**
/// (`SIGABRT`): there is no unwinding to catch, so the pool, the caller and
/// every other task go down with it, and no future reports anything. Code
/// that must survive its tasks' panics in such a build runs them on the
/// process pool, where the abort costs the one worker that ran the task
/// ([`Error::WorkerDied`] with `SIGABRT`; Linux).
///
/// Besides its closure-taking [`submit`](Self::submit) and
/// [`map`](Self::map), the pool implements [`Executor`], whose methods take
/// a plain `fn(A) -> R` and an argument, so that code written for any pool
/// runs here too.
///
/// [`Error::WorkerDied`]: crate::Error::WorkerDied
/// [`Executor`]: crate::Executor
///
/// Dropping the pool shuts it down the way [`shutdown`](Self::shutdown)
/// does: queued tasks still run and the drop waits for them (after
/// [`shutdown_background`](Self::shutdown_background), it does not wait).
/// To share a pool (with its own tasks, say, which may submit to it), put
/// it in an [`Arc`].
///
/// [`Error::Panicked`]: crate::Error::Panicked
///
/// # Examples
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(4);
/// let futures: Vec<_> = (1..=3).map(|i| pool.submit(move || i * 10)).collect();
/// let results: Vec<i32> = futures.into_iter().map(|f| f.result().unwrap()).collect();
/// assert_eq!(results, [10, 20, 30]);
/// ```
///
/// A task may submit to the pool it runs on:
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
/// use std::sync::Arc;
///
/// let pool = Arc::new(ThreadPoolExecutor::new(2));
/// let inner = Arc::clone(&pool);
/// let outer = pool.submit(move || inner.submit(|| 1 + 1));
/// assert_eq!(outer.result().unwrap().result(), Ok(2));
/// ```
///
/// The closure must be `Send + 'static`; one that borrows from the stack or
/// holds something that cannot cross threads is refused at compile time:
///
/// ```compile_fail
/// use concurrent_futures::ThreadPoolExecutor;
/// let pool = ThreadPoolExecutor::new(1);
/// let shared = std::rc::Rc::new(5);
/// let f = pool.submit(move || *shared); // Rc is not Send
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<Shared>,
}

impl ThreadPoolExecutor {
    /// A pool of at most `max_workers` threads, with the other options at
    /// their defaults (see [`builder`](Self::builder)).
    ///
    /// `0` means the default number, Python's `max_workers=None`:
    /// `min(32, cpus + 4)`. Python refuses 0 with a `ValueError`, but here
    /// the count is a plain `usize` with no `None` to spell "the default",
    /// and this returns the pool itself, not a `Result`, so refusing 0
    /// could only panic. `ProcessPoolExecutor::new` and both builders read
    /// 0 the same way (as rayon's `num_threads(0)` does).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(8);
    /// assert_eq!(pool.max_workers(), 8);
    /// let default = ThreadPoolExecutor::new(0);
    /// assert_eq!(default.max_workers(), ThreadPoolExecutor::default().max_workers());
    /// ```
    pub fn new(max_workers: usize) -> Self {
        ThreadPoolBuilder::new()
            .max_workers(max_workers)
            .build()
            .unwrap_or_else(|error| unreachable!("a valid builder failed: {error}"))
    }

    /// The builder for a pool with options: the number of workers, the
    /// threads' names, an initializer.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .thread_name_prefix("fetcher")
    ///     .build()
    ///     .unwrap();
    /// let name = pool.submit(|| std::thread::current().name().unwrap().to_owned());
    /// assert!(name.result().unwrap().starts_with("fetcher"));
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    pub(crate) fn from_parts(
        max_workers: usize,
        thread_name_prefix: String,
        initializer: Option<Initializer>,
    ) -> Self {
        crate::unwind::install_hook();
        let shared = Arc::new(Shared {
            max_workers,
            thread_name_prefix,
            initializer,
            queue: Queue::new(Threads::default()),
            work: Condvar::new(),
            outbox: worker::OwnLine(Mutex::new(VecDeque::new())),
            queued: worker::OwnLine(AtomicUsize::new(0)),
            outboxed: worker::OwnLine(AtomicUsize::new(0)),
            idle: AtomicUsize::new(0),
        });
        ThreadPoolExecutor { shared }
    }

    /// The most threads this pool runs at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// assert_eq!(ThreadPoolExecutor::new(3).max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Runs `f` on a worker thread and returns the [`Future`] of its result.
    ///
    /// After [`shutdown`](Self::shutdown) the task is refused: the future is
    /// done at once with [`Error::Shutdown`] (or [`Error::BrokenPool`] if
    /// the pool broke).
    ///
    /// [`Error::Shutdown`]: crate::Error::Shutdown
    /// [`Error::BrokenPool`]: crate::Error::BrokenPool
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(2);
    /// let f = pool.submit(|| "hello world!".to_uppercase());
    /// assert_eq!(f.result().unwrap(), "HELLO WORLD!");
    /// ```
    pub fn submit<F, R>(&self, f: F) -> Future<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (task, future) = Task::new(f);
        if let Err((task, error)) = self.shared.submit(task) {
            task.resolve(error);
        }
        future
    }

    /// Applies `f` to every item, on the pool, and yields the results in
    /// input order.
    ///
    /// The returned [`Map`] is lazy and bounded: it takes items from `items`
    /// only as it needs them and keeps a window of chunks in flight, so it
    /// works in constant memory over any input, even an endless one. Each
    /// item's result stands on its own: a panic fails that item only.
    /// Chunks are sized automatically from the measured time per item;
    /// [`Map::chunksize`] fixes the size, [`Map::window`] the number in
    /// flight. Dropping the iterator cancels the chunks not yet started.
    ///
    /// The thread that iterates helps: when the next chunk it needs has not
    /// been started by any worker, it runs that chunk itself instead of
    /// waiting (as a rayon caller does). `f` may therefore run on the
    /// calling thread. It never does in a pool with an
    /// [initializer](ThreadPoolBuilder::initializer), whose threads may hold
    /// state the tasks rely on, nor under [`Map::timeout`], which the
    /// consumer must stay free to watch; [`submit`](Self::submit) always
    /// runs on the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(4);
    /// let lengths: Vec<usize> = pool
    ///     .map(|s: &str| s.len(), ["a", "bb", "ccc"])
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// assert_eq!(lengths, [1, 2, 3]);
    /// ```
    pub fn map<F, I, R>(&self, f: F, items: I) -> Map<I::IntoIter, R>
    where
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        R: Send + 'static,
    {
        let runner = ThreadChunks {
            shared: Arc::clone(&self.shared),
            f: Arc::new(f),
        };
        Map::new(Box::new(runner), items.into_iter())
    }

    /// Shuts the pool down and waits: no new tasks are accepted, the queued
    /// ones still run, and this returns when every worker has finished.
    ///
    /// Python's `shutdown(wait=True)`. Calling it again, or from several
    /// threads, is harmless. Called from one of the pool's own tasks, it
    /// waits for every other worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(2);
    /// let f = pool.submit(|| 1);
    /// pool.shutdown();
    /// assert_eq!(f.result(), Ok(1));
    /// assert_eq!(pool.submit(|| 2).result(), Err(Error::Shutdown));
    /// ```
    #[doc(alias = "shutdown(wait=True)")]
    pub fn shutdown(&self) {
        self.shared.close(false);
        self.shared.wait_for_workers();
    }

    /// Shuts the pool down, cancels every task that has not started, and
    /// waits for the running ones.
    ///
    /// Python's `shutdown(wait=True, cancel_futures=True)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let (started_tx, started) = mpsc::channel();
    /// let running = pool.submit(move || started_tx.send(()).unwrap());
    /// started.recv().unwrap();
    /// let queued: Vec<_> = (0..10).map(|_| pool.submit(|| ())).collect();
    /// pool.shutdown_cancel();
    /// assert_eq!(running.result(), Ok(()));
    /// // Some may have started before the cancel; the rest are cancelled.
    /// assert!(queued.iter().all(|f| f.done()));
    /// ```
    #[doc(alias = "cancel_futures")]
    pub fn shutdown_cancel(&self) {
        self.shared.close(true);
        self.shared.wait_for_workers();
    }

    /// Shuts the pool down without waiting: no new tasks are accepted, the
    /// queued ones still run on the workers, which exit when the queue is
    /// empty.
    ///
    /// Python's `shutdown(wait=False)`. The threads are detached from then
    /// on: dropping the pool later does not wait for them either (an
    /// explicit [`shutdown`](Self::shutdown) still does). A task that never
    /// returns keeps its thread, and the tasks queued behind it, for the
    /// life of the process; like any Rust thread it does not keep the
    /// process alive, so when `main` returns the process exits with it
    /// still running (Python, unlike Rust, joins such threads at exit).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 7);
    /// pool.shutdown_background();
    /// assert_eq!(f.result(), Ok(7));
    /// ```
    #[doc(alias = "shutdown(wait=False)")]
    pub fn shutdown_background(&self) {
        self.shared.queue.lock().pool.detached = true;
        self.shared.close(false);
    }

    /// Whether the pool has been shut down (or broke) and takes no more
    /// tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.shared.queue.is_closed()
    }
}

impl Default for ThreadPoolExecutor {
    /// A pool with Python's default number of workers,
    /// `min(32, cpus + 4)`.
    fn default() -> Self {
        ThreadPoolBuilder::new()
            .build()
            .unwrap_or_else(|error| unreachable!("the default builder failed: {error}"))
    }
}

impl Drop for ThreadPoolExecutor {
    /// Shuts down the way [`shutdown`](Self::shutdown) does, or, after
    /// [`shutdown_background`](Self::shutdown_background), returns at once
    /// and leaves the threads to finish on their own. It never panics, also
    /// when dropped during a panic.
    fn drop(&mut self) {
        // Nobody else can call `shutdown_background` now: this is the last
        // handle.
        if self.shared.queue.lock().pool.detached {
            return;
        }
        self.shutdown();
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gate = self.shared.queue.lock();
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.shared.max_workers)
            .field("threads", &gate.live)
            .field("shutdown", &gate.is_closed())
            .field("broken", &gate.broken())
            .finish()
    }
}

/// How a thread-pool [`Map`] runs a chunk: one job that applies `f` to each
/// item, each item's panic caught on its own ([`ChunkOutput::run`]).
struct ThreadChunks<F> {
    shared: Arc<Shared>,
    f: Arc<F>,
}

impl<F, T, R> ChunkRunner<T, R> for ThreadChunks<F>
where
    F: Fn(T) -> R + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    fn run_chunk(&self, items: &mut Vec<T>) -> Submitted<R> {
        // The items go to whichever runs the chunk: a worker, or the
        // consumer after cancelling the job (see `Map`), never both.
        let items = Arc::new(Mutex::new(Some(std::mem::take(items))));
        let (task, future) = Task::new({
            let (f, items) = (Arc::clone(&self.f), Arc::clone(&items));
            move || ChunkOutput::run(items.lock().take().unwrap_or_default(), |item| f(item))
        });
        if let Err((task, error)) = self.shared.submit(task) {
            task.resolve(error);
        }
        // A pool with an initializer may have prepared its threads for the
        // tasks (thread-local state); its chunks run on its threads only.
        let inline = self.shared.initializer.is_none().then(|| {
            let f = Arc::clone(&self.f);
            Box::new(move || {
                ChunkOutput::run(items.lock().take().unwrap_or_default(), |item| f(item))
            }) as Box<dyn FnOnce() -> ChunkOutput<R> + Send>
        });
        Submitted { future, inline }
    }

    fn target_chunk_time(&self) -> Duration {
        // Handing a chunk over costs a wake-up and, with as many busy
        // threads as CPUs, a context switch for the consumer: measured on
        // the primes seed on 2 CPUs, 200 µs chunks reached 1.66-1.75x,
        // 1 ms chunks 1.85-1.9x, a bare `std::thread::scope` 1.9-2.0x.
        // The end of an input of known length gets smaller chunks (see
        // `Map`), so longer chunks do not leave a worker idle at the end.
        Duration::from_millis(1)
    }

    fn default_window(&self) -> usize {
        2 * self.shared.max_workers
    }
}
