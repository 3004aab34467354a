//! The completing side of a [`Future`]: what a pool holds while it runs
//! the task.

use std::fmt;
use std::sync::Arc;

use super::{try_cancel, Cancel, Canceller, Claim, Future, Inner, Phase};
use crate::Error;

/// The completing side of a [`Future`], held by the pool that runs the task.
///
/// Dropping a `Promise` that was never completed resolves its future all the
/// same, so no waiter can hang on a task that a pool lost: one that never
/// started becomes cancelled, one that started fails with
/// [`Error::BrokenPool`].
pub(crate) struct Promise<T> {
    inner: Arc<Inner<T>>,
    completed: bool,
}

impl<T> Promise<T> {
    /// A new pending future and the promise that completes it.
    pub(crate) fn new() -> (Promise<T>, Future<T>) {
        let inner = Inner::new(Phase::Pending);
        let future = Future {
            inner: Arc::clone(&inner),
        };
        (
            Promise {
                inner,
                completed: false,
            },
            future,
        )
    }

    /// Marks the task as running. Returns `false` if it was cancelled, in
    /// which case it must not run.
    pub(crate) fn start(&self) -> bool {
        let mut state = self.inner.state.lock();
        match state.phase {
            Phase::Pending | Phase::Handed(_) => {
                state.phase = Phase::Running;
                true
            }
            _ => false,
        }
    }

    /// Marks the task as handed to a worker that has not started it yet
    /// (see [`Claim`]). Returns `false` if it was cancelled.
    pub(crate) fn hand(&self, claim: Arc<dyn Claim>) -> bool {
        let mut state = self.inner.state.lock();
        match state.phase {
            Phase::Pending => {
                state.phase = Phase::Handed(claim);
                true
            }
            _ => false,
        }
    }

    /// A handle that cancels the future if its task has not started: for a
    /// pool that must cancel a task it has handed out (a cancelling
    /// shutdown).
    pub(crate) fn canceller(&self) -> Canceller
    where
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        Arc::new(move || {
            try_cancel(&inner);
        })
    }

    /// Takes a handed task back to pending (its worker died before it
    /// started it). Returns `false` if it was cancelled meanwhile.
    pub(crate) fn unhand(&self) -> bool {
        let mut state = self.inner.state.lock();
        match state.phase {
            Phase::Handed(_) | Phase::Pending => {
                state.phase = Phase::Pending;
                true
            }
            _ => false,
        }
    }

    /// Completes the future with the task's outcome. Does nothing if the
    /// future is done already.
    pub(crate) fn complete(mut self, outcome: Result<T, Error>) {
        self.completed = true;
        self.inner.finish_and_notify(Phase::from_outcome(outcome));
    }

    /// Resolves the future without running its task: cancelled for
    /// [`Error::Cancelled`], failed with `error` otherwise.
    pub(crate) fn abandon(self, error: Error) {
        match error {
            Error::Cancelled => self.cancel(),
            error => self.complete(Err(error)),
        }
    }

    /// Cancels the future if its task has not started.
    pub(crate) fn cancel(mut self) {
        self.completed = true;
        if try_cancel(&self.inner) == Cancel::TooLate {
            // It started: a pool only cancels tasks it has not handed out,
            // so this is a lost task; do not leave its waiters hanging.
            self.inner
                .finish_and_notify(Phase::Failed(Box::new(abandoned())));
        }
    }
}

fn abandoned() -> Error {
    Error::BrokenPool {
        reason: String::from("the pool dropped a running task without its result"),
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if !self.completed && try_cancel(&self.inner) == Cancel::TooLate {
            self.inner
                .finish_and_notify(Phase::Failed(Box::new(abandoned())));
        }
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise")
            .field("state", &self.inner.state.lock().phase.name())
            .finish()
    }
}
