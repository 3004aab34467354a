//! The options of a [`ProcessPoolExecutor`].

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use super::arena::Arena;
use super::dispatch::{self, Config, Shared, Workers};
use super::spawn::SpawnConfig;
use super::{entry, sys, wire, ProcessPoolExecutor};
use crate::queue::WorkQueue;
use crate::Error;

/// Options for a [`ProcessPoolExecutor`].
///
/// # Examples
///
/// ```
/// use concurrent_futures::ProcessPoolExecutor;
/// use std::time::Duration;
///
/// fn setup() -> Result<(), String> {
///     Ok(())
/// }
///
/// let pool = ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .initializer(setup)
///     .max_tasks_per_child(1000)
///     .task_timeout(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// assert_eq!(pool.submit(|x: u32| x + 1, 1).result(), Ok(2));
/// ```
#[derive(Debug, Clone)]
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    initializer: Option<fn() -> Result<(), String>>,
    max_tasks_per_child: Option<usize>,
    task_timeout: Option<Duration>,
    startup_timeout: Duration,
    max_message_size: u32,
    /// Whether a worker that is gone is replaced (false only for the
    /// one-process pools of `multiprocessing::Process`).
    replace_workers: bool,
    /// Where the drivers' links come from, if not from local processes
    /// (the MPI pool's ranks).
    links: Option<std::sync::Arc<dyn super::dispatch::Connect>>,
}

impl ProcessPoolBuilder {
    /// A builder with every option at its default.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolBuilder;
    ///
    /// let pool = ProcessPoolBuilder::new().max_workers(1).build().unwrap();
    /// assert_eq!(pool.max_workers(), 1);
    /// ```
    pub fn new() -> Self {
        ProcessPoolBuilder {
            max_workers: None,
            initializer: None,
            max_tasks_per_child: None,
            task_timeout: None,
            startup_timeout: Duration::from_secs(30),
            replace_workers: true,
            max_message_size: wire::DEFAULT_MAX_FRAME,
            links: None,
        }
    }

    /// The number of worker processes. The default is Python's: the number
    /// of CPUs. `0` asks for the default, as in
    /// [`ProcessPoolExecutor::new`], which says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// A function each worker runs once, before its first task. If it
    /// returns an error or panics, the pool is broken: queued and later
    /// tasks fail with [`Error::BrokenPool`] saying why.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// fn no_database() -> Result<(), String> {
    ///     Err("no database".into())
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder().initializer(no_database).build().unwrap();
    /// let outcome = pool.submit(|x: u8| x, 1).result();
    /// assert!(matches!(outcome, Err(Error::BrokenPool { reason }) if reason.contains("no database")));
    /// ```
    pub fn initializer(mut self, initializer: fn() -> Result<(), String>) -> Self {
        self.initializer = Some(initializer);
        self
    }

    /// Replaces each worker with a fresh process after it has run this many
    /// tasks (a `map` chunk counts as one), to bound what a leaky task can
    /// accumulate. 0 is refused by [`build`](Self::build).
    ///
    /// It also bounds how long a worker holds on to memory it has freed: a
    /// worker keeps up to 256 MiB of freed memory (with glibc) so that a run
    /// of large arguments reuses warm pages instead of faulting in fresh
    /// ones for each task.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).max_tasks_per_child(1).build().unwrap();
    /// let first = pool.submit(|_: ()| std::process::id(), ()).result().unwrap();
    /// let second = pool.submit(|_: ()| std::process::id(), ()).result().unwrap();
    /// assert_ne!(first, second);
    /// ```
    pub fn max_tasks_per_child(mut self, tasks: usize) -> Self {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// A time limit for each task: each `submit`, and each item of a `map`
    /// (not a whole chunk). A task still running when it passes has its
    /// worker killed and replaced, and fails with [`Error::TaskTimedOut`];
    /// the other items of its chunk are delivered or run elsewhere (see
    /// [`ProcessPoolExecutor::map`]). The parent watches the item's
    /// progress in shared memory, so a task is killed between the limit and
    /// 1.25 times it, never before.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    /// use std::time::Duration;
    ///
    /// let pool = ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .task_timeout(Duration::from_millis(200))
    ///     .build()
    ///     .unwrap();
    /// let stuck = pool.submit(|_: ()| -> u8 { loop { std::thread::park() } }, ());
    /// assert!(matches!(stuck.result(), Err(Error::TaskTimedOut { .. })));
    /// assert_eq!(pool.submit(|x: u8| x, 7).result(), Ok(7));
    /// ```
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// How long a new worker may take to answer the handshake before it is
    /// killed and the pool reports it could not start (30 s by default).
    /// The initializer's run is not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    /// use std::time::Duration;
    ///
    /// let pool = ProcessPoolExecutor::builder().startup_timeout(Duration::from_secs(5)).build();
    /// assert!(pool.is_ok());
    /// ```
    pub fn startup_timeout(mut self, limit: Duration) -> Self {
        self.startup_timeout = limit;
        self
    }

    /// The largest message, in bytes, either side may send (1 GiB by
    /// default): a task's (or a chunk's) encoded arguments, or one encoded
    /// result. Larger ones fail that task (or item) with [`Error::Encode`];
    /// a worker that announces a larger frame is stopped. A chunk's results
    /// are bounded one by one, not together: they travel in shared memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).max_message_size(1024).build().unwrap();
    /// let big = pool.submit(|v: Vec<u8>| v.len(), vec![0u8; 4096]);
    /// assert!(matches!(big.result(), Err(Error::Encode { what: "argument", .. })));
    /// ```
    pub fn max_message_size(mut self, bytes: u32) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// A pool whose workers are never replaced: once its (one) worker is
    /// gone, the pool is done, and what is still queued fails. For
    /// `multiprocessing::Process`, which is exactly one process.
    pub(crate) fn one_shot(mut self) -> Self {
        self.replace_workers = false;
        self
    }

    /// A pool whose drivers take their links from `links` rather than
    /// starting local worker processes.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn links(mut self, links: std::sync::Arc<dyn super::dispatch::Connect>) -> Self {
        self.links = Some(links);
        self
    }

    /// Builds the pool and starts its workers in the background.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0 tasks per child or a message limit
    /// under 1 KiB; [`Error::Spawn`] if the pool's token or its driver
    /// threads cannot be set up.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// let refused = ProcessPoolExecutor::builder().max_tasks_per_child(0).build();
    /// assert!(matches!(refused, Err(Error::InvalidArgument { .. })));
    /// ```
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        let invalid = |reason: &str| Error::InvalidArgument {
            reason: reason.to_owned(),
        };
        let max_workers = match self.max_workers {
            Some(0) | None => num_cpus::get().max(1),
            Some(n) => n,
        };
        let max_tasks_per_child = match self.max_tasks_per_child {
            Some(0) => return Err(invalid("max_tasks_per_child must be at least 1")),
            Some(n) => NonZeroUsize::new(n),
            None => None,
        };
        if self.max_message_size < 1024 {
            return Err(invalid("max_message_size must be at least 1024 bytes"));
        }
        let spawn_error = |reason: String| Error::Spawn { reason };
        let token = sys::random_token()
            .map_err(|e| spawn_error(format!("cannot draw the pool's random token: {e}")))?;
        let exe = entry::exe_identity().map_err(spawn_error)?;
        let ranges = sys::anchor_object_ranges();
        if ranges.is_empty() {
            return Err(spawn_error(String::from(
                "cannot find this program's executable code in memory",
            )));
        }
        let initializer = self
            .initializer
            .map(|init| sys::offset_of(init as sys::InitFn as usize));
        crate::unwind::install_hook();

        let shared = Arc::new(Shared {
            handed: parking_lot::Mutex::new(vec![None; max_workers]),
            idle: std::sync::atomic::AtomicUsize::new(0),
            config: Config {
                max_workers,
                max_tasks_per_child,
                task_timeout: self.task_timeout,
                replace_workers: self.replace_workers,
                spawn: SpawnConfig {
                    token,
                    exe,
                    initializer,
                    max_frame: self.max_message_size,
                    startup_timeout: self.startup_timeout,
                    // Only a pool of local workers maps it: other links
                    // send every argument's bytes. A pool that cannot make
                    // one sends its chunks through the pipes, as others.
                    arena: match self.links {
                        None => Arena::create().ok(),
                        Some(_) => None,
                    },
                },
                links: self.links,
            },
            queue: WorkQueue::new(Workers {
                stopping: false,
                pids: vec![None; max_workers],
            }),
            spares: parking_lot::Mutex::new(Default::default()),
            value_spares: parking_lot::Mutex::new(Default::default()),
            number_spares: parking_lot::Mutex::new(Default::default()),
            per_item: parking_lot::Mutex::new(Default::default()),
        });
        let pool = ProcessPoolExecutor { shared, ranges };
        for slot in 0..max_workers {
            dispatch::start_driver(&pool.shared, slot)
                .map_err(|e| spawn_error(format!("cannot start a driver thread: {e}")))?;
        }
        Ok(pool)
    }
}

impl Default for ProcessPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}
