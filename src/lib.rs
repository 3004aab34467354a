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
//!     concurrent_futures::init(); // first line of main, for the process pool
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
//! again. [`init`] must be the first line of `main` so that such a worker
//! never runs the rest of the application's `main`; in a program that uses
//! only threads it does nothing, and calling it costs nothing.

// The docs show `fn main` on purpose: `init()` must be its first line.
#![allow(clippy::needless_doctest_main)]

mod error;
mod future;
#[cfg(all(feature = "fuzzing", target_os = "linux"))]
#[doc(hidden)]
pub mod fuzzing;
mod map;
#[cfg(target_os = "linux")]
pub mod multiprocessing;
#[cfg(target_os = "linux")]
mod process_pool;
mod queue;
mod thread_pool;
mod unwind;
mod wait;

pub use error::Error;
pub use future::Future;
pub use map::{Chunksize, Map};
#[cfg(target_os = "linux")]
pub use process_pool::{ProcessPoolBuilder, ProcessPoolExecutor};
pub use thread_pool::{ThreadPoolBuilder, ThreadPoolExecutor};
pub use wait::{
    as_completed, as_completed_timeout, wait, AsCompleted, AsCompletedTimeout, DoneAndNotDone,
    ReturnWhen,
};

/// Call first in `main`: turns a process that the process pool started as
/// its worker into that worker, which serves tasks and exits without ever
/// returning into `main`. In the application's own process it returns at
/// once.
///
/// This is the Rust form of Python's `if __name__ == "__main__":` guard.
///
/// # Examples
///
/// ```
/// fn main() {
///     concurrent_futures::init();
///     // … the application …
/// }
/// ```
pub fn init() {
    #[cfg(target_os = "linux")]
    process_pool::entry::run_if_worker();
}

/// The README's code blocks, compiled and run as doctests so that the quick
/// start there cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
