//! What a pool is given and gives back for one chunk of a [`Map`](super::Map):
//! the [`ChunkRunner`] a pool plugs in through, and the [`ChunkOutput`]
//! of values and failures it fills.

use std::time::Duration;

use crate::{Error, Future};

/// The results of one chunk and how long the worker spent on them.
///
/// Values and failures are kept apart: the values of the items that
/// succeeded, in item order, and the failed items by their index. Most
/// chunks fail nowhere, and a plain `Vec<R>` is several times smaller than
/// a `Vec<Result<R, Error>>`, which matters when a map moves millions of
/// tiny items from the workers to the consumer.
#[derive(Debug)]
pub(crate) struct ChunkOutput<R> {
    /// The values of the items that succeeded, in item order.
    pub(crate) values: Vec<R>,
    /// The items that failed: their index in the chunk (ascending) and why.
    pub(crate) failures: Vec<(usize, Error)>,
    pub(crate) elapsed: Duration,
}

impl<R> ChunkOutput<R> {
    /// Applies `f` to each item, catching each item's panic on its own (the
    /// loop runs under one `catch_unwind`, restarted after a panic, so the
    /// common case costs one catch per chunk, not one per item).
    pub(crate) fn run<T>(items: Vec<T>, f: impl Fn(T) -> R) -> Self {
        let start = std::time::Instant::now();
        let total = items.len();
        let mut values = Vec::with_capacity(total);
        let mut failures = Vec::new();
        let mut items = items.into_iter();
        loop {
            let ran = crate::unwind::catch(
                // `extend` over an exact-length input writes straight into
                // the reserved space, and keeps the count written if `f`
                // panics, so `values.len()` is still the count of items
                // that succeeded.
                || values.extend(items.by_ref().map(&f)),
                None,
            );
            match ran {
                Ok(()) => break,
                // The item that panicked was taken from `items` but left
                // no value: its index is the count of items handled so far.
                Err(error) => {
                    let index = values.len() + failures.len();
                    debug_assert_eq!(index, total - items.len() - 1, "extend kept its count");
                    failures.push((index, error));
                }
            }
        }
        ChunkOutput {
            values,
            failures,
            elapsed: start.elapsed(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.values.len() + self.failures.len()
    }
}

/// How a pool runs a chunk of a [`Map`](super::Map).
pub(crate) trait ChunkRunner<T, R>: Send {
    /// Submits the items in `items` as one task. It leaves `items` empty,
    /// and may leave its capacity there: the map fills the same buffer
    /// with the next chunk (fresh memory for every chunk costs page
    /// faults, about a nanosecond an item for a chunk of `u64`s).
    fn run_chunk(&self, items: &mut Vec<T>) -> Submitted<R>;
    /// How long one automatic chunk should take on a worker.
    fn target_chunk_time(&self) -> Duration;
    /// Takes back the (empty) vector of a chunk's values once the map has
    /// handed them all out, for a later chunk's values to go into: a pool
    /// that fills them in a fresh vector each time pays page faults for
    /// it (about a nanosecond an item of `u64`s). Dropped by default.
    fn recycle(&self, values: Vec<R>) {
        drop(values);
    }
    /// The number of chunks to keep in flight by default.
    fn default_window(&self) -> usize;
    /// The time per item an earlier map of the same function on this pool
    /// measured (`remember_per_item`), if any: a new map sizes its first
    /// automatic chunks from it instead of probing with single items.
    fn remembered_per_item(&self) -> Option<f64> {
        None
    }
    /// Keeps the time per item a map measured, for the next map of the
    /// same function. Forgotten by default.
    fn remember_per_item(&self, seconds: f64) {
        let _ = seconds;
    }
    /// Room for the next chunk's `len` items to be gathered straight into
    /// where the pool sends them from (`run_space` then submits it), for a
    /// pool that has such room for items of type `T`. None by default:
    /// the map gathers into a vector for `run_chunk`.
    fn space(&self, len: usize) -> Option<Space<T>> {
        let _ = len;
        None
    }
    /// Submits the items gathered into `space` as one chunk. Only called
    /// with a space `space` gave; the default (which `space` never gives
    /// one to) fails the chunk.
    fn run_space(&self, space: Space<T>) -> Submitted<R> {
        let (promise, future) = crate::future::Promise::new();
        let reason = format!("a pool with no room gathered {} items", space.len());
        promise.complete(Err(Error::InvalidArgument { reason }));
        future.into()
    }
}

/// Room for one chunk's items, outside any vector: where a pool sends
/// them from (the process pool's argument arena), so that they are
/// written once, by the map, and read in place by the worker. Only for
/// items with no destructor (plain numbers): a space dropped with items in
/// it leaves them where they are.
pub(crate) struct Space<T> {
    start: std::ptr::NonNull<T>,
    capacity: usize,
    len: usize,
    /// What owns the memory: the pool's, handed back to it in
    /// [`into_parts`](Self::into_parts).
    owner: Box<dyn std::any::Any + Send>,
}

impl<T> Space<T> {
    /// Room for `capacity` items at `start`, owned by `owner`.
    ///
    /// # Safety
    ///
    /// `start` is aligned for `T` and valid for writes of `capacity`
    /// items for as long as `owner` lives, and nothing else reads or
    /// writes that memory until the space is given back (`into_parts`).
    /// `T` has no destructor.
    pub(crate) unsafe fn new(
        start: std::ptr::NonNull<T>,
        capacity: usize,
        owner: Box<dyn std::any::Any + Send>,
    ) -> Self {
        debug_assert!(
            !std::mem::needs_drop::<T>(),
            "only items with no destructor"
        );
        Space {
            start,
            capacity,
            len: 0,
            owner,
        }
    }

    /// Moves items from `input` into the space until it is full or the
    /// input ends: how many it took.
    pub(crate) fn fill(&mut self, input: &mut impl Iterator<Item = T>) -> usize {
        // A local count, which the compiler keeps in a register: the
        // field, which an item's store might alias, would be stored and
        // loaded again around every item.
        let mut len = self.len;
        for item in input.by_ref().take(self.capacity - self.len) {
            // SAFETY: `len < capacity` (the `take`), and `start` is valid
            // for writes of `capacity` items (`new`'s contract).
            unsafe { self.start.as_ptr().add(len).write(item) };
            len += 1;
        }
        let taken = len - self.len;
        self.len = len;
        taken
    }

    /// The items gathered.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The number of items gathered, and the memory's owner.
    pub(crate) fn into_parts(self) -> (usize, Box<dyn std::any::Any + Send>) {
        (self.len, self.owner)
    }
}

/// A chunk handed to a pool.
pub(crate) struct Submitted<R> {
    /// Its output, once a worker has run it.
    pub(crate) future: Future<ChunkOutput<R>>,
    /// Runs the chunk on the calling thread instead, for a pool that allows
    /// it; called only after [`Future::take_over`] succeeded, so no worker
    /// has started the chunk or ever will, and nobody cancelled it.
    pub(crate) inline: Option<Box<dyn FnOnce() -> ChunkOutput<R> + Send>>,
}

impl<R> From<Future<ChunkOutput<R>>> for Submitted<R> {
    fn from(future: Future<ChunkOutput<R>>) -> Self {
        Submitted {
            future,
            inline: None,
        }
    }
}
