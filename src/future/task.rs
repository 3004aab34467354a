//! A future that carries its own task: the thread pool's one allocation per
//! submission.
//!
//! [`Task::new`] puts the closure into the same allocation as the future's
//! state (the `task` slot of [`Inner`], under the future's own lock), so a
//! submission allocates once, and the [`Task`] handle the pool's queue
//! carries is a pointer into it. The worker takes the closure out as it
//! marks the future running (one lock for both), and the allocation is
//! freed by whoever lets go last, usually the thread that took the result:
//! the thread that allocated it. (A box per task freed by a worker made
//! the workers and the submitting thread fight over the allocator's lock.)
//!
//! The handle resolves its future however it leaves: [`Task::run`] runs
//! the closure (unless the future was cancelled) and completes it;
//! [`Resolve::resolve`] and a plain drop resolve it without running, as a
//! dropped [`Promise`](super::Promise) does.

use std::fmt;
use std::sync::Arc;

use super::{try_cancel, Future, Inner, Phase};
use crate::queue::Resolve;
use crate::Error;

/// A submitted closure and its future's state, type-erased: what a thread
/// pool's queue holds. `None` once it has run or been resolved.
pub(crate) struct Task(Option<Arc<dyn Carried>>);

/// The typed side of a [`Task`]: an [`Inner`] carrying `Option<F>`.
trait Carried: Send + Sync {
    /// Takes the closure out and marks the future running; runs it (or,
    /// for a future cancelled meanwhile, only drops it), calls
    /// `finished`, then completes the future.
    fn run(self: Arc<Self>, finished: &dyn Fn());

    /// Drops the closure without running it and resolves the future:
    /// cancelled for [`Error::Cancelled`], failed with `error` otherwise.
    fn resolve(self: Arc<Self>, error: Error);
}

impl Task {
    /// A pending future and the task that completes it with `f`'s outcome.
    pub(crate) fn new<F, R>(f: F) -> (Task, Future<R>)
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = Inner::with_task(Phase::Pending, Some(f));
        let future = Future {
            inner: Arc::clone(&inner) as Arc<Inner<R>>,
        };
        (Task(Some(inner)), future)
    }

    /// Runs the task unless its future was cancelled, calls `finished`,
    /// then completes the future. (`finished` comes first so that whoever
    /// the completion wakes already sees the worker as idle.) A panic is
    /// caught and becomes the future's [`Error::Panicked`].
    pub(crate) fn run(mut self, finished: &dyn Fn()) {
        if let Some(carried) = self.0.take() {
            carried.run(finished);
        }
    }
}

impl Resolve for Task {
    fn resolve(mut self, error: Error) {
        if let Some(carried) = self.0.take() {
            carried.resolve(error);
        }
    }
}

impl Drop for Task {
    /// A task dropped without running (a queue dropped with jobs in it)
    /// leaves no waiter hanging: its future is cancelled.
    fn drop(&mut self) {
        if let Some(carried) = self.0.take() {
            carried.resolve(Error::Cancelled);
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("resolved", &self.0.is_none())
            .finish()
    }
}

impl<F, R> Carried for Inner<R, Option<F>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    fn run(self: Arc<Self>, finished: &dyn Fn()) {
        let (f, start) = {
            let mut state = self.state.lock();
            let f = state.task.take();
            let start = matches!(state.phase, Phase::Pending | Phase::Handed(_));
            if start {
                state.phase = Phase::Running;
            }
            (f, start)
        };
        // A cancelled task's closure is dropped here, outside the lock
        // (its captures' `Drop` may look at this very future).
        let f = f.filter(|_| start);
        let Some(f) = f else {
            finished();
            return;
        };
        // The closure is consumed inside `catch`: a panic in the drop of
        // what it captured is caught with the rest.
        let outcome = crate::unwind::catch(f, None);
        finished();
        let inner: Arc<Inner<R>> = self;
        inner.finish_and_notify(Phase::from_outcome(outcome));
    }

    fn resolve(self: Arc<Self>, error: Error) {
        let f = self.state.lock().task.take();
        drop(f);
        let inner: Arc<Inner<R>> = self;
        match error {
            // It never started (only `run` starts it), so it cancels.
            Error::Cancelled => {
                try_cancel(&inner);
            }
            error => {
                inner.finish_and_notify(Phase::Failed(Box::new(error)));
            }
        }
    }
}
