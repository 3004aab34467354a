//! The queue between a pool's handle and its workers, shared by both pools.
//!
//! # Closing
//!
//! The queue's one sender lives under the lock. Shutting down (or breaking)
//! takes it out under that lock, so a submission either got its job into
//! the queue before, and the job runs (or is cancelled by a cancelling
//! shutdown), or finds no sender and is refused with [`Error::Shutdown`] or
//! [`Error::BrokenPool`]. Once the sender is gone and the queue is empty,
//! every worker's `recv` fails and the worker exits; a waiting shutdown
//! waits for the count of live workers to reach zero.
//!
//! Jobs are resolved (abandoned) outside the lock: resolving a future runs
//! its callbacks, which may submit to this very pool.
//!
//! # What travels
//!
//! A [`Queue`] carries any [`Resolve`] value: the process pool's jobs are
//! boxes ([`WorkQueue`]). The thread pool uses the gate only (its
//! lifecycle: open, closed, broken, the live workers) and keeps its jobs
//! in a deque of its own under the same lock (`thread_pool/worker.rs`
//! says why), so it never calls the channel's methods ([`Queue::push`],
//! [`Queue::close`], [`Queue::break_pool`]).

use crossbeam_channel::{unbounded, Receiver, Sender};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::Error;

/// A queued job that can be resolved without running.
pub(crate) trait Abandon: Send {
    /// Resolves the job's future: cancelled for [`Error::Cancelled`],
    /// failed with `error` otherwise.
    fn abandon(self: Box<Self>, error: Error);
}

/// A queued value that can be resolved without running: what a [`Queue`]
/// carries.
pub(crate) trait Resolve: Send {
    /// Resolves the job's future: cancelled for [`Error::Cancelled`],
    /// failed with `error` otherwise.
    fn resolve(self, error: Error);
}

impl<J: ?Sized + Abandon> Resolve for Box<J> {
    fn resolve(self, error: Error) {
        self.abandon(error);
    }
}

/// The queue of boxed jobs, `J` a trait object (the process pool's).
#[allow(type_alias_bounds)] // documents that `J` may be unsized
pub(crate) type WorkQueue<J: ?Sized, S> = Queue<Box<J>, S>;

/// The queue, its gate and the count of live workers.
pub(crate) struct Queue<J, S> {
    receiver: Receiver<J>,
    gate: Mutex<Gate<J, S>>,
    /// Signalled when a worker exits.
    exited: Condvar,
}

/// What changes under the queue's lock.
pub(crate) struct Gate<J, S> {
    /// `None` once the pool is shut down or broken.
    sender: Option<Sender<J>>,
    /// Why the pool broke, once it has (the first reason).
    broken: Option<String>,
    /// Workers (threads, or process drivers) that have not exited.
    pub(crate) live: usize,
    /// Workers that are themselves waiting in [`Queue::wait_for_workers`]
    /// (a task that shuts its own pool down); they cannot exit until it
    /// returns, so nobody waits for them.
    waiting_workers: usize,
    /// The pool's own state, kept under the same lock.
    pub(crate) pool: S,
}

impl<J, S> Gate<J, S> {
    /// Whether the pool takes no more work.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_none()
    }

    /// Why the pool broke, if it did.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Closes the gate: no more submissions.
    pub(crate) fn close(&mut self) {
        self.sender = None;
    }

    /// Closes the gate because the pool broke, keeping the first reason;
    /// returns the reason that stands.
    pub(crate) fn break_with(&mut self, reason: String) -> String {
        self.close();
        self.broken.get_or_insert(reason).clone()
    }

    /// The error for a submission the closed gate refuses.
    pub(crate) fn refusal(&self) -> Error {
        match &self.broken {
            Some(reason) => Error::BrokenPool {
                reason: reason.clone(),
            },
            None => Error::Shutdown,
        }
    }
}

impl<J: Resolve, S> Queue<J, S> {
    /// An open queue with the pool's own state `pool`.
    pub(crate) fn new(pool: S) -> Self {
        let (sender, receiver) = unbounded();
        Queue {
            receiver,
            gate: Mutex::new(Gate {
                sender: Some(sender),
                broken: None,
                live: 0,
                waiting_workers: 0,
                pool,
            }),
            exited: Condvar::new(),
        }
    }

    /// Locks the gate.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Gate<J, S>> {
        self.gate.lock()
    }

    /// Where workers take their jobs.
    pub(crate) fn receiver(&self) -> &Receiver<J> {
        &self.receiver
    }

    /// Queues `job`, then runs `after` under the same lock (to start a
    /// worker, say). Gives the job back with the reason if the pool takes
    /// no more work.
    pub(crate) fn push<T>(
        &self,
        job: J,
        after: impl FnOnce(&mut Gate<J, S>) -> T,
    ) -> Result<T, (J, Error)> {
        let mut gate = self.gate.lock();
        let Some(sender) = &gate.sender else {
            return Err((job, gate.refusal()));
        };
        if let Err(returned) = sender.send(job) {
            // Cannot happen while the queue holds its receiver; fail the
            // job rather than lose it.
            return Err((returned.into_inner(), Error::Shutdown));
        }
        Ok(after(&mut gate))
    }

    /// Stops taking work; with `cancel`, cancels every queued job.
    pub(crate) fn close(&self, cancel: bool) {
        self.gate.lock().close();
        if cancel {
            self.abandon_queued(&Error::Cancelled);
        }
    }

    /// Breaks the pool: no more work is taken, and every queued job fails
    /// with the reason (the first one, if it broke more than once).
    pub(crate) fn break_pool(&self, reason: String) {
        let reason = self.gate.lock().break_with(reason);
        self.abandon_queued(&Error::BrokenPool { reason });
    }

    /// Resolves every job still queued with `error`, without running it.
    pub(crate) fn abandon_queued(&self, error: &Error) {
        while let Ok(job) = self.receiver.try_recv() {
            job.resolve(error.clone());
        }
    }

    /// Whether the pool takes no more work.
    pub(crate) fn is_closed(&self) -> bool {
        self.gate.lock().is_closed()
    }

    /// Counts a worker out and wakes whoever waits for the workers.
    pub(crate) fn worker_exited(&self) {
        let mut gate = self.gate.lock();
        gate.live -= 1;
        self.exited.notify_all();
    }

    /// Waits until every worker has exited, except those waiting here
    /// themselves. `is_worker` tells whether the caller is one of the
    /// pool's workers.
    pub(crate) fn wait_for_workers(&self, is_worker: impl Fn(&Gate<J, S>) -> bool) {
        let mut gate = self.gate.lock();
        let worker = is_worker(&gate);
        if worker {
            gate.waiting_workers += 1;
            // Others may be waiting for this worker; it is not going to
            // exit while it waits, so let them re-count.
            self.exited.notify_all();
        }
        while gate.live > gate.waiting_workers {
            self.exited.wait(&mut gate);
        }
        if worker {
            gate.waiting_workers -= 1;
        }
    }
}
