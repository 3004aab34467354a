//! Python's `concurrent.futures` for Rust: a [`ThreadPoolExecutor`] and a
//! `ProcessPoolExecutor` (Linux) with `submit`, `map`, [`as_completed`] and
//! [`wait`] over one shared [`Future`] type — with the defects Python's pools have carried for
//! years fixed.
//!
//! # Quick start
//!
//! ```
//! use concurrent_futures::{as_completed, ThreadPoolExecutor};
//!
//! fn main() -> Result<(), concurrent_futures::Error> {
//!     concurrent_futures::init(); // the process pool's guard; see `init`
//!
//!     let pool = ThreadPoolExecutor::new(4);
//!
//!     // One task, one future.
//!     let f = pool.submit(|| 6 * 7);
//!     assert_eq!(f.result()?, 42);
//!
//!     // Many items, results in input order (lazy, bounded, chunked).
//!     let squares: Vec<u64> = pool.map(|x| x * x, 0..1000u64).collect::<Result<_, _>>()?;
//!     assert_eq!(squares[999], 998_001);
//!
//!     // Results in completion order.
//!     let futures: Vec<_> = (0..4).map(|i| pool.submit(move || i)).collect();
//!     let mut total = 0;
//!     for f in as_completed(futures) {
//!         total += f.result()?;
//!     }
//!     assert_eq!(total, 6);
//!     Ok(())
//! }
//! ```
//!
//! # Python ↔ Rust
//!
//! | Python `concurrent.futures` | `concurrent_futures` |
//! |---|---|
//! | `Executor`, the base class: code that takes any pool | [`Executor`], a trait implemented by every pool: `submit(fn, arg)`, `map(fn, items)`, `shutdown`, `max_workers` |
//! | `ThreadPoolExecutor(max_workers)` | [`ThreadPoolExecutor::new`], [`ThreadPoolExecutor::builder`] |
//! | `ProcessPoolExecutor(max_workers, initializer, max_tasks_per_child)` | `ProcessPoolExecutor::new`, `ProcessPoolExecutor::builder` (Linux) |
//! | `process_executor.submit(fn, arg)` | `ProcessPoolExecutor::submit(fn, arg)`: a plain `fn(A) -> R`, several arguments as a tuple |
//! | `terminate_workers()`, `kill_workers()` | `ProcessPoolExecutor::terminate_workers`, `ProcessPoolExecutor::kill_workers` |
//! | `thread_name_prefix=`, `initializer=` | [`ThreadPoolBuilder::thread_name_prefix`], [`ThreadPoolBuilder::initializer`] |
//! | `executor.submit(fn, *args)` | [`ThreadPoolExecutor::submit`]`(move \|\| fn(args))` |
//! | `executor.map(fn, items, timeout=, chunksize=, buffersize=)` | [`ThreadPoolExecutor::map`]`(fn, items)` then [`Map::timeout`], [`Map::chunksize`], [`Map::window`] |
//! | `executor.shutdown(wait=True)` / `with executor:` | [`ThreadPoolExecutor::shutdown`] / dropping the pool |
//! | `shutdown(cancel_futures=True)` | [`ThreadPoolExecutor::shutdown_cancel`] |
//! | `shutdown(wait=False)` | [`ThreadPoolExecutor::shutdown_background`] |
//! | `future.result()` / `result(timeout)` | [`Future::result`] / [`Future::result_timeout`] |
//! | `future.result()` again, from anywhere (a callback, another thread) | [`Future::result_cloned`], [`Future::try_result_cloned`] (for `T: Clone`; `result` moves the value out) |
//! | `future.exception()` | [`Future::exception`] |
//! | `future.done()`, `running()`, `cancelled()`, `cancel()` | the same names on [`Future`] |
//! | `future.add_done_callback(fn)` | [`Future::add_done_callback`] |
//! | `await asyncio.wrap_future(future)` | `future.await` |
//! | `wait(fs, timeout, return_when)` | [`wait`]`(fs, ReturnWhen::…, timeout)` |
//! | `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED` | [`ReturnWhen`] |
//! | `as_completed(fs)` / `as_completed(fs, timeout)` | [`as_completed`] / [`as_completed_timeout`] |
//! | `CancelledError`, `TimeoutError`, `BrokenExecutor` | [`Error::Cancelled`], [`Error::Timeout`], [`Error::BrokenPool`] |
//!
//! # What is fixed compared with Python
//!
//! * `map` is lazy and bounded: it never submits the whole input up front,
//!   so it runs over endless iterators in constant memory, and dropping it
//!   cancels what has not started.
//! * A cancelled future is done for every waiter at once: [`wait`] and
//!   [`as_completed`] cannot hang on it.
//! * [`Future::running`] is true only while a worker runs the task; a task
//!   that waits in the queue can always be cancelled.
//! * [`as_completed_timeout`]'s deadline starts at the call.
//! * A panic keeps its message and location in [`Error::Panicked`].
//!
//! # `init()` and the process pool
//!
//! The process pool runs its workers by starting the program's own binary
//! again, and a worker must serve tasks without running the application's
//! `main`. On Linux (the one platform with a process pool today) the crate
//! sees to that before `main` starts, so a program works the same whether
//! it calls [`init`] first, late or never; so do test binaries, benches and
//! doctests, which have no `main` of their own. [`init`] is the portable
//! form of the guard, Python's `if __name__ == "__main__":`: its docs say
//! exactly when it matters, and show the form for `#[tokio::main]`.
//!
//! # Code that takes any pool
//!
//! [`Executor`] is Python's `Executor` base class: a function over
//! `&impl Executor` runs plain `fn(A) -> R` tasks on whichever pool its
//! caller hands it, threads or processes.

// The docs show `fn main` on purpose: `init()` belongs at its top.
#![allow(clippy::needless_doctest_main)]

mod error;
mod executor;
mod future;
#[cfg(all(feature = "fuzzing", target_os = "linux"))]
#[doc(hidden)]
pub mod fuzzing;
mod map;
#[cfg(all(feature = "mpi", target_os = "linux"))]
pub mod mpi;
#[cfg(target_os = "linux")]
pub mod multiprocessing;
#[cfg(target_os = "linux")]
mod process_pool;
mod queue;
#[cfg(target_os = "linux")]
mod serde_message;
mod thread_pool;
mod unwind;
mod wait;

pub use error::Error;
pub use executor::Executor;
pub use future::Future;
pub use map::{Chunksize, Map};
#[cfg(target_os = "linux")]
pub use process_pool::{ProcessPoolBuilder, ProcessPoolExecutor};
pub use thread_pool::{ThreadPoolBuilder, ThreadPoolExecutor};
pub use wait::{
    as_completed, as_completed_timeout, wait, AsCompleted, AsCompletedTimeout, DoneAndNotDone,
    ReturnWhen,
};

/// Turns a process that the process pool started as its worker into that
/// worker, which serves tasks and exits without ever returning; in the
/// application's own process it returns at once (it reads one environment
/// variable). The Rust form of Python's `if __name__ == "__main__":` guard.
///
/// # When it is needed
///
/// * **On Linux: never, for correctness.** A constructor of this crate runs
///   before `main` (an `.init_array` entry) and catches every worker there.
///   A program that leaves `init()` out, calls it late, or cannot call it
///   first (under `#[tokio::main]`, whose runtime starts before the body)
///   behaves exactly the same: no worker ever enters `main`.
/// * **On other platforms: later.** There is no process pool on them today,
///   and `init()` does nothing there. A port to a platform without such a
///   constructor will rely on `init()` instead, and there it must come
///   before anything in `main` that should not run in every worker.
///   Calling it first now keeps a program right for that day, and shows
///   the reader where workers leave.
/// * **Programs that do work in static constructors** (their own
///   `.init_array` entries, `#[ctor]` functions, a C library's
///   initialisers): those run in every worker too, before this crate's
///   constructor or after it (the order is the linker's), just as a Python
///   module's top-level code runs in every spawned worker. Nothing can stop
///   that from `main`, `init()` included; keep work that must happen once
///   per program out of static constructors.
/// * **`panic = "abort"`** changes nothing here; it changes what a task's
///   panic costs: its worker (reported as
///   [`Error::WorkerDied`] with `SIGABRT`) on the
///   process pool, the whole program on the [`ThreadPoolExecutor`] (see
///   its docs).
///
/// Without `init()`, then, on Linux: nothing different, now or later in
/// `main`; elsewhere: nothing, as there is no process pool to start
/// workers.
///
/// # Examples
///
/// ```
/// fn main() {
///     concurrent_futures::init();
///     // … the application …
/// }
/// ```
///
/// Under `#[tokio::main]` the runtime is built before the first line of
/// the body; that is fine on Linux, where no worker gets that far:
///
/// ```ignore
/// #[tokio::main]
/// async fn main() {
///     concurrent_futures::init(); // as early as it can be: the runtime exists already
///     let pool = concurrent_futures::ProcessPoolExecutor::new(4).unwrap();
///     let n = pool.submit(u64::count_ones, 255).await.unwrap();
///     assert_eq!(n, 8);
/// }
/// ```
///
/// Where `init()` must truly come first (a future platform without the
/// constructor), build the runtime by hand after it:
///
/// ```ignore
/// fn main() {
///     concurrent_futures::init();
///     tokio::runtime::Runtime::new().expect("a tokio runtime").block_on(async {
///         // … the application …
///     });
/// }
/// ```
pub fn init() {
    #[cfg(target_os = "linux")]
    process_pool::entry::run_if_worker();
    #[cfg(all(feature = "mpi", target_os = "linux"))]
    mpi::run_if_rank();
}

/// The README's code blocks, compiled and run as doctests so that the quick
/// start there cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
