//! [`Value`]: one plain-data value in shared memory, with its own lock.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lock::{self, LockError};
use super::shm::{self, align_up, Kind, Region, BODY, MAX_ALIGN};
use super::sys::{Locked, Wait};
use crate::Error;

/// One value of plain data shared by processes, with its own lock:
/// Python's `multiprocessing.Value`.
///
/// `T` is [`Pod`] (`i64`, `f64`, `[u8; 16]`, a `#[repr(C)]` struct of
/// such with bytemuck's derive…): no pointers, every bit pattern valid,
/// so whatever another process writes, this one reads a valid `T` —
/// wrong values are possible, undefined behaviour is not.
///
/// * [`get`](Self::get) and [`set`](Self::set) are each atomic: they take
///   the value's lock for the copy, so no reader ever sees half a write.
/// * Read-modify-write goes through [`lock`](Self::lock), whose guard
///   derefs to `T`: `*v.lock().unwrap() += 1`. A `get` followed by a `set`
///   is two steps, and another process's update can fall between them —
///   the lost-update race of Python's unlocked `v.value += 1`, kept
///   visible on purpose (see `examples/bank.rs`).
///
/// The lock survives a dead holder like [`Lock`](super::Lock)'s: the next
/// `lock()` gets [`LockError::HolderDied`] with the guard; `get` and `set`
/// just go on (any bit pattern is a valid `T`).
///
/// Handles are cheap to clone and travel as [`Lock`](super::Lock)'s do.
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::Value;
///
/// let balance = Value::new(200i64)?;
/// balance.set(balance.get() + 1); // two steps: racy across processes
/// *balance.lock().unwrap() += 1; // one step under the lock
/// assert_eq!(balance.get(), 202);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Value<T> {
    region: Arc<Region>,
    offset: usize,
    _type: PhantomData<fn(T) -> T>,
}

/// The guard of a [`Value`]'s lock: derefs to the value. Unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    locked: Locked<'a>,
    offset: usize,
    _type: PhantomData<&'a mut T>,
}

/// The body a Value region needs: its parameters are `[size, align, 0]`.
fn value_body(params: [u64; 3]) -> Option<usize> {
    let [size, align, _] = params;
    let (size, align) = (usize::try_from(size).ok()?, usize::try_from(align).ok()?);
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return None;
    }
    (align_up(BODY, align)? - BODY).checked_add(size)
}

impl<T: Pod> Value<T> {
    /// A new shared value holding `value`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `T` is zero-sized or asks for an
    /// alignment over 4096;
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = concurrent_futures::multiprocessing::Value::new(1.5f64)?;
    /// assert_eq!(v.get(), 1.5);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Value<T>, Error> {
        let offset = shm::data_offset::<T>()?;
        let size = std::mem::size_of::<T>();
        let params = [size as u64, std::mem::align_of::<T>() as u64, 0];
        let region = Region::create(Kind::Value, params, offset - BODY + size)?;
        let this = Value {
            region: Arc::new(region),
            offset,
            _type: PhantomData,
        };
        this.set(value);
        Ok(this)
    }

    fn locked(&self) -> Locked<'_> {
        // A dead holder's lock is ours all the same, and any bytes are a
        // valid `T`; only re-locking from this very thread fails.
        match lock::take(&self.region, Wait::Block) {
            Ok(locked) | Err(LockError::HolderDied(locked)) => locked,
            Err(e) => panic!(
                "Value::get/set could not take the value's lock: {e} \
                 (read and write through the guard of Value::lock instead)"
            ),
        }
    }

    /// The value (copied out under the lock).
    ///
    /// Python's `v.value`.
    ///
    /// # Panics
    ///
    /// If this thread holds the value's [`lock`](Self::lock) (use the
    /// guard), or the system refuses to lock the mutex.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = concurrent_futures::multiprocessing::Value::new(7u32)?;
    /// assert_eq!(v.get(), 7);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn get(&self) -> T {
        let locked = self.locked();
        let size = std::mem::size_of::<T>();
        bytemuck::pod_read_unaligned(locked.bytes(self.offset, size))
    }

    /// Replaces the value (under the lock).
    ///
    /// Python's `v.value = x`.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = concurrent_futures::multiprocessing::Value::new(7u32)?;
    /// v.set(8);
    /// assert_eq!(v.get(), 8);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        let mut locked = self.locked();
        let size = std::mem::size_of::<T>();
        locked
            .bytes_mut(self.offset, size)
            .copy_from_slice(bytemuck::bytes_of(&value));
    }

    /// Takes the value's lock; the guard derefs to the value. Python's
    /// `with v.get_lock(): v.value += 1`.
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`](super::Lock::acquire): notably
    /// [`LockError::HolderDied`], with the guard, if the previous holder
    /// died holding the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = concurrent_futures::multiprocessing::Value::new(1u64)?;
    /// *v.lock().unwrap() *= 10;
    /// assert_eq!(v.get(), 10);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        let guard = |locked| ValueGuard {
            locked,
            offset: self.offset,
            _type: PhantomData,
        };
        lock::take(&self.region, Wait::Block)
            .map(guard)
            .map_err(|e| e.map(guard))
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        bytemuck::from_bytes(self.locked.bytes(self.offset, std::mem::size_of::<T>()))
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        bytemuck::from_bytes_mut(self.locked.bytes_mut(self.offset, std::mem::size_of::<T>()))
    }
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            region: Arc::clone(&self.region),
            offset: self.offset,
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

impl<T> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let region = Region::deserialize(deserializer, Kind::Value, value_body)?;
        let [size, align, _] = region.params();
        if size != std::mem::size_of::<T>() as u64 || align != std::mem::align_of::<T>() as u64 {
            return Err(D::Error::custom(super::transfer::note(format!(
                "the received Value holds {size}-byte values aligned to {align}, not a {}",
                std::any::type_name::<T>()
            ))));
        }
        let offset = shm::data_offset::<T>().map_err(D::Error::custom)?;
        Ok(Value {
            region: Arc::new(region),
            offset,
            _type: PhantomData,
        })
    }
}
