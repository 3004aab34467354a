//! The process pool over MPI ranks (feature `mpi`): [`MpiPoolExecutor`],
//! the same [`Future`](crate::Future), `submit`, `map`, `wait` and
//! `as_completed` as the local pools, with every rank but 0 of
//! `MPI_COMM_WORLD` serving rank 0's pool.
//!
//! ```no_run
//! use concurrent_futures::mpi::MpiPoolExecutor;
//!
//! fn is_prime(n: u64) -> bool {
//!     n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
//! }
//!
//! fn main() -> Result<(), concurrent_futures::Error> {
//!     concurrent_futures::init(); // every rank but 0 serves from here, and exits
//!     let pool = MpiPoolExecutor::new()?;
//!     let primes = pool.map(is_prime, 2..100_000u64).filter(|r| *r.as_ref().unwrap()).count();
//!     assert_eq!(primes, 9592);
//!     Ok(())
//! }
//! ```
//!
//! Run it as `mpirun -n 3 ./app` (or `srun -n 17 ./app`): MPI starts the
//! same binary on every rank, so a function travels by its offset in the
//! executable exactly as it does to a local worker process.
//!
//! # How the parts fit
//!
//! * `sys` and `shim.c`: the few MPI calls, through a C shim built with
//!   `mpicc` (see `build.rs`); every `unsafe` of MPI is in `sys`, which
//!   also sends a message over 1 GiB in pieces (MPI counts in `int`) and
//!   puts received pieces back together.
//! * `protocol`: the tags, the handshake, the proof that every rank runs
//!   the same build (a hash of the executable file, the protocol version,
//!   the offset of a known function).
//! * `transport`: MPI on rank 0, behind one mutex (`MPI_THREAD_SERIALIZED`):
//!   each driver posts its lane's tasks and polls for their replies itself,
//!   handing whatever it takes to the lane it is for; rank 0's MPI thread
//!   greets the ranks, polls while no driver does, and stops the ranks.
//! * `link`: a lane of a worker rank as rank 0's dispatch sees it, one
//!   more `Link` under the process pool's own dispatch: chunking, automatic
//!   chunk sizes, `Map`'s window and every fault rule are the local pool's.
//! * `rank`: a worker rank's loop, running tasks itself ("direct") or on a
//!   local process pool of its own, through a type-erased `raw_job`;
//!   `task` reads a task out of rank 0's message.
//! * `poll`: how those threads wait: a bounded spin, then growing naps (a
//!   driver sleeps through most of a long task, from the round trip per
//!   item it has seen, and polls from shortly before its reply is due).
//! * `spares`: the buffers of messages sent and read, kept for the next
//!   ones (`sys` keeps them; a fresh buffer faults its pages in).
//!
//! # `running()` and `cancel()`
//!
//! Each lane (a direct rank, or one local worker of a rank) holds two
//! tasks: the one it runs and the next, queued on the rank, so that it
//! never waits a round trip between tasks. No shared memory spans the
//! ranks, so a task cannot be taken back once it has gone to a rank: a
//! task is marked running when it is sent, and from then on `running()`
//! is true and `cancel()` returns `false`, also while it waits behind the
//! other on its lane (as Python reports the tasks in its call queue).
//! Tasks still in rank 0's queue are pending and can be cancelled; rank 0
//! sends a lane its second task only while no other lane is idle.
//!
//! # Faults: what is survived and what is not
//!
//! * **A task that panics** fails its item alone, in both modes.
//! * **A task that aborts, segfaults, overflows its stack or exits**, on a
//!   rank with a local pool (the default), kills one local worker process:
//!   its item fails with [`Error::WorkerDied`](crate::Error::WorkerDied)
//!   (or [`Error::StackOverflow`](crate::Error::StackOverflow)), the items
//!   it finished are kept, the rest of its chunk runs on another local
//!   worker, and the job goes on. In direct mode the same crash ends the
//!   rank, and so the MPI job.
//! * **A rank or a node that dies ends the MPI job.** Open MPI then kills
//!   every rank, rank 0 included; no fault-tolerant MPI (ULFM) is available
//!   in Debian's Open MPI 4.1. This crate does not pretend otherwise.
//! * **A rank that runs another build** (its executable hashes differently,
//!   or its code lies at other offsets) is refused: [`MpiPoolExecutor::new`]
//!   fails on rank 0 naming the rank and why, and stops every rank.
//!
//! # Start and end
//!
//! [`init`](crate::init) (or the first [`MpiPoolExecutor::new`]) sees an MPI
//! launcher in the environment and initialises MPI on a thread of its own;
//! on every rank but 0 that thread serves and the process exits when rank 0
//! says stop, without returning to `main`. Without a launcher nothing
//! happens: the program is a normal program, and `MpiPoolExecutor::new`
//! says how to launch it. Rank 0's pool stops the ranks when it is shut
//! down or dropped; if the program exits without that (it returns, calls
//! `exit`, or `main` panics), an exit handler stops them, so that rank 0
//! never hangs in `MPI_Finalize` and `mpirun` ends.
//!
//! One pool per run: the ranks serve the first `MpiPoolExecutor`, and stop
//! with it.
//!
//! # Spawn mode
//!
//! [`MpiPoolBuilder::spawn`] starts the worker ranks with `MPI_Comm_spawn`
//! instead: rank 0 runs alone (`mpirun -n 1 ./app`, or plain `./app`, MPI
//! then being started as a *singleton* when the pool is built), and the
//! spawned processes, this same executable with no arguments, serve from
//! [`init`](crate::init) as launched ranks do. The shim then talks over
//! the intercommunicator to them, numbering them 1..=n as if they were
//! ranks of one world (`shim.c`), so everything above it is the same; at
//! the end both sides disconnect before they finalise. A spawned rank
//! knows itself by its parent communicator, not by the environment.

use std::sync::atomic::AtomicBool;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

mod link;
pub(crate) mod poll;
mod pool;
pub(crate) mod protocol;
mod rank;
mod raw_job;
mod spares;
pub(crate) mod sys;
mod task;
mod transport;

pub use pool::{MpiPoolBuilder, MpiPoolExecutor};

use protocol::PREFIX;
use transport::{Command, Transport};

/// The environment variables by which MPI launchers (Open MPI's `mpirun`,
/// MPICH's Hydra, Slurm's PMI and PMIx) tell a process it is a rank.
const LAUNCHER_VARIABLES: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"];

/// Set in a rank's environment once it has initialised MPI: a child it
/// starts (which inherits the launcher's variables) is not a rank.
const RANK_PID: &str = "CONCURRENT_FUTURES_MPI_RANK_PID";

/// How long rank 0 waits at exit for the worker ranks to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What starting MPI in this process came to.
#[derive(Debug)]
enum Started {
    /// No launcher: a normal program.
    NoLauncher,
    /// Rank 0, with its MPI thread.
    Root(Root),
    /// A launcher, but MPI could not be initialised.
    Failed(String),
}

/// Rank 0's handle on its MPI thread.
#[derive(Debug)]
struct Root {
    commands: Sender<Command>,
    transport: std::sync::Arc<Transport>,
    size: usize,
    node: String,
    prefix: Result<[u8; PREFIX], String>,
    /// Whether a pool has been made (one per run).
    claimed: AtomicBool,
    /// Whether the ranks have been stopped.
    stopped: Mutex<bool>,
}

impl Root {
    /// Stops every worker rank and finalises MPI, once.
    fn stop(&self, timeout: Duration) -> Result<(), String> {
        let mut stopped = self.stopped.lock();
        if *stopped {
            return Ok(());
        }
        *stopped = true;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::Stop { timeout, reply })
            .map_err(|_| String::from("rank 0's MPI thread has ended"))?;
        answer
            .recv_timeout(timeout + Duration::from_secs(5))
            .unwrap_or_else(|_| Err(String::from("rank 0's MPI thread did not answer")))
    }
}

static START: Once = Once::new();
static STARTED: OnceLock<Started> = OnceLock::new();
/// Rank 0's MPI when it was started without a launcher for spawn mode (an
/// MPI singleton).
static SINGLETON: OnceLock<Started> = OnceLock::new();

/// Under an MPI launcher, initialises MPI (once); on every rank but 0,
/// serves rank 0's pool and exits without returning.
pub(crate) fn run_if_rank() {
    START.call_once(|| {
        let started = start();
        let _ = STARTED.set(started);
    });
}

/// What starting MPI came to, for rank 0's pool: under a launcher, what
/// [`run_if_rank`] started; without one, nothing, or for spawn mode
/// (`spawn`) MPI started now as a singleton.
fn started(spawn: bool) -> Option<&'static Started> {
    run_if_rank();
    match STARTED.get() {
        Some(Started::NoLauncher) if spawn => Some(SINGLETON.get_or_init(|| {
            let started = start_mpi();
            // Its children (a local pool of its own) are not ranks, should
            // MPI have put a launcher's variables in the environment. Set
            // only now: the daemon a singleton's `MPI_Init` starts, and so
            // the ranks it spawns, must not inherit it.
            std::env::set_var(RANK_PID, std::process::id().to_string());
            started
        })),
        other => other,
    }
}

/// Rank 0's handle, however MPI was started.
fn root() -> Option<&'static Root> {
    [STARTED.get(), SINGLETON.get()]
        .into_iter()
        .find_map(|started| match started {
            Some(Started::Root(root)) => Some(root),
            _ => None,
        })
}

fn launched() -> bool {
    let ours = std::env::var(RANK_PID).ok();
    if ours.is_some_and(|pid| pid != std::process::id().to_string()) {
        return false;
    }
    LAUNCHER_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some())
}

fn start() -> Started {
    if !launched() {
        return Started::NoLauncher;
    }
    // Before the MPI thread exists (`init()` runs first in `main`, with one
    // thread): children of this rank inherit it and know they are not ranks.
    std::env::set_var(RANK_PID, std::process::id().to_string());
    start_mpi()
}

/// Starts the MPI thread and waits for it to say what it is (a worker
/// rank's never says: this thread then waits for the process to exit).
fn start_mpi() -> Started {
    let (told, hear) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name(String::from("concurrent-futures-mpi"))
        .stack_size(crate::process_pool::sys::main_stack_size())
        .spawn(move || mpi_thread(&told));
    if let Err(e) = spawned {
        return Started::Failed(format!("cannot start the MPI thread: {e}"));
    }
    match hear.recv() {
        Ok(started) => started,
        // A worker rank's thread never answers: it serves, then exits the
        // process. This thread waits for that.
        Err(_) => loop {
            std::thread::park();
        },
    }
}

/// The MPI thread: initialises MPI, then serves (a worker rank, which ends
/// the process) or drives rank 0's transport.
fn mpi_thread(told: &Sender<Started>) {
    let mpi = match sys::Mpi::init() {
        Ok(mpi) => mpi,
        Err(why) => {
            let _ = told.send(Started::Failed(why));
            return;
        }
    };
    let probe =
        crate::process_pool::sys::offset_of(crate::process_pool::sys::probe as fn() as usize);
    let prefix = protocol::exe_hash().map(|hash| protocol::prefix(hash, probe));
    if mpi.rank != 0 {
        // The main thread waits in `start` for an answer that never comes.
        let status = rank::serve(mpi, prefix);
        std::process::exit(status);
    }
    let (commands, receive) = crossbeam_channel::unbounded();
    let ours = *prefix.as_ref().unwrap_or(&[0; PREFIX]);
    let (size, node) = (mpi.size, mpi.node.clone());
    transport::run(mpi, ours, &receive, |transport| {
        let root = Root {
            commands,
            transport,
            size,
            node,
            prefix,
            claimed: AtomicBool::new(false),
            stopped: Mutex::new(false),
        };
        // SAFETY: registers a plain `extern "C" fn()` with the C library,
        // which calls it once at `exit`.
        unsafe { libc::atexit(stop_at_exit) };
        told.send(Started::Root(root)).is_ok()
    });
}

/// At exit on rank 0: stops the worker ranks if the pool did not.
extern "C" fn stop_at_exit() {
    if let Some(root) = root() {
        if let Err(why) = root.stop(STOP_TIMEOUT) {
            eprintln!("concurrent-futures: could not stop the MPI worker ranks at exit: {why}");
        }
    }
}
