//! Waiting on many futures: [`wait`] and [`as_completed`].
//!
//! Both register one [`DoneQueue`] with every future they watch. A future
//! pushes its index onto the queue when it becomes done (at once, if it is
//! done when the queue registers), so the queue holds the futures in the
//! order they completed, the ones done before the call first. A cancelled
//! future is done like any other: it is pushed the moment it is cancelled,
//! which is why CPython's gh-87893 hang (a cancelled future that never
//! notified its waiters) cannot happen here. Registrations are withdrawn
//! when the call returns or the iterator is dropped.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{Error, Future};

/// The futures a waiter has heard are done, in completion order.
pub(crate) struct DoneQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Indices of the done futures not yet taken by the waiter.
    done: VecDeque<usize>,
    /// How many futures have been reported done, ever.
    done_count: usize,
    /// How many of those failed (with an error other than cancellation).
    failed_count: usize,
}

impl DoneQueue {
    fn new() -> Arc<Self> {
        Arc::new(DoneQueue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
        })
    }

    /// Called by a future, once, when it is done.
    pub(crate) fn push(&self, index: usize, failed: bool) {
        let mut state = self.state.lock();
        state.done.push_back(index);
        state.done_count += 1;
        state.failed_count += usize::from(failed);
        self.ready.notify_all();
    }

    /// Waits until `satisfied` holds for the counts or `deadline` passes.
    fn wait_for(&self, deadline: Option<Instant>, satisfied: impl Fn(&QueueState) -> bool) {
        let mut state = self.state.lock();
        while !satisfied(&state) {
            match deadline {
                Some(deadline) => {
                    if self.ready.wait_until(&mut state, deadline).timed_out() {
                        return;
                    }
                }
                None => self.ready.wait(&mut state),
            }
        }
    }

    /// The next done index, waiting until `deadline` (forever if `None`).
    fn pop(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut state = self.state.lock();
        loop {
            if let Some(index) = state.done.pop_front() {
                return Some(index);
            }
            match deadline {
                Some(deadline) => {
                    if self.ready.wait_until(&mut state, deadline).timed_out() {
                        return state.done.pop_front();
                    }
                }
                None => self.ready.wait(&mut state),
            }
        }
    }
}

/// When [`wait`] returns.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{wait, ReturnWhen, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(2);
/// let futures = vec![pool.submit(|| 1), pool.submit(|| 2)];
/// let outcome = wait(futures, ReturnWhen::AllCompleted, None);
/// assert_eq!(outcome.done.len(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future is done (finished, failed or cancelled).
    #[doc(alias = "FIRST_COMPLETED")]
    FirstCompleted,
    /// As soon as any future fails with an error; if none fails, when all
    /// are done. A cancellation is not a failure here, as in Python.
    #[doc(alias = "FIRST_EXCEPTION")]
    FirstException,
    /// When every future is done.
    #[doc(alias = "ALL_COMPLETED")]
    AllCompleted,
}

/// The two groups [`wait`] returns: the futures that were done when it
/// returned, and the rest. Each group keeps the order the futures were given
/// in.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{wait, DoneAndNotDone, ReturnWhen, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(1);
/// let DoneAndNotDone { done, not_done } =
///     wait(vec![pool.submit(|| 1)], ReturnWhen::AllCompleted, None);
/// assert_eq!((done.len(), not_done.len()), (1, 0));
/// ```
#[derive(Debug)]
pub struct DoneAndNotDone<T> {
    /// The futures that were done.
    pub done: Vec<Future<T>>,
    /// The futures that were not done yet.
    pub not_done: Vec<Future<T>>,
}

/// Waits for `futures` until `return_when` is met or `timeout` passes, and
/// returns them split into done and not done.
///
/// `None` waits without a time limit. An empty input returns at once. On
/// time-out `wait` simply returns what is done so far; it is not an error.
///
/// # Examples
///
/// Wait for the first of several tasks, then for the rest:
///
/// ```
/// use concurrent_futures::{wait, ReturnWhen, ThreadPoolExecutor};
/// use std::sync::mpsc;
///
/// let pool = ThreadPoolExecutor::new(2);
/// let (release, release_rx) = mpsc::channel::<()>();
/// let slow = pool.submit(move || release_rx.recv().unwrap());
/// let fast = pool.submit(|| ());
///
/// let first = wait(vec![slow, fast], ReturnWhen::FirstCompleted, None);
/// assert_eq!(first.done.len(), 1);
/// release.send(()).unwrap();
/// let rest = wait(first.not_done, ReturnWhen::AllCompleted, None);
/// assert!(rest.not_done.is_empty());
/// ```
pub fn wait<T, I>(
    futures: I,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> DoneAndNotDone<T>
where
    I: IntoIterator<Item = Future<T>>,
{
    // The deadline is fixed before anything else, so time spent registering
    // counts against it.
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    let futures: Vec<Future<T>> = futures.into_iter().collect();
    let total = futures.len();
    if total > 0 {
        let queue = DoneQueue::new();
        for (index, future) in futures.iter().enumerate() {
            future.add_listener(&queue, index);
        }
        queue.wait_for(deadline, |state| match return_when {
            ReturnWhen::FirstCompleted => state.done_count > 0,
            ReturnWhen::FirstException => state.failed_count > 0 || state.done_count == total,
            ReturnWhen::AllCompleted => state.done_count == total,
        });
        for future in &futures {
            future.remove_listener(&queue);
        }
    }
    let (done, not_done) = futures.into_iter().partition(Future::done);
    DoneAndNotDone { done, not_done }
}

/// The futures that [`as_completed`] and [`as_completed_timeout`] still hold,
/// with their registrations.
struct Completion<T> {
    /// The futures not yet yielded, by their input index.
    slots: Vec<Option<Future<T>>>,
    remaining: usize,
    queue: Arc<DoneQueue>,
}

impl<T> Completion<T> {
    fn new(futures: impl IntoIterator<Item = Future<T>>) -> Self {
        let slots: Vec<Option<Future<T>>> = futures.into_iter().map(Some).collect();
        let queue = DoneQueue::new();
        for (index, future) in slots.iter().enumerate() {
            if let Some(future) = future {
                future.add_listener(&queue, index);
            }
        }
        Completion {
            remaining: slots.len(),
            slots,
            queue,
        }
    }

    /// The next done future; `Err(())` if `deadline` passed first, `Ok(None)`
    /// when every future has been yielded.
    fn next(&mut self, deadline: Option<Instant>) -> Result<Option<Future<T>>, ()> {
        while self.remaining > 0 {
            let index = self.queue.pop(deadline).ok_or(())?;
            // Each future pushes its index once, so the slot is full; the
            // `if let` only guards against that ever changing.
            if let Some(future) = self.slots.get_mut(index).and_then(Option::take) {
                self.remaining -= 1;
                future.remove_listener(&self.queue);
                return Ok(Some(future));
            }
        }
        Ok(None)
    }

    fn into_remaining(mut self) -> Vec<Future<T>> {
        let slots = std::mem::take(&mut self.slots);
        slots
            .into_iter()
            .flatten()
            .inspect(|future| future.remove_listener(&self.queue))
            .collect()
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        for future in self.slots.iter().flatten() {
            future.remove_listener(&self.queue);
        }
    }
}

/// Yields each of `futures` once, as it completes: the ones already done
/// first, then the others in the order they finish.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(4);
/// let futures: Vec<_> = (0..4u64).map(|i| pool.submit(move || i * i)).collect();
/// let mut squares: Vec<u64> = as_completed(futures).map(|f| f.result().unwrap()).collect();
/// squares.sort();
/// assert_eq!(squares, [0, 1, 4, 9]);
/// ```
pub fn as_completed<T, I>(futures: I) -> AsCompleted<T>
where
    I: IntoIterator<Item = Future<T>>,
{
    AsCompleted {
        completion: Completion::new(futures),
    }
}

/// Like [`as_completed`], but gives up `timeout` after the call (not after
/// the first `next()`, as Python does).
///
/// The iterator yields `Ok(future)` for each future as it completes. If the
/// deadline passes while some are still running, it yields one
/// `Err(Error::Timeout)` and then ends; the unfinished futures are not lost:
/// [`AsCompletedTimeout::into_remaining`] hands them back.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{as_completed_timeout, Error, ThreadPoolExecutor};
/// use std::{sync::mpsc, time::Duration};
///
/// let pool = ThreadPoolExecutor::new(2);
/// let (release, release_rx) = mpsc::channel::<()>();
/// let futures = vec![pool.submit(|| ()), pool.submit(move || release_rx.recv().unwrap())];
/// let mut it = as_completed_timeout(futures, Duration::from_millis(50));
/// assert!(it.next().unwrap().is_ok());
/// assert!(matches!(it.next(), Some(Err(Error::Timeout(_)))));
/// assert!(it.next().is_none());
/// release.send(()).unwrap();
/// assert_eq!(it.into_remaining().len(), 1);
/// ```
pub fn as_completed_timeout<T, I>(futures: I, timeout: Duration) -> AsCompletedTimeout<T>
where
    I: IntoIterator<Item = Future<T>>,
{
    let deadline = Instant::now().checked_add(timeout);
    AsCompletedTimeout {
        completion: Completion::new(futures),
        deadline,
        timeout,
        timed_out: false,
    }
}

/// The iterator [`as_completed`] returns.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(1);
/// let mut it = as_completed(vec![pool.submit(|| 1)]);
/// assert_eq!(it.next().unwrap().result(), Ok(1));
/// assert!(it.next().is_none());
/// ```
pub struct AsCompleted<T> {
    completion: Completion<T>,
}

impl<T> AsCompleted<T> {
    /// Stops iterating and hands back the futures not yielded yet, in input
    /// order.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{as_completed, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let it = as_completed(vec![pool.submit(|| 1), pool.submit(|| 2)]);
    /// assert_eq!(it.into_remaining().len(), 2);
    /// ```
    pub fn into_remaining(self) -> Vec<Future<T>> {
        self.completion.into_remaining()
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Future<T>;

    fn next(&mut self) -> Option<Future<T>> {
        // Without a deadline `next` cannot time out.
        self.completion.next(None).unwrap_or(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.completion.remaining, Some(self.completion.remaining))
    }
}

impl<T> ExactSizeIterator for AsCompleted<T> {}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.completion.remaining)
            .finish()
    }
}

/// The iterator [`as_completed_timeout`] returns.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{as_completed_timeout, ThreadPoolExecutor};
/// use std::time::Duration;
///
/// let pool = ThreadPoolExecutor::new(1);
/// for f in as_completed_timeout(vec![pool.submit(|| 1)], Duration::from_secs(60)) {
///     assert_eq!(f.unwrap().result(), Ok(1));
/// }
/// ```
pub struct AsCompletedTimeout<T> {
    completion: Completion<T>,
    /// `None` when the time-out is too large to represent: no deadline.
    deadline: Option<Instant>,
    timeout: Duration,
    timed_out: bool,
}

impl<T> AsCompletedTimeout<T> {
    /// Hands back the futures not yielded yet, in input order (after a
    /// time-out, the ones still running).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{as_completed_timeout, ThreadPoolExecutor};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let it = as_completed_timeout(vec![pool.submit(|| 1)], Duration::from_secs(1));
    /// assert_eq!(it.into_remaining().len(), 1);
    /// ```
    pub fn into_remaining(self) -> Vec<Future<T>> {
        self.completion.into_remaining()
    }
}

impl<T> Iterator for AsCompletedTimeout<T> {
    type Item = Result<Future<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.timed_out {
            return None;
        }
        match self.completion.next(self.deadline) {
            Ok(next) => next.map(Ok),
            Err(()) => {
                self.timed_out = true;
                Some(Err(Error::Timeout(self.timeout)))
            }
        }
    }
}

impl<T> fmt::Debug for AsCompletedTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("remaining", &self.completion.remaining)
            .field("timeout", &self.timeout)
            .field("timed_out", &self.timed_out)
            .finish()
    }
}
