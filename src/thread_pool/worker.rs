//! The thread pool's shared state, its jobs and the worker loop.
//!
//! # Threads
//!
//! Threads start lazily, as Python's do: a submission first tries to claim
//! an idle thread (the `idle` counter, which a worker raises each time it
//! finishes a job and a submission lowers when it counts on that worker);
//! only if none is idle and fewer than `max_workers` run does it start one.
//!
//! # Shutdown
//!
//! The queue's one sender lives in `Shared::state`. Shutting down (or
//! breaking) takes it out under the lock, so a submission either got its job
//! into the queue before that, and the job runs (or is cancelled by a
//! cancelling shutdown), or finds no sender and is refused. Once the sender
//! is gone and the queue is empty, every worker's `recv` fails and the
//! worker exits; `shutdown` waits for `live` to reach zero.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use crate::future::Promise;
use crate::Error;

/// A submitted task, type-erased for the queue.
pub(crate) trait Job: Send {
    /// Runs the task (unless its future was cancelled) and completes its
    /// future.
    fn run(self: Box<Self>);
    /// Resolves the future without running the task: cancelled for
    /// [`Error::Cancelled`], failed with `error` otherwise.
    fn abandon(self: Box<Self>, error: Error);
}

/// A closure and the promise of its result.
pub(crate) struct Task<F, R> {
    pub(crate) f: F,
    pub(crate) promise: Promise<R>,
}

impl<F, R> Job for Task<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn run(self: Box<Self>) {
        let Task { f, promise } = *self;
        if promise.start() {
            promise.complete(crate::unwind::catch(f, None));
        }
    }

    fn abandon(self: Box<Self>, error: Error) {
        self.promise.abandon(error);
    }
}

/// A user's initializer, type-erased; an `Err` carries why it failed.
pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the pool's handle and its workers share.
pub(crate) struct Shared {
    pub(crate) max_workers: usize,
    pub(crate) thread_name_prefix: String,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) receiver: Receiver<Box<dyn Job>>,
    /// Workers that finished a job and wait for another, not yet claimed by
    /// a submission.
    pub(crate) idle: AtomicUsize,
    pub(crate) state: Mutex<State>,
    /// Signalled when a worker exits.
    pub(crate) exited: Condvar,
}

/// The part of [`Shared`] that changes under its lock.
pub(crate) struct State {
    /// `None` once the pool is shut down or broken.
    pub(crate) sender: Option<Sender<Box<dyn Job>>>,
    /// Why the pool broke, once it has.
    pub(crate) broken: Option<String>,
    /// Threads started so far (they are never restarted once gone).
    pub(crate) started: usize,
    /// Threads that have not exited yet.
    pub(crate) live: usize,
    /// The ids of the pool's threads, so a shutdown called from a task does
    /// not wait for its own thread.
    pub(crate) thread_ids: Vec<ThreadId>,
}

impl Shared {
    /// Claims an idle worker for a new job, if there is one.
    fn claim_idle(&self) -> bool {
        // ORDERING: `idle` is a hint that decides whether to start another
        // thread; the job itself travels through the channel, which orders
        // the hand-over. Relaxed is enough.
        self.idle
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Queues `job`, starting a thread if none is idle; gives the job back
    /// with the reason if the pool takes no more work.
    pub(crate) fn submit(self: &Arc<Self>, job: Box<dyn Job>) -> Result<(), (Box<dyn Job>, Error)> {
        let mut state = self.state.lock();
        let Some(sender) = &state.sender else {
            let error = match &state.broken {
                Some(reason) => Error::BrokenPool {
                    reason: reason.clone(),
                },
                None => Error::Shutdown,
            };
            return Err((job, error));
        };
        if let Err(returned) = sender.send(job) {
            // Cannot happen while `Shared` holds a receiver; fail the job
            // rather than lose it.
            return Err((returned.into_inner(), Error::Shutdown));
        }
        if !self.claim_idle() && state.started < self.max_workers {
            if let Err(reason) = self.spawn_worker(&mut state) {
                drop(state);
                self.break_pool(reason);
            }
        }
        Ok(())
    }

    /// Starts one more worker. Fails only when no worker at all is left to
    /// run the queue, which breaks the pool rather than leave it stuck.
    fn spawn_worker(self: &Arc<Self>, state: &mut State) -> Result<(), String> {
        let shared = Arc::clone(self);
        let name = format!("{}-{}", self.thread_name_prefix, state.started);
        match thread::Builder::new()
            .name(name)
            .spawn(move || worker_main(shared))
        {
            Ok(handle) => {
                state.started += 1;
                state.live += 1;
                state.thread_ids.push(handle.thread().id());
                Ok(())
            }
            Err(error) if state.live == 0 => {
                Err(format!("could not start a worker thread: {error}"))
            }
            // The running workers will get to the job.
            Err(_) => Ok(()),
        }
    }

    /// Stops taking work and resolves every queued job with the reason the
    /// pool broke (the first one, if it broke more than once). Called
    /// without the lock held: resolving a future runs its callbacks, which
    /// may submit to this very pool.
    fn break_pool(&self, reason: String) {
        let reason = {
            let mut state = self.state.lock();
            state.sender = None;
            state.broken.get_or_insert(reason).clone()
        };
        let error = Error::BrokenPool { reason };
        while let Ok(job) = self.receiver.try_recv() {
            job.abandon(error.clone());
        }
    }

    /// Stops taking work: after this, submissions are refused. With
    /// `cancel`, the jobs still queued are cancelled.
    pub(crate) fn close(&self, cancel: bool) {
        let mut state = self.state.lock();
        state.sender = None;
        drop(state);
        if cancel {
            while let Ok(job) = self.receiver.try_recv() {
                job.abandon(Error::Cancelled);
            }
        }
    }

    /// Waits until every worker but the calling one (if it is a worker) has
    /// exited.
    pub(crate) fn wait_for_workers(&self) {
        let me = thread::current().id();
        let mut state = self.state.lock();
        let own = usize::from(state.thread_ids.contains(&me));
        while state.live > own {
            self.exited.wait(&mut state);
        }
    }

    /// Whether the pool has been shut down or is broken.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().sender.is_none()
    }
}

/// A worker thread: run the initializer, then jobs until the queue closes.
fn worker_main(shared: Arc<Shared>) {
    /// Counts the worker out however it leaves, so `shutdown` never waits
    /// for a thread that is gone.
    struct Exit<'a>(&'a Shared);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            let mut state = self.0.state.lock();
            state.live -= 1;
            self.0.exited.notify_all();
        }
    }
    let _exit = Exit(&shared);

    if let Some(initializer) = &shared.initializer {
        let outcome = crate::unwind::catch(|| initializer(), None)
            .unwrap_or_else(|panic| Err(panic.to_string()));
        if let Err(reason) = outcome {
            shared.break_pool(format!("the initializer failed: {reason}"));
            return;
        }
    }
    while let Ok(job) = shared.receiver.recv() {
        job.run();
        // ORDERING: see `claim_idle`; a hint only.
        shared.idle.fetch_add(1, Ordering::Relaxed);
    }
}
