//! [`Executor`]: what every pool can do, for code that takes "a pool" and
//! does not care which (Python's `concurrent.futures.Executor`).
//!
//! The trait holds the process-style operations, the ones every pool can
//! offer: a plain `fn(A) -> R` with a value that can travel
//! (`Serialize + DeserializeOwned + Send + 'static`), because a process
//! pool (and the MPI pool) can run nothing else. The thread pool runs such
//! a function too, on a thread, and keeps its closure-taking
//! [`ThreadPoolExecutor::submit`] and [`ThreadPoolExecutor::map`] as
//! inherent methods, which a concrete `pool.submit(…)` call still finds
//! first.
//!
//! Both pools' `map` return the same type, [`Map<I::IntoIter, R>`](Map),
//! so the trait names it directly and generic code iterates
//! `Result<R, Error>` with every [`Map`] option at hand.
//!
//! The impls live here, beside the trait, as thin calls into each pool's
//! own methods: the pools' files need not know about the trait.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Future, Map, ThreadPoolExecutor};

mod sealed {
    /// Keeps [`Executor`](super::Executor) to this crate's pools, so that
    /// methods can be added to it without breaking anyone: a pool's `map`
    /// builds a [`Map`](crate::Map), which only this crate can do.
    // Public in a private module: the standard seal, reachable by no one.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

/// A pool that runs plain functions and hands back [`Future`]s: Python's
/// `concurrent.futures.Executor`, the base of every pool.
///
/// Write a function over `&impl Executor` (or `E: Executor`) and it runs on
/// a [`ThreadPoolExecutor`], a `ProcessPoolExecutor` (Linux) or the MPI
/// pool, as the caller decides. The operations are the ones every pool can
/// offer: a task is a plain `fn(A) -> R` (a function item, or a closure that
/// captures nothing) whose argument and result can travel to another
/// process, `A, R: Serialize + DeserializeOwned + Send + 'static`; several
/// arguments travel as a tuple.
///
/// The trait is implemented by this crate's pools and sealed (a pool's
/// `map` builds a [`Map`], which only this crate can make). It has generic
/// methods, so it is used through generics, not as `dyn Executor`.
///
/// # Examples
///
/// One function counts the primes below a limit (the seed's trial
/// division), on whichever pool it is given:
///
/// ```
/// use concurrent_futures::{Error, Executor, ThreadPoolExecutor};
///
/// fn is_prime(n: u64) -> bool {
///     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
/// }
///
/// /// Counts the primes below `limit` on `pool`, whatever kind it is.
/// fn count_primes(pool: &impl Executor, limit: u64) -> Result<usize, Error> {
///     let mut count = 0;
///     for prime in pool.map(is_prime, 0..limit) {
///         count += usize::from(prime?);
///     }
///     Ok(count)
/// }
///
/// fn main() -> Result<(), Error> {
///     concurrent_futures::init();
///
///     let threads = ThreadPoolExecutor::new(4);
///     assert_eq!(count_primes(&threads, 100_000)?, 9592);
///
///     #[cfg(target_os = "linux")]
///     {
///         let processes = concurrent_futures::ProcessPoolExecutor::new(2)?;
///         assert_eq!(count_primes(&processes, 100_000)?, 9592);
///     }
///     Ok(())
/// }
/// ```
///
/// A capturing closure is refused, as by the process pool itself, whichever
/// pool the generic code is given:
///
/// ```compile_fail
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// fn run(pool: &impl Executor, offset: u64) -> u64 {
///     pool.submit(move |x: u64| x + offset, 1).result().unwrap() // captures `offset`
/// }
/// run(&ThreadPoolExecutor::new(1), 10);
/// ```
///
/// And so is a value that cannot travel to another process:
///
/// ```compile_fail
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// fn run(pool: &impl Executor) {
///     let _ = pool.submit(|x: std::time::Instant| x, std::time::Instant::now());
/// }
/// run(&ThreadPoolExecutor::new(1));
/// ```
#[doc(alias = "concurrent.futures.Executor")]
pub trait Executor: sealed::Sealed {
    /// Runs `f(arg)` on the pool and returns the [`Future`] of its result.
    ///
    /// As the pools' own `submit`: after [`shutdown`](Executor::shutdown)
    /// the future fails at once with [`Error::Shutdown`](crate::Error::Shutdown);
    /// a process pool also fails it at once if `arg` cannot be encoded.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn add((a, b): (u32, u32)) -> u32 {
    ///     a + b
    /// }
    ///
    /// fn sum_on(pool: &impl Executor) -> u32 {
    ///     pool.submit(add, (2, 3)).result().unwrap()
    /// }
    ///
    /// assert_eq!(sum_on(&ThreadPoolExecutor::new(1)), 5);
    /// ```
    fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static;

    /// Applies `f` to every item on the pool and yields the results in input
    /// order: lazy, bounded and chunked, each item's result on its own (see
    /// [`Map`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn lengths(pool: &impl Executor, words: Vec<String>) -> Vec<usize> {
    ///     pool.map(|w: String| w.len(), words).map(Result::unwrap).collect()
    /// }
    ///
    /// let words = vec![String::from("a"), String::from("bcd")];
    /// assert_eq!(lengths(&ThreadPoolExecutor::new(2), words), [1, 3]);
    /// ```
    fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>;

    /// Shuts the pool down and waits: no new tasks are accepted, the queued
    /// ones still run, and this returns when every worker has finished.
    /// Python's `shutdown(wait=True)`; idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, Executor, ThreadPoolExecutor};
    ///
    /// fn last_task(pool: &impl Executor) -> Result<u8, Error> {
    ///     let f = pool.submit(|x: u8| x + 1, 1);
    ///     pool.shutdown();
    ///     assert_eq!(pool.submit(|x: u8| x, 0).result(), Err(Error::Shutdown));
    ///     f.result()
    /// }
    ///
    /// assert_eq!(last_task(&ThreadPoolExecutor::new(1)), Ok(2));
    /// ```
    #[doc(alias = "shutdown(wait=True)")]
    fn shutdown(&self);

    /// The most tasks the pool runs at once: its threads, processes or
    /// worker ranks.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn width(pool: &impl Executor) -> usize {
    ///     pool.max_workers()
    /// }
    ///
    /// assert_eq!(width(&ThreadPoolExecutor::new(3)), 3);
    /// ```
    fn max_workers(&self) -> usize;
}

impl sealed::Sealed for ThreadPoolExecutor {}

/// Runs the function on a thread: nothing is encoded, the values move.
impl Executor for ThreadPoolExecutor {
    fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        ThreadPoolExecutor::submit(self, move || f(arg))
    }

    fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        ThreadPoolExecutor::map(self, f, items)
    }

    fn shutdown(&self) {
        ThreadPoolExecutor::shutdown(self);
    }

    fn max_workers(&self) -> usize {
        ThreadPoolExecutor::max_workers(self)
    }
}

#[cfg(target_os = "linux")]
mod process {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{sealed, Executor};
    use crate::{Future, Map, ProcessPoolExecutor};

    impl sealed::Sealed for ProcessPoolExecutor {}

    /// Runs the function in a worker process, its values encoded.
    impl Executor for ProcessPoolExecutor {
        fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
        where
            A: Serialize + DeserializeOwned + Send + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
        {
            ProcessPoolExecutor::submit(self, f, arg)
        }

        fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<I::IntoIter, R>
        where
            A: Serialize + DeserializeOwned + Send + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
            I: IntoIterator<Item = A>,
        {
            ProcessPoolExecutor::map(self, f, items)
        }

        fn shutdown(&self) {
            ProcessPoolExecutor::shutdown(self);
        }

        fn max_workers(&self) -> usize {
            ProcessPoolExecutor::max_workers(self)
        }
    }
}

#[cfg(all(feature = "mpi", target_os = "linux"))]
mod mpi {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{sealed, Executor};
    use crate::mpi::MpiPoolExecutor;
    use crate::{Future, Map};

    impl sealed::Sealed for MpiPoolExecutor {}

    /// Runs the function on a worker rank, its values encoded.
    impl Executor for MpiPoolExecutor {
        fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
        where
            A: Serialize + DeserializeOwned + Send + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
        {
            MpiPoolExecutor::submit(self, f, arg)
        }

        fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<I::IntoIter, R>
        where
            A: Serialize + DeserializeOwned + Send + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
            I: IntoIterator<Item = A>,
        {
            MpiPoolExecutor::map(self, f, items)
        }

        fn shutdown(&self) {
            MpiPoolExecutor::shutdown(self);
        }

        fn max_workers(&self) -> usize {
            MpiPoolExecutor::max_workers(self)
        }
    }
}
