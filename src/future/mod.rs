//! [`Future<T>`]: the one handle both pools return, and the crate-private
//! [`Promise<T>`] that completes it.
//!
//! # The state machine
//!
//! ```text
//!            start()             complete(Ok)
//! Pending ──────────► Running ──────────────► Finished(value)
//!    │                   │     complete(Err)
//!    │                   └──────────────────► Failed(error)
//!    │ cancel() / a pool that drops the task before it ran
//!    └──────────────────────────────────────► Cancelled
//! ```
//!
//! A future moves out of `Pending`/`Running` exactly once. That move, the
//! notification of every waiter (threads blocked in [`Future::result`],
//! [`wait`](crate::wait), [`as_completed`](crate::as_completed), an async
//! waker) and the hand-over of the done-callbacks all happen under the
//! future's one mutex, so no waiter can register after the notification and
//! miss it, and none is notified twice.
//!
//! Callbacks run after the mutex is released, on the thread that completed
//! the future (or at once on the registering thread if it is already done),
//! each inside `catch_unwind`, so a panicking callback neither poisons the
//! future nor kills a pool thread.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::wait::DoneQueue;
use crate::Error;

mod promise;
mod state;
mod task;
pub(crate) use promise::Promise;
pub(crate) use state::{pause, spinning_helps, Canceller, Claim};
use state::{run_callback, try_cancel, Cancel, Inner, Listener, Phase};
pub(crate) use task::Task;

type Callback<T> = Box<dyn FnOnce(&Future<T>) + Send>;

/// A handle to the result of a task running on a pool.
///
/// Returned by [`ThreadPoolExecutor::submit`](crate::ThreadPoolExecutor::submit)
/// (and, with the same type, by the process pool). It is the Rust form of
/// Python's `concurrent.futures.Future`: ask whether it is
/// [`done`](Future::done) or [`running`](Future::running),
/// [`cancel`](Future::cancel) it before it starts, block for its
/// [`result`](Future::result) (with a time limit if you like), attach
/// [callbacks](Future::add_done_callback), or `.await` it from async code.
///
/// A `Future` is a unique handle: it is not `Clone`, and taking the result
/// out ([`result`](Future::result) consumes the handle) can happen once.
/// Dropping a `Future` does not cancel its task; call
/// [`cancel`](Future::cancel) for that.
///
/// # Examples
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(2);
/// let f = pool.submit(|| 6 * 7);
/// assert_eq!(f.result().unwrap(), 42);
/// ```
///
/// From async code, a `Future` is a [`std::future::Future`] whose output is
/// `Result<T, Error>`:
///
/// ```
/// # use concurrent_futures::ThreadPoolExecutor;
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
/// #         std::thread::park();
/// #     }
/// # }
/// let pool = ThreadPoolExecutor::new(2);
/// let answer = block_on(async { pool.submit(|| 6 * 7).await });
/// assert_eq!(answer, Ok(42));
/// ```
///
/// The value must be `Send`, because it crosses from the worker to you:
///
/// ```compile_fail
/// use concurrent_futures::ThreadPoolExecutor;
/// let pool = ThreadPoolExecutor::new(1);
/// let f = pool.submit(|| std::rc::Rc::new(1)); // Rc is not Send
/// ```
#[must_use = "a Future does nothing by itself; call result() to get the value"]
pub struct Future<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Future<T> {
    /// Whether the task has finished, failed or been cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 1);
    /// f.wait();
    /// assert!(f.done());
    /// ```
    pub fn done(&self) -> bool {
        self.inner.state.lock().phase.is_done()
    }

    /// Whether a worker is executing the task right now.
    ///
    /// Unlike Python's, this is `false` while the task only waits in the
    /// pool's queue: a task that has not started can still be
    /// [cancelled](Future::cancel).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, release_rx) = mpsc::channel::<()>();
    /// let f = pool.submit(move || {
    ///     started_tx.send(()).unwrap();
    ///     release_rx.recv().unwrap();
    /// });
    /// started.recv().unwrap();
    /// assert!(f.running());
    /// release.send(()).unwrap();
    /// f.result().unwrap();
    /// ```
    pub fn running(&self) -> bool {
        match &self.inner.state.lock().phase {
            Phase::Running => true,
            Phase::Handed(claim) => claim.started(),
            _ => false,
        }
    }

    /// Whether the future was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 1);
    /// let _ = f.result_timeout(std::time::Duration::from_secs(10));
    /// assert!(!f.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        matches!(self.inner.state.lock().phase, Phase::Cancelled)
    }

    /// Cancels the task if it has not started yet.
    ///
    /// Returns `true` if the future is cancelled now (including when it
    /// already was), `false` if the task is running or done. A cancelled
    /// future is done at once for every waiter; its
    /// [`result`](Future::result) is [`Error::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let (release, release_rx) = mpsc::channel::<()>();
    /// let busy = pool.submit(move || release_rx.recv().unwrap());
    /// let queued = pool.submit(|| 2);
    /// assert!(queued.cancel());
    /// assert_eq!(queued.result(), Err(Error::Cancelled));
    /// release.send(()).unwrap();
    /// busy.result().unwrap();
    /// ```
    pub fn cancel(&self) -> bool {
        try_cancel(&self.inner) != Cancel::TooLate
    }

    /// Cancels the future for a caller that will do its task itself:
    /// `true` only if this very call moved it from pending to cancelled, so
    /// that no worker has started the task or ever will, and nobody else
    /// cancelled it (a cancelled task must not run).
    pub(crate) fn take_over(&self) -> bool {
        try_cancel(&self.inner) == Cancel::Now
    }

    /// Blocks until the future is done and returns its outcome.
    ///
    /// # Errors
    ///
    /// The task's failure: [`Error::Panicked`], [`Error::Cancelled`],
    /// [`Error::Shutdown`], [`Error::BrokenPool`], …; and
    /// [`Error::AlreadyRetrieved`] if the value was taken out already by
    /// [`try_result`](Future::try_result) or
    /// [`result_timeout`](Future::result_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// assert_eq!(pool.submit(|| "hello").result(), Ok("hello"));
    /// ```
    pub fn result(self) -> Result<T, Error> {
        self.inner.spin_briefly(None);
        let mut state = self.inner.state.lock();
        while !state.phase.is_done() {
            self.inner.done.wait(&mut state);
        }
        state.phase.take()
    }

    /// Like [`result`](Future::result), but gives up after `timeout`.
    ///
    /// On time-out the future is left as it was (the task goes on) and can be
    /// waited for again. On success the value is taken out of the future.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the future is not done within `timeout`;
    /// otherwise as [`result`](Future::result).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::{sync::mpsc, time::Duration};
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let (release, release_rx) = mpsc::channel::<()>();
    /// let f = pool.submit(move || release_rx.recv().unwrap());
    /// assert!(matches!(f.result_timeout(Duration::from_millis(1)), Err(Error::Timeout(_))));
    /// release.send(()).unwrap();
    /// assert_eq!(f.result_timeout(Duration::from_secs(60)), Ok(()));
    /// ```
    #[doc(alias = "result")]
    pub fn result_timeout(&self, timeout: Duration) -> Result<T, Error> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.result_until(Some(deadline), timeout),
            None => self.result_until(None, timeout),
        }
    }

    /// Like [`result_timeout`](Future::result_timeout), with a point in time
    /// instead of a duration.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the future is not done by `deadline`; otherwise
    /// as [`result`](Future::result).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::time::{Duration, Instant};
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 5);
    /// assert_eq!(f.result_deadline(Instant::now() + Duration::from_secs(60)), Ok(5));
    /// ```
    pub fn result_deadline(&self, deadline: Instant) -> Result<T, Error> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.result_until(Some(deadline), timeout)
    }

    fn result_until(&self, deadline: Option<Instant>, timeout: Duration) -> Result<T, Error> {
        self.result_until_spinning(deadline, timeout, true)
    }

    /// Like [`result_deadline`](Future::result_deadline) (or `result` for no
    /// deadline), spinning briefly before sleeping only if `spin`: `map`
    /// spins for chunks expected to finish soon and leaves the CPU to the
    /// workers for long ones.
    pub(crate) fn result_until_spinning(
        &self,
        deadline: Option<Instant>,
        timeout: Duration,
        spin: bool,
    ) -> Result<T, Error> {
        if spin {
            self.inner.spin_briefly(deadline);
        }
        let mut state = self.inner.state.lock();
        while !state.phase.is_done() {
            match deadline {
                Some(deadline) => {
                    if self.inner.done.wait_until(&mut state, deadline).timed_out()
                        && !state.phase.is_done()
                    {
                        return Err(Error::Timeout(timeout));
                    }
                }
                None => self.inner.done.wait(&mut state),
            }
        }
        state.phase.take()
    }

    /// The outcome if the future is done, without blocking; `None` if it is
    /// not done yet. A value is taken out of the future.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 3);
    /// f.wait();
    /// assert_eq!(f.try_result(), Some(Ok(3)));
    /// ```
    pub fn try_result(&self) -> Option<Result<T, Error>> {
        let mut state = self.inner.state.lock();
        state.phase.is_done().then(|| state.phase.take())
    }

    /// Blocks until the future is done and returns a clone of its outcome,
    /// leaving the value in the future: Python's `result()`, which can be
    /// called any number of times, by anyone who holds the future (a
    /// [done-callback](Future::add_done_callback) and the thread that
    /// waits, say).
    ///
    /// [`result`](Future::result), [`try_result`](Future::try_result) and
    /// `.await` move the value out instead, which is Rust's way and needs
    /// no `Clone`; after one of them this gives
    /// [`Error::AlreadyRetrieved`].
    ///
    /// # Errors
    ///
    /// As [`result`](Future::result).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| String::from("shared"));
    /// assert_eq!(f.result_cloned().unwrap(), "shared");
    /// assert_eq!(f.result_cloned().unwrap(), "shared");
    /// assert_eq!(f.result().unwrap(), "shared"); // the value is still there
    /// ```
    #[doc(alias = "result")]
    #[doc(alias = "peek")]
    pub fn result_cloned(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.wait();
        self.inner.state.lock().phase.peek()
    }

    /// A clone of the outcome if the future is done, without blocking;
    /// `None` if it is not done yet. The value stays in the future, as with
    /// [`result_cloned`](Future::result_cloned): this is the way for a
    /// [done-callback](Future::add_done_callback) to read the value and
    /// leave it for whoever waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let (tx, rx) = mpsc::channel();
    /// let f = pool.submit(|| vec![1, 2, 3]);
    /// f.add_done_callback(move |f| tx.send(f.try_result_cloned()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), Some(Ok(vec![1, 2, 3])));
    /// assert_eq!(f.result(), Ok(vec![1, 2, 3])); // still there for the waiter
    /// ```
    #[doc(alias = "peek")]
    pub fn try_result_cloned(&self) -> Option<Result<T, Error>>
    where
        T: Clone,
    {
        let state = self.inner.state.lock();
        state.phase.is_done().then(|| state.phase.peek())
    }

    /// Blocks until the future is done and returns its error, or `None` if
    /// it succeeded. The value, if any, stays in the future.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| -> u8 { panic!("no") });
    /// assert!(f.exception().is_some());
    /// ```
    pub fn exception(&self) -> Option<Error> {
        self.inner.spin_briefly(None);
        let mut state = self.inner.state.lock();
        while !state.phase.is_done() {
            self.inner.done.wait(&mut state);
        }
        match &state.phase {
            Phase::Failed(error) => Some((**error).clone()),
            Phase::Cancelled => Some(Error::Cancelled),
            _ => None,
        }
    }

    /// Blocks until the future is done, without taking its result.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 1);
    /// f.wait();
    /// assert!(f.done());
    /// ```
    pub fn wait(&self) {
        self.inner.spin_briefly(None);
        let mut state = self.inner.state.lock();
        while !state.phase.is_done() {
            self.inner.done.wait(&mut state);
        }
    }

    /// Blocks until the future is done or `timeout` has passed; returns
    /// whether it is done.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 1);
    /// assert!(f.wait_timeout(Duration::from_secs(60)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => {
                self.wait();
                true
            }
        }
    }

    /// Blocks until the future is done or `deadline` has come; returns
    /// whether it is done.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::time::{Duration, Instant};
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let f = pool.submit(|| 1);
    /// assert!(f.wait_deadline(Instant::now() + Duration::from_secs(60)));
    /// ```
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        self.inner.spin_briefly(Some(deadline));
        let mut state = self.inner.state.lock();
        while !state.phase.is_done() {
            if self.inner.done.wait_until(&mut state, deadline).timed_out() {
                return state.phase.is_done();
            }
        }
        true
    }

    /// Registers `callback` to run once when the future is done.
    ///
    /// If the future is done already, `callback` runs at once on this
    /// thread; otherwise it runs on the thread that completes the future,
    /// after every blocked waiter has been woken. Callbacks run in the order
    /// they were added. A callback that panics is contained: the panic is
    /// reported by the panic hook as usual and the future, the other
    /// callbacks and the pool's worker carry on.
    ///
    /// The callback receives the future, done. Reading its state and its
    /// [`exception`](Future::exception) costs nobody anything; so does
    /// reading the value with [`try_result_cloned`](Future::try_result_cloned)
    /// (for `T: Clone`). But the value is one value, and it moves: a
    /// callback that takes it with [`try_result`](Future::try_result)
    /// takes it from everyone else, and every later
    /// [`result`](Future::result), `.await` or `try_result` (another
    /// callback's, the waiting thread's) gets [`Error::AlreadyRetrieved`].
    /// The rule: take the value in one place only; everywhere else, read a
    /// clone or the error. Python's `result()` may be called any number of
    /// times because it hands out shared references, which is what
    /// [`result_cloned`](Future::result_cloned) gives here.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1);
    /// let (tx, rx) = mpsc::channel();
    /// let f = pool.submit(|| 10);
    /// f.add_done_callback(move |f| tx.send(f.done()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), true);
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(&Future<T>) + Send + 'static,
    {
        {
            let mut state = self.inner.state.lock();
            if !state.phase.is_done() {
                state.waiters().callbacks.push(Box::new(callback));
                return;
            }
        }
        run_callback(Box::new(callback), self);
    }

    /// Asks to be told, through `queue`, when this future is done. If it is
    /// done already, `queue` hears it at once.
    pub(crate) fn add_listener(&self, queue: &Arc<DoneQueue>, index: usize) {
        let mut state = self.inner.state.lock();
        match &state.phase {
            Phase::Pending | Phase::Handed(_) | Phase::Running => {
                state.waiters().listeners.push(Listener {
                    queue: Arc::clone(queue),
                    index,
                });
            }
            phase => {
                let failed = matches!(phase, Phase::Failed(_));
                drop(state);
                queue.push(index, failed);
            }
        }
    }

    /// Withdraws what [`add_listener`](Future::add_listener) registered.
    pub(crate) fn remove_listener(&self, queue: &Arc<DoneQueue>) {
        let mut state = self.inner.state.lock();
        if let Some(waiters) = &mut state.waiters {
            waiters
                .listeners
                .retain(|listener| !Arc::ptr_eq(&listener.queue, queue));
        }
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Future")
            .field("state", &self.inner.state.lock().phase.name())
            .finish()
    }
}

impl<T> std::future::Future for Future<T> {
    type Output = Result<T, Error>;

    /// Polls for the outcome; the value is taken out when it is ready, so a
    /// future polled again after `Ready` gives [`Error::AlreadyRetrieved`].
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.inner.state.lock();
        if state.phase.is_done() {
            return Poll::Ready(state.phase.take());
        }
        match &mut state.waiters().waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
