//! [`Array`]: a fixed-length array of plain data in shared memory, with
//! its own lock.

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

/// A fixed-length array of plain data shared by processes, with its own
/// lock: Python's `multiprocessing.Array`.
///
/// The rules are [`Value`](super::Value)'s: `T` is [`Pod`], so no process
/// can cause undefined behaviour in another; [`get`](Self::get),
/// [`set`](Self::set) and [`to_vec`](Self::to_vec) each take the lock for
/// their copy (no torn elements, `to_vec` a consistent snapshot);
/// read-modify-write goes through [`lock`](Self::lock), whose guard derefs
/// to `[T]`. A holder that dies is reported to the next `lock()` with
/// [`LockError::HolderDied`].
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::Array;
///
/// let squares: Array<i32> = Array::zeroed(5)?;
/// for (i, x) in squares.lock().unwrap().iter_mut().enumerate() {
///     *x = (i * i) as i32;
/// }
/// squares.set(0, 10)?;
/// assert_eq!(squares.get(4), Some(16));
/// assert_eq!(squares.to_vec(), [10, 1, 4, 9, 16]);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Array<T> {
    region: Arc<Region>,
    offset: usize,
    len: usize,
    _type: PhantomData<fn(T) -> T>,
}

/// The guard of an [`Array`]'s lock: derefs to the elements, `[T]`.
/// Unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T> {
    locked: Locked<'a>,
    offset: usize,
    len: usize,
    _type: PhantomData<&'a mut [T]>,
}

/// The body an Array region needs: its parameters are `[size, align, len]`.
fn array_body(params: [u64; 3]) -> Option<usize> {
    let [size, align, len] = params;
    let size = usize::try_from(size).ok()?;
    let align = usize::try_from(align).ok()?;
    let len = usize::try_from(len).ok()?;
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return None;
    }
    (align_up(BODY, align)? - BODY).checked_add(size.checked_mul(len)?)
}

impl<T: Pod> Array<T> {
    /// A new shared array of `len` elements, all zero bits.
    ///
    /// Python's `multiprocessing.Array(typecode, len)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the size overflows, or `T` is
    /// zero-sized or asks for an alignment over 4096; [`Error::Os`] if the shared memory cannot be
    /// created (too large, say).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::<u8>::zeroed(3)?;
    /// assert_eq!(a.to_vec(), [0, 0, 0]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<Array<T>, Error> {
        let offset = shm::data_offset::<T>()?;
        let size = std::mem::size_of::<T>();
        let params = [size as u64, std::mem::align_of::<T>() as u64, len as u64];
        let body = array_body(params).ok_or_else(|| Error::InvalidArgument {
            reason: format!("an Array of {len} elements of {size} bytes does not fit in memory"),
        })?;
        let region = Region::create(Kind::Array, params, body)?;
        Ok(Array {
            region: Arc::new(region),
            offset,
            len,
            _type: PhantomData,
        })
    }

    /// A new shared array holding a copy of `values`.
    ///
    /// Python's `multiprocessing.Array(typecode, sequence)`.
    ///
    /// # Errors
    ///
    /// As [`zeroed`](Self::zeroed).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::from_slice(&[1u16, 2, 3])?;
    /// assert_eq!(a.len(), 3);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Array<T>, Error> {
        let array = Array::zeroed(values.len())?;
        array.with_locked(|elements| elements.copy_from_slice(values));
        Ok(array)
    }

    /// The number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::<f32>::zeroed(4)?;
    /// assert_eq!(a.len(), 4);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::<f32>::zeroed(0)?;
    /// assert!(a.is_empty());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Runs `f` on the elements under the lock (a dead holder's lock is
    /// taken all the same: any bytes are valid elements).
    fn with_locked<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> R {
        let mut locked = match lock::take(&self.region, Wait::Block) {
            Ok(locked) | Err(LockError::HolderDied(locked)) => locked,
            Err(e) => panic!(
                "Array::get/set/to_vec could not take the array's lock: {e} \
                 (use the guard of Array::lock instead)"
            ),
        };
        let bytes = locked.bytes_mut(self.offset, self.len * std::mem::size_of::<T>());
        f(bytemuck::cast_slice_mut(bytes))
    }

    /// Element `index` (copied out under the lock), or `None` past the end.
    ///
    /// Python's `a[i]`.
    ///
    /// # Panics
    ///
    /// If this thread holds the array's [`lock`](Self::lock) (use the
    /// guard), or the system refuses to lock the mutex.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::from_slice(&[5i64, 6])?;
    /// assert_eq!((a.get(1), a.get(2)), (Some(6), None));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        self.with_locked(|elements| elements.get(index).copied())
    }

    /// Sets element `index` (under the lock).
    ///
    /// Python's `a[i] = x`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `index` is past the end.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::<u8>::zeroed(2)?;
    /// a.set(1, 9)?;
    /// assert!(a.set(2, 9).is_err());
    /// assert_eq!(a.to_vec(), [0, 9]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn set(&self, index: usize, value: T) -> Result<(), Error> {
        if index >= self.len {
            return Err(Error::InvalidArgument {
                reason: format!("index {index} is past the end of an Array of {}", self.len),
            });
        }
        self.with_locked(|elements| elements[index] = value);
        Ok(())
    }

    /// A copy of all the elements, taken at one moment (under the lock).
    ///
    /// Python's `a[:]`.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = concurrent_futures::multiprocessing::Array::from_slice(b"abc")?;
    /// assert_eq!(a.to_vec(), b"abc");
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.with_locked(|elements| elements.to_vec())
    }

    /// Takes the array's lock; the guard derefs to `[T]`.
    ///
    /// Python's `with a.get_lock(): …`.
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
    /// let a = concurrent_futures::multiprocessing::Array::from_slice(&[3u32, 1, 2])?;
    /// a.lock().unwrap().sort();
    /// assert_eq!(a.to_vec(), [1, 2, 3]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        let guard = |locked| ArrayGuard {
            locked,
            offset: self.offset,
            len: self.len,
            _type: PhantomData,
        };
        lock::take(&self.region, Wait::Block)
            .map(guard)
            .map_err(|e| e.map(guard))
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        let bytes = self
            .locked
            .bytes(self.offset, self.len * std::mem::size_of::<T>());
        bytemuck::cast_slice(bytes)
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let bytes = self
            .locked
            .bytes_mut(self.offset, self.len * std::mem::size_of::<T>());
        bytemuck::cast_slice_mut(bytes)
    }
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            region: Arc::clone(&self.region),
            offset: self.offset,
            len: self.len,
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

impl<T> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let region = Region::deserialize(deserializer, Kind::Array, array_body)?;
        let [size, align, len] = region.params();
        if size != std::mem::size_of::<T>() as u64 || align != std::mem::align_of::<T>() as u64 {
            return Err(D::Error::custom(super::transfer::note(format!(
                "the received Array holds {size}-byte elements aligned to {align}, not {}",
                std::any::type_name::<T>()
            ))));
        }
        let offset = shm::data_offset::<T>().map_err(D::Error::custom)?;
        // `array_body` checked that `len` elements fit in the mapping.
        let len = usize::try_from(len).map_err(D::Error::custom)?;
        Ok(Array {
            region: Arc::new(region),
            offset,
            len,
            _type: PhantomData,
        })
    }
}
