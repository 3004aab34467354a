//! Python's `multiprocessing` tools for processes that are copies of this
//! program (Linux): [`Process`], [`Queue`], [`pipe`]/[`Connection`],
//! [`Lock`], [`Value`], [`Array`] and [`cpu_count`].
//!
//! Every handle is an open descriptor — a sealed anonymous memfd for the
//! shared-memory ones, a Unix socket for a `Connection` — and is `Clone`,
//! `Serialize` and `Deserialize`. Handles travel to other processes
//! wherever this crate moves values there: as the argument of
//! [`Process::spawn`], inside the arguments of
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) tasks (which Python
//! refuses: its `Queue` and `Lock` "should only be shared between
//! processes through inheritance"), and inside values sent through a
//! [`Connection`]. Serializing a handle anywhere else (to JSON, to a file,
//! into a [`Queue`] item) is an error, never a dangling number.
//!
//! ```no_run
//! use concurrent_futures::multiprocessing::{Lock, Process, Value};
//!
//! fn deposit((balance, lock): (Value<i64>, Lock)) {
//!     for _ in 0..100 {
//!         let _held = lock.acquire().unwrap();
//!         balance.set(balance.get() + 1);
//!     }
//! }
//!
//! fn main() -> Result<(), concurrent_futures::Error> {
//!     concurrent_futures::init();
//!     let balance = Value::new(200i64)?;
//!     let lock = Lock::new()?;
//!     let d = Process::spawn(deposit, (balance.clone(), lock.clone()))?;
//!     d.join()?;
//!     assert_eq!(balance.get(), 300);
//!     Ok(())
//! }
//! ```
//!
//! # Python ↔ Rust
//!
//! | Python `multiprocessing` | `concurrent_futures::multiprocessing` |
//! |---|---|
//! | `Process(target=f, args=(a,)).start()` | [`Process::spawn`]`(f, a)` |
//! | `p.join()`, `p.join(timeout)`, `p.exitcode` | [`Process::join`] (the return value, or why not), [`Process::join_timeout`] |
//! | `p.pid`, `p.is_alive()`, `p.terminate()`, `p.kill()` | [`Process::pid`], [`Process::is_alive`], [`Process::terminate`], [`Process::kill`] |
//! | `Queue(maxsize)`: `put`, `get`, `get(timeout=)`, `get_nowait`, `qsize`, `empty` | [`Queue::bounded`]: [`put`](Queue::put), [`get`](Queue::get), [`get_timeout`](Queue::get_timeout), [`try_get`](Queue::try_get), [`len`](Queue::len), [`is_empty`](Queue::is_empty) |
//! | `Pipe()`: `send`, `recv` | [`pipe`]: [`Connection::send`], [`Connection::recv`] |
//! | `Lock()`: `acquire`, `release`, `with lock:` | [`Lock::acquire`] (dropping the guard releases), [`Lock::try_acquire`], [`Lock::acquire_timeout`] |
//! | `Value('i', 200)`: `.value`, `get_lock()` | [`Value::new`]`(200i32)`: [`get`](Value::get)/[`set`](Value::set), [`lock`](Value::lock) |
//! | `Array('i', 5)`: `a[i]`, `a[:]`, `get_lock()` | [`Array::zeroed`]`(5)`: [`get`](Array::get)/[`set`](Array::set), [`to_vec`](Array::to_vec), [`lock`](Array::lock) |
//! | `cpu_count()` | [`cpu_count`] |
//! | `Manager().dict()` | none: return results from the tasks, or send `(key, value)` pairs through a `Queue<(K, V)>` that the parent drains into a `HashMap` |
//!
//! # Fixed compared with Python
//!
//! * A [`Lock`] (and the lock of a [`Value`] or [`Array`]) whose holder
//!   dies is not locked for ever: the next locker gets it and is told
//!   ([`LockError::HolderDied`]).
//! * A process killed in the middle of [`Queue::put`] or [`Queue::get`]
//!   does not wedge the others.
//! * Nothing is named, so nothing is left in `/dev/shm`, whatever kills
//!   the processes: an anonymous memfd goes with its last holder.
//! * [`Value`] and [`Array`] hold plain data only (bytemuck's [`Pod`]):
//!   another process can write wrong values, never undefined behaviour.
//!
//! # How the parts fit
//!
//! * `shm` — a region: one sealed memfd, mapped shared, that starts with a
//!   robust process-shared mutex and a header; `Lock`, `Value`, `Array`
//!   and `Queue` are typed views of one.
//! * `lock`, `value`, `array`, `queue` — the handles; `waiting` — futex
//!   words with sleeper counts, on which a `Queue` waits for room or items.
//! * `connection` — `pipe`: Unix `SOCK_SEQPACKET` sockets.
//! * `transfer` — the side table through which a handle's descriptor
//!   travels beside the bytes of the value it is in (ipc-channel's
//!   pattern); the process pool and `Connection` use it.
//! * `process` — `Process`: one task on a dedicated one-worker process
//!   pool, so it reuses the pool's start-up, handshake and reaping.
//! * `sys` — every `unsafe` operation, each explained.

mod array;
mod connection;
mod lock;
mod process;
mod queue;
mod shm;
mod sys;
pub(crate) mod transfer;
mod value;
mod waiting;

pub use array::{Array, ArrayGuard};
pub use bytemuck::{Pod, Zeroable};
pub use connection::{pipe, Connection};
pub use lock::{Lock, LockError, LockGuard};
pub use process::Process;
pub use queue::{Queue, DEFAULT_ITEM_SIZE};
pub use value::{Value, ValueGuard};

/// The number of CPUs in the system: what Python's
/// `multiprocessing.cpu_count()` (and `os.cpu_count()`) returns on Linux,
/// the CPUs online (`sysconf(_SC_NPROCESSORS_ONLN)`); 1 if the system does
/// not say (where Python raises `NotImplementedError`).
///
/// This is not how many of them this process may use: that is
/// [`std::thread::available_parallelism`], which also counts the CPU
/// affinity mask (`taskset`) and a cgroup's CPU quota (a container
/// limited to 2 CPUs on a 64-CPU host: `cpu_count()` says 64,
/// `available_parallelism()` 2), and which the pools' default sizes
/// follow. Python 3.13's `os.process_cpu_count()` is the affinity part of
/// it.
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::cpu_count;
///
/// let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
/// assert!(cpu_count() >= 1);
/// assert!(cpu_count() >= usable);
/// ```
pub fn cpu_count() -> usize {
    sys::cpus_online().unwrap_or(1)
}
