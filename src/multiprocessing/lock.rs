//! [`Lock`]: a mutual-exclusion lock shared by processes, that a dead
//! holder does not leave locked; and [`LockError`], which
//! [`Value::lock`](super::Value::lock) and [`Array::lock`](super::Array::lock)
//! return too.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::shm::{Kind, Region};
use super::sys::{LockFailure, Locked, Wait};
use crate::Error;

/// A lock that processes share: Python's `multiprocessing.Lock`, which
/// survives the death of its holder.
///
/// One robust, process-shared mutex in shared memory (an anonymous memfd:
/// nothing is named, nothing is left in `/dev/shm`). A handle is cheap to
/// clone (clones share the mapping) and travels to other processes as the
/// argument of [`Process::spawn`](super::Process::spawn), inside the
/// arguments of [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) tasks,
/// or through a [`Connection`](super::Connection).
///
/// # A holder that dies
///
/// If the process (or thread) holding the lock dies — killed, aborted,
/// exited — the lock is not locked for ever, as Python's is: the next
/// [`acquire`](Self::acquire) gets it, and is told, with
/// [`LockError::HolderDied`], which carries the guard (std's
/// `PoisonError` is the model). Only that next acquirer is told; it is the
/// one to repair whatever the dead holder left half done. A panic that
/// unwinds through a guard in a live process just unlocks it.
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::Lock;
///
/// let lock = Lock::new()?;
/// {
///     let _held = lock.acquire().unwrap();
///     assert!(lock.try_acquire().is_err()); // held, by this very thread
/// }
/// assert!(lock.try_acquire().is_ok());
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    region: Arc<Region>,
}

/// The proof that a [`Lock`] is held; unlocks it when dropped.
///
/// Python's `release()` is dropping the guard.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    _locked: Locked<'a>,
}

/// Why taking a [`Lock`] (or the lock of a [`Value`](super::Value) or
/// [`Array`](super::Array)) did not simply succeed.
///
/// `G` is the guard type. `HolderDied` is not a failure: the lock is
/// taken and its guard is inside, as with std's `PoisonError`.
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::{Lock, LockError};
///
/// let lock = Lock::new()?;
/// let guard = match lock.acquire() {
///     Ok(guard) => guard,
///     // The previous holder died: check what it protected, then go on.
///     Err(LockError::HolderDied(guard)) => guard,
///     Err(other) => panic!("{other}"),
/// };
/// drop(guard);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub enum LockError<G> {
    /// The previous holder died while it held the lock. The lock is now
    /// held by the caller (the guard is here) and works as before; what
    /// it protects may be half updated.
    HolderDied(G),
    /// [`try_acquire`](Lock::try_acquire): another thread or process holds it.
    WouldBlock,
    /// [`acquire_timeout`](Lock::acquire_timeout): the time passed first.
    TimedOut,
    /// This thread already holds the lock; waiting would wait for ever.
    Deadlock,
    /// The system refused, for the reason given.
    Os(String),
}

impl<G> LockError<G> {
    /// The guard, if the lock was taken after all (the holder had died).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::multiprocessing::Lock;
    ///
    /// let lock = Lock::new()?;
    /// // Take the lock whether or not a previous holder died.
    /// let guard = lock.acquire().or_else(|e| e.into_guard().ok_or(()));
    /// assert!(guard.is_ok());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::HolderDied(guard) => Some(guard),
            _ => None,
        }
    }

    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::HolderDied(guard) => LockError::HolderDied(f(guard)),
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::TimedOut => LockError::TimedOut,
            LockError::Deadlock => LockError::Deadlock,
            LockError::Os(reason) => LockError::Os(reason),
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::HolderDied(_) => f.write_str("HolderDied(..)"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::TimedOut => f.write_str("TimedOut"),
            LockError::Deadlock => f.write_str("Deadlock"),
            LockError::Os(reason) => f.debug_tuple("Os").field(reason).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::HolderDied(_) => {
                f.write_str("the previous holder of the lock died holding it; the lock is taken")
            }
            LockError::WouldBlock => f.write_str("the lock is held"),
            LockError::TimedOut => f.write_str("timed out waiting for the lock"),
            LockError::Deadlock => f.write_str("this thread already holds the lock"),
            LockError::Os(reason) => write!(f, "cannot take the lock: {reason}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

/// Takes `region`'s mutex as `how` says; the guard's error part as a
/// [`LockError`] of the raw lock.
pub(crate) fn take(region: &Region, how: Wait) -> Result<Locked<'_>, LockError<Locked<'_>>> {
    match region.lock(how) {
        Ok(locked) if locked.holder_died => Err(LockError::HolderDied(locked)),
        Ok(locked) => Ok(locked),
        Err(LockFailure::WouldBlock) => Err(LockError::WouldBlock),
        Err(LockFailure::TimedOut) => Err(LockError::TimedOut),
        Err(LockFailure::Deadlock) => Err(LockError::Deadlock),
        Err(LockFailure::Os(e)) => Err(LockError::Os(e.to_string())),
    }
}

/// `Wait::Until` for a timeout, or `Block` if it does not fit an instant.
pub(crate) fn until(timeout: Duration) -> Wait {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => Wait::Until(deadline),
        None => Wait::Block,
    }
}

fn lock_body(_: [u64; 3]) -> Option<usize> {
    Some(0)
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if its shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = concurrent_futures::multiprocessing::Lock::new()?;
    /// drop(lock.acquire());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn new() -> Result<Lock, Error> {
        let region = Region::create(Kind::Lock, [0; 3], 0)?;
        Ok(Lock {
            region: Arc::new(region),
        })
    }

    fn take(&self, how: Wait) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        let guard = |locked| LockGuard { _locked: locked };
        take(&self.region, how).map(guard).map_err(|e| e.map(guard))
    }

    /// Takes the lock, waiting as long as another holder has it.
    ///
    /// # Errors
    ///
    /// [`LockError::HolderDied`] (with the guard: the lock is taken) if
    /// the previous holder died holding it; [`LockError::Deadlock`] if
    /// this thread holds it already; [`LockError::Os`] if the system
    /// refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = concurrent_futures::multiprocessing::Lock::new()?;
    /// let held = lock.acquire().unwrap();
    /// drop(held); // release
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.take(Wait::Block)
    }

    /// Takes the lock if nobody holds it; Python's `acquire(block=False)`.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] if another thread or process holds it,
    /// and as [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::multiprocessing::{Lock, LockError};
    ///
    /// let lock = Lock::new()?;
    /// let other = lock.clone();
    /// let held = lock.try_acquire().unwrap();
    /// let busy = std::thread::spawn(move || matches!(other.try_acquire(), Err(LockError::WouldBlock)));
    /// assert!(busy.join().unwrap());
    /// # drop(held);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[doc(alias = "acquire(block=False)")]
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.take(Wait::Try)
    }

    /// Takes the lock, waiting at most `timeout`; Python's
    /// `acquire(timeout=…)`.
    ///
    /// The wait is measured on the system's real-time clock (that is what
    /// `pthread_mutex_timedlock` takes), so setting the clock while it
    /// waits lengthens or shortens it.
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`] if the time passed first, and as
    /// [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::multiprocessing::{Lock, LockError};
    /// use std::time::Duration;
    ///
    /// let lock = Lock::new()?;
    /// let other = lock.clone();
    /// let held = lock.acquire().unwrap();
    /// // Another thread waits for the lock, in vain.
    /// let waited = std::thread::spawn(move || {
    ///     matches!(other.acquire_timeout(Duration::from_millis(10)), Err(LockError::TimedOut))
    /// });
    /// assert!(waited.join().unwrap());
    /// # drop(held);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.take(until(timeout))
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(deserializer, Kind::Lock, lock_body)?;
        Ok(Lock {
            region: Arc::new(region),
        })
    }
}
