//! The lazy, ordered, bounded `map` iterator that both pools return.
//!
//! [`Map`] pulls items from its input only as it needs them, groups them
//! into chunks, and keeps at most a window of chunks in flight on the pool.
//! Results come out in input order, each item's on its own: a chunk reports
//! a result per item, so one failing item does not fail its chunk mates.
//! Memory is bounded by `(window + 1) × chunksize` items (the window in
//! flight and the chunk being handed out) whatever the length of the input, so an endless iterator works. Dropping the iterator cancels the
//! chunks that have not started.
//!
//! # Automatic chunk size
//!
//! Each chunk reports how long its items took on the worker. With
//! [`Chunksize::Auto`] the next chunk is sized so that it takes about the
//! pool's target chunk time (long enough to hide the cost of handing a
//! chunk over, short enough to keep every worker busy to the end). The first
//! chunks hold one item each, so slow items are never batched blindly;
//! except that a process pool remembers the time per item the last map of
//! each function measured, and a later map of the same function starts
//! from a quarter of the target time by that measure (a program that maps
//! batch after batch pays for the probing once).
//!
//! A pool plugs in through [`ChunkRunner`]: "run these items, give me a
//! future of their results".

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use crate::Error;

mod chunk;
pub(crate) use chunk::{ChunkOutput, ChunkRunner, Space, Submitted};

/// A chunk in flight and the number of items in it.
struct InFlight<R> {
    len: usize,
    chunk: Submitted<R>,
}

/// How many items a [`Map`] hands to a worker at a time.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Chunksize, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(2);
/// let doubled: Vec<u32> = pool
///     .map(|x| x * 2, 0..100u32)
///     .chunksize(Chunksize::Fixed(std::num::NonZeroUsize::new(10).unwrap()))
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(doubled[99], 198);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunksize {
    /// Sized from the measured time per item (the default).
    #[default]
    Auto,
    /// Exactly this many items per chunk (the last one may hold fewer).
    Fixed(NonZeroUsize),
}

/// The largest automatic chunk, so that a window of chunks stays small in
/// memory even for the tiniest items: for a runner whose chunks should
/// take [`CAP_TIME`] or less (see [`Map::max_auto_chunk`]).
const MAX_AUTO_CHUNK: usize = 1 << 16;
/// The target chunk time up to which [`MAX_AUTO_CHUNK`] holds.
const CAP_TIME: Duration = Duration::from_millis(4);

/// The lazy, ordered iterator that `map` returns; yields one
/// `Result<R, Error>` per input item, in input order.
///
/// Nothing is submitted until the first call to [`next`](Iterator::next);
/// then a window of chunks is kept in flight, refilled as results are
/// taken. The options ([`chunksize`](Map::chunksize),
/// [`window`](Map::window), [`timeout`](Map::timeout)) are set before the
/// first `next`.
///
/// Dropping a `Map` cancels every chunk that has not started; the ones
/// running finish and their results are dropped.
///
/// # Examples
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(4);
/// let squares: Vec<u64> = pool
///     .map(|x| x * x, 1..=5u64)
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// ```
///
/// It works over an endless input, in constant memory:
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(2);
/// let first: Vec<u64> = pool.map(|x| x + 1, 0u64..).take(3).map(Result::unwrap).collect();
/// assert_eq!(first, [1, 2, 3]);
/// ```
#[must_use = "a Map is lazy and runs nothing until it is iterated"]
pub struct Map<I: Iterator, R> {
    input: I,
    input_done: bool,
    runner: Box<dyn ChunkRunner<I::Item, R>>,
    chunksize: Chunksize,
    window: usize,
    /// Whether the user set the window (else it grows for small chunks).
    window_set: bool,
    /// Chunks in flight, oldest first.
    in_flight: VecDeque<InFlight<R>>,
    /// Where the next chunk's items are gathered (kept between chunks).
    gathered: Vec<I::Item>,
    /// Values of the current chunk not yet yielded, if no item of it
    /// failed: the fast lane, which `next` drains with nothing else to
    /// check. A vector's iterator, whose `next` is a pointer compare and
    /// bump: a deque's `pop_front` here (wrapping head, length) made a
    /// `collect` over tiny items 60% slower (2.4 against 1.5 ns an item).
    values: std::vec::IntoIter<R>,
    /// Values of the current chunk not yet yielded, if some item of it
    /// failed: interleaved with `failures` by position, in `next_slow`.
    mixed: std::vec::IntoIter<R>,
    /// Failures of the current chunk not yet yielded.
    failures: std::vec::IntoIter<(usize, Error)>,
    /// The index of the current chunk's next item in `mixed` or `failures`.
    position: usize,
    /// The index of the current chunk's next failure (`usize::MAX` if none).
    next_failure: usize,
    /// Measured seconds per item (automatic chunking), once known.
    per_item: Option<f64>,
    /// The seconds and items measured so far, each chunk's weight halved
    /// at every later chunk (see [`observe`](Self::observe)).
    observed: (f64, f64),
    /// The size of the next automatic chunk.
    auto_size: usize,
    created: Instant,
    timeout: Option<Duration>,
    finished: bool,
}

impl<I: Iterator, R> Map<I, R> {
    pub(crate) fn new(runner: Box<dyn ChunkRunner<I::Item, R>>, input: I) -> Self {
        let window = runner.default_window().max(1);
        let remembered = runner.remembered_per_item();
        let mut map = Map {
            input,
            input_done: false,
            runner,
            chunksize: Chunksize::Auto,
            window,
            window_set: false,
            in_flight: VecDeque::new(),
            gathered: Vec::new(),
            values: Vec::new().into_iter(),
            mixed: Vec::new().into_iter(),
            failures: Vec::new().into_iter(),
            position: 0,
            next_failure: usize::MAX,
            per_item: None,
            observed: (0.0, 0.0),
            auto_size: 1,
            created: Instant::now(),
            timeout: None,
            finished: false,
        };
        if let Some(per_item) = remembered {
            map.recall(per_item);
        }
        map
    }

    /// Starts from the time per item an earlier map of the same function
    /// measured, rather than from one-item chunks: the first automatic
    /// chunks take a quarter of the target time by that measure (in case
    /// this input's items are slower), and the first chunk measured here
    /// outweighs it (it counts as one item; see `observe`).
    fn recall(&mut self, per_item: f64) {
        if !(per_item.is_finite() && per_item >= 0.0) {
            return;
        }
        self.per_item = Some(per_item);
        self.observed = (per_item, 1.0);
        let target = self.runner.target_chunk_time().as_secs_f64();
        let ideal = if per_item > 0.0 {
            target / per_item / 4.0
        } else {
            f64::INFINITY
        };
        // `as` saturates for floats out of range.
        self.auto_size = (ideal as usize).clamp(1, self.max_auto_chunk());
    }

    /// Sets how many items go to a worker at a time (Python's `chunksize`).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Chunksize, ThreadPoolExecutor};
    /// use std::num::NonZeroUsize;
    ///
    /// let pool = ThreadPoolExecutor::new(2);
    /// let n = pool
    ///     .map(|x: u8| x, 0..10)
    ///     .chunksize(Chunksize::Fixed(NonZeroUsize::new(3).unwrap()))
    ///     .count();
    /// assert_eq!(n, 10);
    /// ```
    pub fn chunksize(mut self, chunksize: Chunksize) -> Self {
        self.chunksize = chunksize;
        self
    }

    /// Sets how many chunks may be in flight at once (at least one); with
    /// the chunk size it bounds how far ahead of the consumer the pool works
    /// and how much memory the map holds (Python 3.14's `buffersize`, in
    /// chunks). By default it is twice the number of workers, widened for
    /// chunks of fewer than four items so that about eight items per worker
    /// are in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(2);
    /// assert_eq!(pool.map(|x: u8| x, 0..10).window(1).count(), 10);
    /// ```
    #[doc(alias = "buffersize")]
    pub fn window(mut self, chunks: usize) -> Self {
        self.window = chunks.max(1);
        self.window_set = true;
        self
    }

    /// Gives up once `timeout` has passed since `map` was called: the item
    /// being waited for yields [`Error::Timeout`], the iterator ends and the
    /// chunks not started are cancelled (Python's `map(timeout=…)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPoolExecutor::new(2);
    /// let all_ok = pool.map(|x: u8| x, 0..10).timeout(Duration::from_secs(60)).all(|r| r.is_ok());
    /// assert!(all_ok);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn next_chunk_len(&self) -> usize {
        match self.chunksize {
            Chunksize::Fixed(n) => n.get(),
            Chunksize::Auto => self.guided(self.auto_size),
        }
    }

    /// Shrinks an automatic chunk towards the end of an input of known
    /// length, so that the workers finish together: no chunk takes more
    /// than a share of what is left (each worker gets at least two more
    /// chunks), but none shrinks below a quarter of the target size, where
    /// handing chunks over would start to cost more than the imbalance it
    /// saves. Chunks of the largest size are left alone: their items are
    /// so small that a chunk ends well within the target time anyway.
    fn guided(&self, size: usize) -> usize {
        if size >= self.max_auto_chunk() {
            return size;
        }
        match self.input.size_hint() {
            (left, Some(exact)) if left == exact => {
                let share = left.div_ceil(self.window.max(1));
                size.min(share.max(size / 4)).max(1)
            }
            _ => size,
        }
    }

    /// How many chunks of `len` items may be in flight. Unless the user set
    /// it, the window holds at least four items per chunk it would hold by
    /// default (eight per worker), so that small chunks (`chunksize` 1, or
    /// automatic chunks of a few slow items) do not leave workers idle
    /// behind one slow item at the head of the window.
    fn window_for(&self, len: usize) -> usize {
        // Nor is it widened for the one-item chunks an automatic map starts
        // with: the first of them sizes the next chunks, which should not
        // wait behind a dozen more round trips of one item each.
        let probing = self.chunksize == Chunksize::Auto && self.per_item.is_none();
        if self.window_set || probing {
            self.window
        } else {
            self.window.max((4 * self.window).div_ceil(len.max(1)))
        }
    }

    /// Tops the window up with new chunks from the input.
    fn refill(&mut self) {
        while !self.input_done && self.in_flight.len() < self.window_for(self.next_chunk_len()) {
            let len = self.next_chunk_len();
            // Straight into where the pool sends items from, if it has
            // room for them; else into a vector it takes.
            let (taken, chunk) = match self.runner.space(len) {
                Some(mut space) => {
                    let taken = space.fill(&mut self.input);
                    if taken < len {
                        self.input_done = true;
                    }
                    if taken == 0 {
                        break;
                    }
                    (taken, self.runner.run_space(space))
                }
                None => {
                    self.gathered.clear();
                    self.gathered.extend(self.input.by_ref().take(len));
                    if self.gathered.len() < len {
                        self.input_done = true;
                    }
                    if self.gathered.is_empty() {
                        break;
                    }
                    let taken = self.gathered.len();
                    (taken, self.runner.run_chunk(&mut self.gathered))
                }
            };
            self.in_flight.push_back(InFlight { len: taken, chunk });
        }
    }

    /// Learns from a finished chunk how long an item takes and sizes the
    /// next automatic chunk from it.
    ///
    /// The estimate is the time per item over the chunks seen so far, each
    /// weighed by its items and halved at every later chunk: a chunk of
    /// thousands of items outweighs the one-item chunks a map starts with
    /// (whose single item, run cold, says little), so the chunk size jumps
    /// to its target in one step; among chunks of similar size the latest
    /// counts for about half, so a cost that drifts along the input is
    /// followed.
    ///
    /// A chunk in which an item failed teaches nothing about the time per
    /// item (a worker that died or was killed for its time limit reports
    /// less time than its items took), so it never makes chunks bigger:
    /// the next automatic chunk is half the size instead, so that a time
    /// limit or a crash costs little more than the item that caused it.
    fn observe(&mut self, items: usize, elapsed: Duration, failed: bool) {
        if failed {
            self.auto_size = (self.auto_size / 2).max(1);
            return;
        }
        if items == 0 {
            return;
        }
        let (seconds, counted) = self.observed;
        self.observed = (
            seconds / 2.0 + elapsed.as_secs_f64(),
            counted / 2.0 + items as f64,
        );
        let per_item = self.observed.0 / self.observed.1;
        self.per_item = Some(per_item);
        let target = self.runner.target_chunk_time().as_secs_f64();
        let cap = self.max_auto_chunk();
        let ideal = if per_item > 0.0 {
            target / per_item
        } else {
            cap as f64
        };
        // `as` saturates for floats out of range, and NaN becomes 0.
        self.auto_size = (ideal as usize).clamp(1, cap);
    }

    /// The largest automatic chunk: [`MAX_AUTO_CHUNK`], or for a runner
    /// that wants chunks longer than [`CAP_TIME`] (an MPI lane: 20 ms)
    /// that many times more, so that a chunk of tiny items still takes
    /// about its target time (at 100 ns an item, 65 536 items take 6.5
    /// ms). Memory stays bounded the same way: by the target time.
    fn max_auto_chunk(&self) -> usize {
        let times = self.runner.target_chunk_time().as_secs_f64() / CAP_TIME.as_secs_f64();
        // `as` saturates, and NaN becomes 0.
        MAX_AUTO_CHUNK.saturating_mul((times.ceil() as usize).max(1))
    }

    /// Whether a chunk of `len` items is expected to take little enough
    /// that spinning for it beats sleeping: short chunks (tiny items, with
    /// chunks capped in size) are worth a spin; chunks sized to the target
    /// time are not, and the spin would only take a CPU from the workers.
    fn expect_soon(&self, len: usize) -> bool {
        const SOON: f64 = 100e-6;
        self.per_item
            .is_some_and(|per_item| per_item * len as f64 <= SOON)
    }

    /// Cancels everything in flight and stops.
    fn stop(&mut self) {
        self.finished = true;
        self.input_done = true;
        for in_flight in self.in_flight.drain(..) {
            in_flight.chunk.future.cancel();
        }
    }
}

impl<I: Iterator, R> Map<I, R> {
    /// Makes `output` the current chunk.
    fn set_current(&mut self, output: ChunkOutput<R>) {
        if output.failures.is_empty() {
            // The last chunk's vector, empty, goes back to the pool.
            let done = std::mem::replace(&mut self.values, output.values.into_iter());
            let done = buffer_of(done);
            if done.capacity() > 0 {
                self.runner.recycle(done);
            }
        } else {
            self.mixed = output.values.into_iter();
        }
        self.failures = output.failures.into_iter();
        self.position = 0;
        self.next_failure = self.failures.as_slice().first().map_or(usize::MAX, |f| f.0);
    }

    /// Everything but the common case of a value ready in the current chunk:
    /// a failure to yield, or the next chunk to wait for.
    #[cold]
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R, Error>> {
        loop {
            if self.position == self.next_failure {
                self.position += 1;
                let failure = self.failures.next().map(|(_, error)| error);
                self.next_failure = self.failures.as_slice().first().map_or(usize::MAX, |f| f.0);
                return failure.map(Err);
            }
            if let Some(value) = self.mixed.next() {
                self.position += 1;
                return Some(Ok(value));
            }
            if let Some(value) = self.values.next() {
                return Some(Ok(value));
            }
            if self.finished {
                return None;
            }
            self.refill();
            let Some(InFlight { len, chunk }) = self.in_flight.pop_front() else {
                self.finished = true;
                return None;
            };
            let Submitted { future, inline } = chunk;
            // A chunk no worker has started yet is run here rather than
            // waited for: the consumer would otherwise sit idle (or spin)
            // while the workers are busy with later chunks. Not under a
            // timeout, which the consumer must stay free to watch.
            if let Some(run) = inline {
                if self.timeout.is_none() && future.take_over() {
                    // The window stays full while this chunk runs here, so
                    // that the workers do not run dry before it ends.
                    self.refill();
                    let output = run();
                    self.observe(output.len(), output.elapsed, !output.failures.is_empty());
                    self.set_current(output);
                    self.refill();
                    continue;
                }
            }
            let deadline = self
                .timeout
                .and_then(|timeout| self.created.checked_add(timeout));
            let timeout = self.timeout.unwrap_or_default();
            let spin = self.expect_soon(len);
            let outcome = match future.result_until_spinning(deadline, timeout, spin) {
                Err(Error::Timeout(_)) => {
                    future.cancel();
                    self.stop();
                    return Some(Err(Error::Timeout(timeout)));
                }
                outcome => outcome,
            };
            match outcome {
                Ok(output) => {
                    self.observe(output.len(), output.elapsed, !output.failures.is_empty());
                    self.set_current(output);
                }
                // The chunk failed as a whole (cancelled, shut down, broken
                // pool): every item in it gets that error.
                Err(error) => {
                    let failures = (0..len).map(|index| (index, error.clone())).collect();
                    self.set_current(ChunkOutput {
                        values: Vec::new(),
                        failures,
                        elapsed: Duration::ZERO,
                    });
                }
            }
            // Keep the pool busy while the consumer works on this chunk.
            self.refill();
        }
    }
}

impl<I: Iterator, R> Iterator for Map<I, R> {
    type Item = Result<R, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(value) = self.values.next() {
            return Some(Ok(value));
        }
        self.next_slow()
    }

    /// The items one after another, as `next` gives them; the values of a
    /// chunk in which nothing failed go to `f` in a loop of their own,
    /// which the compiler keeps tight (`count`, `sum`, `for_each`, `fold`
    /// and the adapters over them come here).
    fn fold<B, F>(mut self, init: B, mut f: F) -> B
    where
        F: FnMut(B, Self::Item) -> B,
    {
        let mut acc = init;
        loop {
            acc = self
                .values
                .by_ref()
                .fold(acc, |acc, value| f(acc, Ok(value)));
            match self.next_slow() {
                Some(item) => acc = f(acc, item),
                None => return acc,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.finished {
            let left = self.values.len() + self.mixed.len() + self.failures.len();
            return (left, Some(left));
        }
        let held = self.values.len()
            + self.mixed.len()
            + self.failures.len()
            + self
                .in_flight
                .iter()
                .map(|in_flight| in_flight.len)
                .sum::<usize>();
        let (low, high) = self.input.size_hint();
        (
            held.saturating_add(low),
            high.and_then(|high| high.checked_add(held)),
        )
    }
}

/// The buffer of a drained vector iterator, empty, with its capacity:
/// collecting a `vec::IntoIter` through an adapter reuses its allocation
/// (std's in-place collection), and `filter` drops whatever was left.
/// Should a std release stop doing so, the buffer comes back without
/// capacity and is merely not reused (the test below would say).
fn buffer_of<R>(drained: std::vec::IntoIter<R>) -> Vec<R> {
    drained.filter(|_| false).collect()
}

impl<I: Iterator, R> Drop for Map<I, R> {
    fn drop(&mut self) {
        self.stop();
        if let Some(per_item) = self.per_item {
            self.runner.remember_per_item(per_item);
        }
    }
}

impl<I: Iterator, R> fmt::Debug for Map<I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("chunksize", &self.chunksize)
            .field("window", &self.window)
            .field("in_flight", &self.in_flight.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
