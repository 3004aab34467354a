//! The options of a [`ThreadPoolExecutor`].

use std::fmt;
use std::sync::Arc;

use super::worker::Initializer;
use super::ThreadPoolExecutor;
use crate::Error;

/// Options for a [`ThreadPoolExecutor`]: the number of workers, the
/// threads' names, and an initializer.
///
/// # Examples
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder()
///     .max_workers(4)
///     .thread_name_prefix("io")
///     .initializer(|| -> Result<(), String> { Ok(()) })
///     .build()
///     .unwrap();
/// assert_eq!(pool.submit(|| 1).result(), Ok(1));
/// ```
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    thread_name_prefix: Option<String>,
    initializer: Option<Initializer>,
}

impl ThreadPoolBuilder {
    /// A builder with every option at its default.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolBuilder;
    ///
    /// let pool = ThreadPoolBuilder::new().build().unwrap();
    /// assert!(pool.max_workers() >= 5);
    /// ```
    pub fn new() -> Self {
        ThreadPoolBuilder {
            max_workers: None,
            thread_name_prefix: None,
            initializer: None,
        }
    }

    /// The most threads the pool runs at once. The default is Python's,
    /// `min(32, cpus + 4)`: enough to overlap I/O without hoarding memory
    /// on a big machine. `0` asks for the default, as in
    /// [`ThreadPoolExecutor::new`], which says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// The start of each worker thread's name; threads are named
    /// `{prefix}-{n}`. The default prefix is `ThreadPoolExecutor`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().thread_name_prefix("db").build().unwrap();
    /// let name = pool.submit(|| std::thread::current().name().map(str::to_owned));
    /// assert_eq!(name.result().unwrap().as_deref(), Some("db-0"));
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }

    /// A function each worker thread runs once, before its first task.
    ///
    /// If it returns an error or panics, the pool is broken: the tasks
    /// waiting in the queue and every later submission resolve to
    /// [`Error::BrokenPool`] with the reason. Tasks that other workers had
    /// already started finish normally.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::builder()
    ///     .initializer(|| Err("no database"))
    ///     .build()
    ///     .unwrap();
    /// match pool.submit(|| 1).result() {
    ///     Err(Error::BrokenPool { reason }) => assert!(reason.contains("no database")),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn initializer<F, E>(mut self, initializer: F) -> Self
    where
        F: Fn() -> Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.initializer = Some(Arc::new(move || {
            initializer().map_err(|error| error.to_string())
        }));
        self
    }

    /// Builds the pool. No thread starts until the first submission.
    ///
    /// # Errors
    ///
    /// None today: every value of every option is valid (0 workers means
    /// the default). The `Result` lets a later option be refused without
    /// changing the signature, and matches `ProcessPoolBuilder::build`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(3).build().unwrap();
    /// assert_eq!(pool.max_workers(), 3);
    /// ```
    pub fn build(self) -> Result<ThreadPoolExecutor, Error> {
        let max_workers = match self.max_workers {
            Some(0) | None => default_max_workers(),
            Some(n) => n,
        };
        let prefix = self
            .thread_name_prefix
            .unwrap_or_else(|| String::from("ThreadPoolExecutor"));
        Ok(ThreadPoolExecutor::from_parts(
            max_workers,
            prefix,
            self.initializer,
        ))
    }
}

/// Python's default: `min(32, cpus + 4)`.
fn default_max_workers() -> usize {
    (num_cpus::get() + 4).min(32)
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.thread_name_prefix)
            .field("initializer", &self.initializer.is_some())
            .finish()
    }
}
