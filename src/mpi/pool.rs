//! [`MpiPoolExecutor`] and its builder: a `ProcessPoolExecutor` on rank 0
//! whose drivers feed the lanes of the worker ranks.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::link::{Lanes, MpiLink};
use super::protocol::{Hello, Mode};
use super::transport::{Command, Peer};
use super::{Root, Started, STOP_TIMEOUT};
use crate::process_pool::sys;
use crate::process_pool::wire::DEFAULT_MAX_FRAME;
use crate::{Error, Future, Map, ProcessPoolExecutor};

/// A pool whose workers are the other ranks of an MPI job: rank 0 submits,
/// every other rank of `MPI_COMM_WORLD` runs tasks (feature `mpi`).
///
/// Tasks are plain `fn(A) -> R` with serde arguments and results, as on
/// [`ProcessPoolExecutor`]; the futures, [`map`](Self::map)'s
/// [`Map`] (chunksize, timeout, window), [`wait`](crate::wait) and
/// [`as_completed`](crate::as_completed) are the same. See the
/// [module docs](crate::mpi) for how to launch it and what a fault costs.
///
/// # Examples
///
/// ```no_run
/// use concurrent_futures::mpi::MpiPoolExecutor;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::init();
///     let pool = MpiPoolExecutor::new()?; // run as `mpirun -n 3 ./app`
///     assert_eq!(pool.submit(square, 7).result()?, 49);
///     Ok(())
/// }
/// ```
pub struct MpiPoolExecutor {
    pool: ProcessPoolExecutor,
    root: &'static Root,
    ranks: usize,
}

impl fmt::Debug for MpiPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolExecutor")
            .field("worker_ranks", &self.ranks)
            .field("max_workers", &self.pool.max_workers())
            .finish_non_exhaustive()
    }
}

impl MpiPoolExecutor {
    /// The pool of every worker rank, each with a local process pool of its
    /// share of its node's CPUs (see [`builder`](Self::builder)).
    ///
    /// On a worker rank this never returns (the rank serves, then exits),
    /// so a program that forgot [`init`](crate::init) still works.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if the program was not started by an MPI launcher
    /// (the message says how to start it), if MPI fails, if there is no
    /// other rank, or if a rank refused (another build, say);
    /// [`Error::InvalidArgument`] for a second pool in one run.
    ///
    /// # Examples
    ///
    /// Without a launcher there are no worker ranks, and it says so:
    ///
    /// ```
    /// use concurrent_futures::{mpi::MpiPoolExecutor, Error};
    ///
    /// match MpiPoolExecutor::new() {
    ///     Err(Error::Spawn { reason }) => assert!(reason.contains("mpirun")),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The builder: direct execution, local workers per rank, initializer,
    /// `max_tasks_per_child`, time limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::mpi::MpiPoolExecutor;
    ///
    /// let builder = MpiPoolExecutor::builder().workers_per_rank(4);
    /// # let _ = builder;
    /// ```
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder::new()
    }

    /// How many tasks run at once: the lanes of every worker rank (its
    /// local workers, or 1 per rank in direct mode).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// assert!(pool.max_workers() >= pool.worker_ranks());
    /// ```
    pub fn max_workers(&self) -> usize {
        self.pool.max_workers()
    }

    /// How many ranks serve the pool (every rank but 0).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// println!("{} worker ranks", pool.worker_ranks());
    /// ```
    pub fn worker_ranks(&self) -> usize {
        self.ranks
    }

    /// Runs `f(arg)` on a worker rank, as
    /// [`ProcessPoolExecutor::submit`] does on a local worker.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// assert_eq!(pool.submit(u64::count_ones, 255).result(), Ok(8));
    /// ```
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.pool.submit(f, arg)
    }

    /// Runs `f` on every item, lazily, in chunks, results in input order,
    /// as [`ProcessPoolExecutor::map`] does.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// let ones: u32 = pool.map(u64::count_ones, 0..1000u64).map(|r| r.unwrap()).sum();
    /// assert_eq!(ones, (0..1000u64).map(u64::count_ones).sum());
    /// ```
    pub fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.pool.map(f, items)
    }

    /// Waits for every submitted task, then stops the worker ranks (they
    /// finalise MPI and exit 0). Later submissions fail with
    /// [`Error::Shutdown`]. Dropping the pool does the same.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// pool.shutdown();
    /// assert!(pool.submit(u8::count_ones, 1).result().is_err());
    /// ```
    pub fn shutdown(&self) {
        self.pool.shutdown();
        self.stop_ranks();
    }

    /// Cancels every task that has not started, waits for the running ones,
    /// then stops the worker ranks.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// pool.shutdown_cancel();
    /// ```
    pub fn shutdown_cancel(&self) {
        self.pool.shutdown_cancel();
        self.stop_ranks();
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = concurrent_futures::mpi::MpiPoolExecutor::new().unwrap();
    /// assert!(!pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.pool.is_shutdown()
    }

    fn stop_ranks(&self) {
        if let Err(why) = self.root.stop(STOP_TIMEOUT) {
            eprintln!("concurrent-futures: could not stop the MPI worker ranks: {why}");
        }
    }
}

impl Drop for MpiPoolExecutor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Options for an [`MpiPoolExecutor`].
///
/// # Examples
///
/// ```no_run
/// use concurrent_futures::mpi::MpiPoolExecutor;
/// use std::time::Duration;
///
/// let pool = MpiPoolExecutor::builder()
///     .workers_per_rank(8)
///     .task_timeout(Duration::from_secs(60))
///     .build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MpiPoolBuilder {
    direct: bool,
    workers_per_rank: usize,
    initializer: Option<fn() -> Result<(), String>>,
    max_tasks_per_child: Option<usize>,
    task_timeout: Option<Duration>,
    max_message_size: u32,
    startup_timeout: Duration,
    spawn: Option<usize>,
}

impl MpiPoolBuilder {
    /// The defaults: a local pool on each rank of its share of the node's
    /// CPUs, no initializer, no limits.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = concurrent_futures::mpi::MpiPoolBuilder::new();
    /// # let _ = builder;
    /// ```
    pub fn new() -> Self {
        MpiPoolBuilder {
            direct: false,
            workers_per_rank: 0,
            initializer: None,
            max_tasks_per_child: None,
            task_timeout: None,
            max_message_size: DEFAULT_MAX_FRAME,
            startup_timeout: Duration::from_secs(60),
            spawn: None,
        }
    }

    /// Runs tasks on each worker rank's own thread, one at a time, with no
    /// local pool: the lowest latency, and **a task that aborts, segfaults
    /// or exits ends its rank and so the whole MPI job** (a panic still
    /// fails its item alone). Time limits and `max_tasks_per_child` need a
    /// local pool, and are refused with it.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder().direct();
    /// # let _ = builder;
    /// ```
    pub fn direct(mut self) -> Self {
        self.direct = true;
        self
    }

    /// Local worker processes on each worker rank. `0` (the default): the
    /// rank's node's CPUs divided among the worker ranks on that node
    /// (`MPI_COMM_TYPE_SHARED` tells which), at least one.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder().workers_per_rank(16);
    /// # let _ = builder;
    /// ```
    pub fn workers_per_rank(mut self, workers: usize) -> Self {
        self.workers_per_rank = workers;
        self
    }

    /// Runs `initializer` in every process that runs tasks (each local
    /// worker, or each rank in direct mode) before its first task, as
    /// [`ProcessPoolBuilder::initializer`](crate::ProcessPoolBuilder::initializer).
    ///
    /// # Examples
    ///
    /// ```
    /// fn setup() -> Result<(), String> {
    ///     Ok(())
    /// }
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder().initializer(setup);
    /// # let _ = builder;
    /// ```
    pub fn initializer(mut self, initializer: fn() -> Result<(), String>) -> Self {
        self.initializer = Some(initializer);
        self
    }

    /// Replaces each local worker after this many tasks (not in direct
    /// mode).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder().max_tasks_per_child(100);
    /// # let _ = builder;
    /// ```
    pub fn max_tasks_per_child(mut self, tasks: usize) -> Self {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// A time limit for each item, enforced on the worker ranks by killing
    /// the local worker that runs over it (not in direct mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder()
    ///     .task_timeout(Duration::from_secs(10));
    /// # let _ = builder;
    /// ```
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// The largest message either side may send, as on the local pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder().max_message_size(1 << 20);
    /// # let _ = builder;
    /// ```
    pub fn max_message_size(mut self, bytes: u32) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long rank 0 waits for every worker rank to answer its greeting
    /// (default 60 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = concurrent_futures::mpi::MpiPoolExecutor::builder()
    ///     .startup_timeout(Duration::from_secs(5));
    /// # let _ = builder;
    /// ```
    pub fn startup_timeout(mut self, limit: Duration) -> Self {
        self.startup_timeout = limit;
        self
    }

    /// Spawn mode: starts `ranks` worker ranks of this same executable with
    /// `MPI_Comm_spawn`, rather than using ranks started with the job.
    /// Rank 0 then runs alone: `mpirun -n 1 ./app`, or plain `./app` (MPI
    /// then starts as a *singleton*, and Open MPI runs a helper daemon for
    /// the spawned ranks). Where those ranks run is the MPI library's
    /// choice (its hostfile, or the job's allocation; Open MPI refuses
    /// more ranks than it has slots unless oversubscription is allowed,
    /// `OMPI_MCA_rmaps_base_oversubscribe=1`). Everything else is as in
    /// the default mode: the spawned ranks serve from
    /// [`init`](crate::init) and stop with the pool.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use concurrent_futures::mpi::MpiPoolExecutor;
    ///
    /// fn main() -> Result<(), concurrent_futures::Error> {
    ///     concurrent_futures::init(); // the spawned ranks serve from here
    ///     let pool = MpiPoolExecutor::builder().spawn(4).build()?; // `./app` alone
    ///     assert_eq!(pool.worker_ranks(), 4);
    ///     Ok(())
    /// }
    /// ```
    #[doc(alias = "MPI_Comm_spawn")]
    pub fn spawn(mut self, ranks: usize) -> Self {
        self.spawn = Some(ranks);
        self
    }

    /// Greets every worker rank and builds the pool. On a worker rank this
    /// never returns.
    ///
    /// # Errors
    ///
    /// As [`MpiPoolExecutor::new`], and [`Error::InvalidArgument`] for
    /// options that do not go together.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{mpi::MpiPoolExecutor, Error};
    ///
    /// let refused = MpiPoolExecutor::builder().max_tasks_per_child(0).build();
    /// assert!(matches!(refused, Err(Error::InvalidArgument { .. })));
    /// ```
    pub fn build(self) -> Result<MpiPoolExecutor, Error> {
        let invalid = |reason: &str| Error::InvalidArgument {
            reason: reason.to_owned(),
        };
        if self.max_tasks_per_child == Some(0) {
            return Err(invalid("max_tasks_per_child must be at least 1"));
        }
        if self.max_message_size < 1024 {
            return Err(invalid("max_message_size must be at least 1024 bytes"));
        }
        if self.direct && (self.task_timeout.is_some() || self.max_tasks_per_child.is_some()) {
            return Err(invalid(
                "task_timeout and max_tasks_per_child need local pools on the ranks, \
                 not direct execution",
            ));
        }
        if self.workers_per_rank > super::protocol::MAX_LANES {
            return Err(invalid("workers_per_rank is more than one rank can serve"));
        }
        if self.spawn == Some(0) {
            return Err(invalid("spawn needs at least 1 rank"));
        }
        let spawn = |reason: String| Error::Spawn { reason };
        let root = match super::started(self.spawn.is_some()) {
            Some(Started::Root(root)) => root,
            Some(Started::Failed(why)) => return Err(spawn(format!("MPI failed: {why}"))),
            _ => {
                return Err(spawn(String::from(
                    "no MPI worker ranks: this program was not started by an MPI launcher; \
                     start it as `mpirun -n 3 <program>` (or `srun -n 3 <program>`): rank 0 \
                     runs the program, the other ranks serve its pool",
                )))
            }
        };
        let prefix = root.prefix.clone().map_err(spawn)?;
        if self.spawn.is_some() && root.size != 1 {
            return Err(invalid(&format!(
                "spawn mode needs rank 0 alone (`mpirun -n 1`, or no launcher), and this job \
                 has {} ranks: start it with one, or drop spawn() to use them",
                root.size
            )));
        }
        if self.spawn.is_none() && root.size < 2 {
            return Err(spawn(String::from(
                "no MPI worker ranks: the job has rank 0 alone; start it with \
                 `mpirun -n 2` or more",
            )));
        }
        if root.claimed.swap(true, Ordering::AcqRel) {
            return Err(invalid(
                "one MpiPoolExecutor per run: the worker ranks serve the first, and stop with it",
            ));
        }
        let connected = self
            .spawn_ranks(root)
            .and_then(|()| self.connect(root, &prefix));
        let peers = match connected {
            Ok(peers) => peers,
            Err(why) => {
                // Refused: stop every rank, so that the job can end.
                let _ = root.stop(STOP_TIMEOUT);
                return Err(spawn(why));
            }
        };
        let ranks = peers.len();
        let mut links = Vec::new();
        for peer in peers {
            for (lane, replies) in peer.lanes.into_iter().enumerate() {
                links.push(MpiLink::new(
                    peer.rank,
                    lane,
                    peer.info.pid,
                    Arc::clone(&root.transport),
                    replies,
                    !self.direct,
                ));
            }
        }
        let pool = ProcessPoolExecutor::builder()
            .max_workers(links.len())
            .max_message_size(self.max_message_size)
            .links(Arc::new(Lanes::new(links)))
            .build()?;
        Ok(MpiPoolExecutor { pool, root, ranks })
    }

    /// In spawn mode, starts the worker ranks.
    fn spawn_ranks(&self, root: &Root) -> Result<(), String> {
        let Some(count) = self.spawn else {
            return Ok(());
        };
        // The file itself: `/proc/self/exe` would name the MPI daemon's
        // own executable in the daemon that starts the ranks.
        let exe = std::fs::read_link("/proc/self/exe")
            .map_err(|e| format!("cannot find its own executable to spawn: {e}"))?;
        let exe = std::ffi::CString::new(exe.into_os_string().into_encoded_bytes())
            .map_err(|_| String::from("its executable's path holds a NUL byte"))?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        root.commands
            .send(Command::Spawn { exe, count, reply })
            .map_err(|_| String::from("rank 0's MPI thread has ended"))?;
        answer
            .recv()
            .unwrap_or_else(|_| Err(String::from("rank 0's MPI thread has ended")))
    }

    /// The handshake with every worker rank.
    fn connect(&self, root: &Root, prefix: &[u8]) -> Result<Vec<Peer>, String> {
        let mode = if self.direct {
            Mode::Direct
        } else {
            Mode::Local {
                workers: self.workers_per_rank as u32,
            }
        };
        let hello = Hello {
            mode,
            root_node: root.node.clone(),
            initializer: self
                .initializer
                .map(|init| sys::offset_of(init as sys::InitFn as usize)),
            max_tasks_per_child: self.max_tasks_per_child.map(|n| n as u64),
            task_timeout: self.task_timeout,
            max_frame: self.max_message_size,
        };
        let mut bytes = prefix.to_vec();
        let body = postcard::to_allocvec(&hello).map_err(|e| e.to_string())?;
        bytes.extend_from_slice(&body);
        let (reply, answer) = crossbeam_channel::bounded(1);
        let command = Command::Connect {
            hello: bytes,
            timeout: self.startup_timeout,
            reply,
        };
        root.commands
            .send(command)
            .map_err(|_| String::from("rank 0's MPI thread has ended"))?;
        answer
            .recv()
            .unwrap_or_else(|_| Err(String::from("rank 0's MPI thread has ended")))
    }
}

impl Default for MpiPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}
