//! [`Queue`]: a bounded FIFO queue between any number of producer and
//! consumer processes.
//!
//! # Layout
//!
//! A ring of `capacity` fixed-size slots in a region, under the region's
//! robust mutex:
//!
//! ```text
//! 128  head:u64   items taken so far        (written under the mutex)
//! 136  tail:u64   items put so far          (written under the mutex)
//! 144  not_empty futex word ‖ its sleepers  (see `waiting`)
//! 152  not_full futex word  ‖ its sleepers
//! 192  slot 0: len:u32 ‖ bytes[max_item] ‖ padding to 8, slot 1, …
//! ```
//!
//! A put writes the item into slot `tail % capacity`, then publishes it by
//! storing `tail + 1`: a producer killed before that store has published
//! nothing, and the next locker (told by the robust mutex that the holder
//! died) finds the ring as it was. A get copies nothing out: it decodes
//! straight from the slot, under the mutex, after it has stored `head + 1`
//! (so a value that fails to decode, or whose decoding panics, costs that
//! item and never blocks the queue).
//!
//! # Fixed slots
//!
//! Items are `postcard`-encoded into their slot. The slot size is chosen
//! when the queue is made ([`Queue::bounded`]: 1024 bytes;
//! [`Queue::with_item_size`]: any), and a larger item is refused by `put`
//! with [`Error::Encode`] saying so. Fixed slots keep the ring simple
//! enough to recover from a holder that died anywhere in it; a byte ring
//! of variable-size items would not be, for little gain with small items.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lock::{self, LockError};
use super::shm::{align_up, Kind, Region, BODY};
use super::sys::{Locked, Wait};
use super::transfer;
use super::waiting::{self, Condition};
use crate::Error;

const HEAD_AT: usize = BODY;
const TAIL_AT: usize = BODY + 8;
const NOT_EMPTY_AT: usize = BODY + 16;
const NOT_FULL_AT: usize = BODY + 24;
const SLOTS_AT: usize = BODY + 64;
const LEN_BYTES: usize = 4;

/// The largest encoded item of [`Queue::bounded`].
pub const DEFAULT_ITEM_SIZE: usize = 1024;

/// A bounded FIFO queue shared by processes: Python's
/// `multiprocessing.Queue(maxsize)`.
///
/// Any number of processes may put and get; items from one producer come
/// out in the order it put them. [`put`](Self::put) waits while the queue
/// is full, [`get`](Self::get) while it is empty. Items are encoded with
/// `serde` (postcard) into fixed-size slots in shared memory (an
/// anonymous memfd: nothing named, nothing left behind); see
/// [`with_item_size`](Self::with_item_size) for the size.
///
/// A process killed in the middle of a `put` or `get` does not wedge the
/// others: the ring sits under a robust mutex, and the index that
/// publishes an item is stored last. Waiting uses futex words, never
/// pthread condition variables (see the module docs of `waiting`).
///
/// Handles are cheap to clone and travel as [`Lock`](super::Lock)'s do.
/// A handle *inside an item* cannot: slots carry bytes, not descriptors,
/// so `put` refuses it with a clear [`Error::Encode`]; send handles
/// through a [`Connection`](super::Connection) instead.
///
/// # Examples
///
/// ```
/// use concurrent_futures::multiprocessing::Queue;
///
/// let q: Queue<String> = Queue::bounded(10)?;
/// q.put("hello".to_string())?;
/// assert_eq!(q.len(), 1);
/// assert_eq!(q.get()?, "hello");
/// assert_eq!(q.try_get()?, None);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Queue<T> {
    region: Arc<Region>,
    capacity: u64,
    max_item: usize,
    stride: usize,
    _type: PhantomData<fn(T) -> T>,
}

/// The body a Queue region needs: its parameters are `[capacity, max_item, 0]`.
fn queue_body(params: [u64; 3]) -> Option<usize> {
    let [capacity, max_item, _] = params;
    if capacity == 0 {
        return None;
    }
    let stride = stride(usize::try_from(max_item).ok()?)?;
    let slots = stride.checked_mul(usize::try_from(capacity).ok()?)?;
    (SLOTS_AT - BODY).checked_add(slots)
}

fn stride(max_item: usize) -> Option<usize> {
    align_up(max_item.checked_add(LEN_BYTES)?, 8)
}

/// How an operation waits.
#[derive(Clone, Copy)]
enum Patience {
    Forever,
    Until(Instant, Duration),
    Never,
}

impl Patience {
    fn of(timeout: Duration) -> Patience {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Patience::Until(deadline, timeout),
            None => Patience::Forever,
        }
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Until(deadline, _) => Some(deadline),
            _ => None,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue of at most `capacity` items, each up to
    /// [`DEFAULT_ITEM_SIZE`] bytes once encoded.
    ///
    /// Python's `multiprocessing.Queue(maxsize)`; there is no unbounded
    /// form (the ring lives in shared memory of a fixed size).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `capacity` is 0 or too large to fit
    /// in memory; [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::<u64>::bounded(10)?;
    /// assert_eq!(q.capacity(), 10);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn bounded(capacity: usize) -> Result<Queue<T>, Error> {
        Queue::with_item_size(capacity, DEFAULT_ITEM_SIZE)
    }

    /// A queue of at most `capacity` items, each up to `max_item` bytes
    /// once encoded (postcard: an integer takes 1 to 10 bytes, a string
    /// its length plus 1 or 2). The shared memory is about
    /// `capacity × max_item` bytes.
    ///
    /// # Errors
    ///
    /// As [`bounded`](Self::bounded).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{multiprocessing::Queue, Error};
    ///
    /// let q: Queue<Vec<u8>> = Queue::with_item_size(4, 16)?;
    /// q.put(vec![1; 8])?;
    /// assert!(matches!(q.put(vec![1; 100]), Err(Error::Encode { .. })));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn with_item_size(capacity: usize, max_item: usize) -> Result<Queue<T>, Error> {
        let params = [capacity as u64, max_item as u64, 0];
        let body = queue_body(params).ok_or_else(|| Error::InvalidArgument {
            reason: if capacity == 0 {
                String::from("a Queue needs a capacity of at least 1")
            } else {
                format!("a Queue of {capacity} items of {max_item} bytes does not fit in memory")
            },
        })?;
        let region = Region::create(Kind::Queue, params, body)?;
        Ok(Queue::from_region(region))
    }

    fn from_region(region: Region) -> Queue<T> {
        let [capacity, max_item, _] = region.params();
        // `queue_body` accepted these parameters, so they fit a usize.
        let max_item = usize::try_from(max_item).unwrap_or(0);
        Queue {
            capacity,
            max_item,
            stride: stride(max_item).unwrap_or(LEN_BYTES),
            region: Arc::new(region),
            _type: PhantomData,
        }
    }

    /// The most items the queue holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::<u8>::bounded(3)?;
    /// assert_eq!(q.capacity(), 3);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    fn head(&self) -> &AtomicU64 {
        self.region.map().atomic_u64(HEAD_AT)
    }

    fn tail(&self) -> &AtomicU64 {
        self.region.map().atomic_u64(TAIL_AT)
    }

    fn condition(&self, at: usize) -> Condition<'_> {
        let map = self.region.map();
        Condition {
            word: map.atomic_u32(at),
            sleepers: map.atomic_u32(at + 4),
        }
    }

    /// The number of items in the queue now (another process may change
    /// it at once). Python's `qsize()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::bounded(3)?;
    /// q.put(1u8)?;
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        // ORDERING: a snapshot for the caller; Acquire so that the count
        // is no older than what this thread last saw under the mutex.
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.capacity) as usize
    }

    /// Whether the queue is empty now. Python's `empty()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::<u8>::bounded(3)?;
    /// assert!(q.is_empty());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's mutex; a dead holder's is taken all the same (the
    /// indices it had not stored were never published).
    fn locked(&self) -> Result<Locked<'_>, Error> {
        match lock::take(&self.region, Wait::Block) {
            Ok(locked) | Err(LockError::HolderDied(locked)) => Ok(locked),
            Err(e) => Err(Error::Os {
                what: String::from("locking a Queue"),
                reason: e.to_string(),
            }),
        }
    }

    /// Puts `item` at the back, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the item does not encode, is larger than the
    /// queue's item size, or holds a multiprocessing handle;
    /// [`Error::Os`] if the ring's mutex cannot be taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::bounded(1)?;
    /// q.put((1u8, 'x'))?;
    /// assert_eq!(q.get()?, (1, 'x'));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<(), Error> {
        self.put_with(&item, Patience::Forever)
    }

    /// Like [`put`](Self::put), waiting at most `timeout` for room.
    /// Python's `put(item, timeout=…)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the queue stayed full, and as [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{multiprocessing::Queue, Error};
    /// use std::time::Duration;
    ///
    /// let q = Queue::bounded(1)?;
    /// q.put(1u8)?;
    /// let full = q.put_timeout(2, Duration::from_millis(1));
    /// assert!(matches!(full, Err(Error::Timeout(_))));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Error> {
        self.put_with(&item, Patience::of(timeout))
    }

    fn put_with(&self, item: &T, patience: Patience) -> Result<(), Error> {
        let not_full = self.condition(NOT_FULL_AT);
        loop {
            let mut locked = self.locked()?;
            // ORDERING: the indices are written only under the mutex we
            // hold, so Relaxed reads see the latest.
            let head = self.head().load(Ordering::Relaxed);
            let tail = self.tail().load(Ordering::Relaxed);
            if tail.wrapping_sub(head) < self.capacity {
                self.write_slot(&mut locked, tail, item)?;
                // ORDERING: Release publishes the slot's bytes to the
                // lock-free `len()` readers; the mutex orders them for
                // everyone else. Stored last: see the module docs.
                self.tail().store(tail.wrapping_add(1), Ordering::Release);
                drop(locked);
                self.condition(NOT_EMPTY_AT).notify();
                return Ok(());
            }
            let timeout = match patience {
                Patience::Never => Duration::ZERO,
                Patience::Until(deadline, timeout) if Instant::now() >= deadline => timeout,
                _ => {
                    // Full: watch for room for a moment, then sleep.
                    drop(locked);
                    let room = || {
                        // ORDERING: a hint only; the slot is claimed under the mutex.
                        let head = self.head().load(Ordering::Relaxed);
                        self.tail().load(Ordering::Relaxed).wrapping_sub(head) < self.capacity
                    };
                    if waiting::spin_until(patience.deadline(), room) {
                        continue;
                    }
                    let locked = self.locked()?;
                    let head = self.head().load(Ordering::Relaxed);
                    let tail = self.tail().load(Ordering::Relaxed);
                    if tail.wrapping_sub(head) < self.capacity {
                        continue;
                    }
                    let seq = not_full.prepare();
                    drop(locked);
                    not_full.sleep(seq, patience.deadline());
                    continue;
                }
            };
            return Err(Error::Timeout(timeout));
        }
    }

    fn write_slot(&self, locked: &mut Locked<'_>, tail: u64, item: &T) -> Result<(), Error> {
        let at = SLOTS_AT + (tail % self.capacity) as usize * self.stride;
        let slot = locked.bytes_mut(at, LEN_BYTES + self.max_item);
        let (len_bytes, room) = slot.split_at_mut(LEN_BYTES);
        let written = transfer::refusing("a Queue", || {
            postcard::to_slice(item, room).map(|b| b.len())
        });
        let len = match written {
            Ok(len) => len,
            Err(postcard::Error::SerializeBufferFull) => {
                let size = postcard::experimental::serialized_size(item)
                    .map(|n| format!("{n} bytes"))
                    .unwrap_or_else(|_| String::from("more"));
                return Err(Error::Encode {
                    what: "item",
                    reason: format!(
                        "it takes {size}, over this Queue's item size of {} bytes \
                         (see Queue::with_item_size)",
                        self.max_item
                    ),
                });
            }
            Err(e) => {
                let reason = crate::process_pool::wire::why(&e);
                return Err(Error::Encode {
                    what: "item",
                    reason,
                });
            }
        };
        // `len` is at most `max_item`, which fits a u32 (checked when the
        // queue was made: its slots fit in memory).
        len_bytes.copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }

    /// Takes the item at the front, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the item does not decode as a `T` (it is
    /// consumed all the same); [`Error::Os`] if the ring's mutex cannot be
    /// taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::bounded(2)?;
    /// q.put(1u32)?;
    /// q.put(2)?;
    /// assert_eq!((q.get()?, q.get()?), (1, 2));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn get(&self) -> Result<T, Error> {
        match self.get_with(Patience::Forever)? {
            Some(item) => Ok(item),
            None => Err(Error::Timeout(Duration::MAX)),
        }
    }

    /// Like [`get`](Self::get), waiting at most `timeout`.
    /// Python's `get(timeout=…)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the queue stayed empty, and as [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{multiprocessing::Queue, Error};
    /// use std::time::Duration;
    ///
    /// let q = Queue::<u8>::bounded(1)?;
    /// assert!(matches!(q.get_timeout(Duration::from_millis(1)), Err(Error::Timeout(_))));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        match self.get_with(Patience::of(timeout))? {
            Some(item) => Ok(item),
            None => Err(Error::Timeout(timeout)),
        }
    }

    /// Takes the item at the front if there is one, without waiting.
    /// Python's `get_nowait()` (`None` where it raises `queue.Empty`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = concurrent_futures::multiprocessing::Queue::bounded(1)?;
    /// assert_eq!(q.try_get()?, None::<u8>);
    /// q.put(3)?;
    /// assert_eq!(q.try_get()?, Some(3));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<Option<T>, Error> {
        self.get_with(Patience::Never)
    }

    fn get_with(&self, patience: Patience) -> Result<Option<T>, Error> {
        let not_empty = self.condition(NOT_EMPTY_AT);
        loop {
            let locked = self.locked()?;
            // ORDERING: as in `put_with`.
            let head = self.head().load(Ordering::Relaxed);
            let tail = self.tail().load(Ordering::Relaxed);
            if tail != head {
                // ORDERING: as for `tail` in `put_with`.
                self.head().store(head.wrapping_add(1), Ordering::Release);
                let item = self.read_slot(&locked, head);
                drop(locked);
                self.condition(NOT_FULL_AT).notify();
                return item.map(Some);
            }
            match patience {
                Patience::Never => return Ok(None),
                Patience::Until(deadline, _) if Instant::now() >= deadline => return Ok(None),
                _ => {}
            }
            drop(locked);
            let ready = || {
                // ORDERING: a hint only; the item is taken under the mutex.
                self.tail().load(Ordering::Relaxed) != self.head().load(Ordering::Relaxed)
            };
            if waiting::spin_until(patience.deadline(), ready) {
                continue;
            }
            let locked = self.locked()?;
            if self.tail().load(Ordering::Relaxed) != self.head().load(Ordering::Relaxed) {
                continue;
            }
            let seq = not_empty.prepare();
            drop(locked);
            not_empty.sleep(seq, patience.deadline());
        }
    }

    fn read_slot(&self, locked: &Locked<'_>, head: u64) -> Result<T, Error> {
        let at = SLOTS_AT + (head % self.capacity) as usize * self.stride;
        let slot = locked.bytes(at, LEN_BYTES + self.max_item);
        let (len_bytes, bytes) = slot.split_at(LEN_BYTES);
        let mut len = [0; LEN_BYTES];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len) as usize;
        let Some(bytes) = bytes.get(..len) else {
            return Err(Error::Decode {
                what: "item",
                reason: format!(
                    "its slot says {len} bytes, over the item size of {}",
                    self.max_item
                ),
            });
        };
        postcard::from_bytes(bytes).map_err(|e| Error::Decode {
            what: "item",
            reason: crate::process_pool::wire::why(&e),
        })
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            region: Arc::clone(&self.region),
            capacity: self.capacity,
            max_item: self.max_item,
            stride: self.stride,
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("type", &std::any::type_name::<T>())
            .field("capacity", &self.capacity)
            .field("max_item", &self.max_item)
            .finish_non_exhaustive()
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(serializer)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(deserializer, Kind::Queue, queue_body)?;
        Ok(Queue::from_region(region))
    }
}
