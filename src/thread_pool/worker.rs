//! The thread pool's shared state, its jobs and the worker loop.
//!
//! # Threads
//!
//! Threads start lazily, as Python's do: a submission first tries to claim
//! an idle thread (the `idle` counter, which a worker raises each time it
//! finishes a job and a submission lowers when it counts on that worker);
//! only if none is idle and fewer than `max_workers` run does it start one.
//!
//! The queue, its shutdown and its breaking are [`WorkQueue`]'s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};

use crate::future::Task;
use crate::queue::Queue;
use crate::Error;

/// A user's initializer, type-erased; an `Err` carries why it failed.
pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the pool's handle and its workers share.
pub(crate) struct Shared {
    pub(crate) max_workers: usize,
    pub(crate) thread_name_prefix: String,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) queue: Queue<Task, Threads>,
    /// Workers that finished a job and wait for another, not yet claimed by
    /// a submission.
    pub(crate) idle: AtomicUsize,
}

/// The thread pool's part of the queue's locked state.
#[derive(Debug, Default)]
pub(crate) struct Threads {
    /// Threads started so far (they are never restarted once gone).
    pub(crate) started: usize,
    /// The ids of the pool's threads, so a shutdown called from a task does
    /// not wait for its own thread.
    pub(crate) ids: Vec<ThreadId>,
    /// Set by `shutdown_background`: the threads are left to finish on
    /// their own, and dropping the pool does not wait for them.
    pub(crate) detached: bool,
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
    pub(crate) fn submit(self: &Arc<Self>, job: Task) -> Result<(), (Task, Error)> {
        let started = self.queue.push(job, |gate| {
            // Once every thread runs, idle ones need not be counted: the
            // counter is touched by the workers after every job, and a
            // read-modify-write of it per submission made the two sides
            // fight over its cache line.
            if gate.pool.started < self.max_workers && !self.claim_idle() {
                self.spawn_worker(gate)
            } else {
                Ok(())
            }
        })?;
        if let Err(reason) = started {
            self.queue.break_pool(reason);
        }
        Ok(())
    }

    /// Starts one more worker. Fails only when no worker at all is left to
    /// run the queue, which breaks the pool rather than leave it stuck.
    fn spawn_worker(self: &Arc<Self>, gate: &mut Gate) -> Result<(), String> {
        let shared = Arc::clone(self);
        let name = format!("{}-{}", self.thread_name_prefix, gate.pool.started);
        match thread::Builder::new()
            .name(name)
            .spawn(move || worker_main(shared))
        {
            Ok(handle) => {
                gate.pool.started += 1;
                gate.live += 1;
                gate.pool.ids.push(handle.thread().id());
                Ok(())
            }
            Err(error) if gate.live == 0 => {
                Err(format!("could not start a worker thread: {error}"))
            }
            // The running workers will get to the job.
            Err(_) => Ok(()),
        }
    }

    /// Waits until every worker has exited, but those that wait here
    /// themselves: a task that shuts its own pool down (even two at once)
    /// waits for the others, not for itself.
    pub(crate) fn wait_for_workers(&self) {
        let me = thread::current().id();
        self.queue
            .wait_for_workers(|gate| gate.pool.ids.contains(&me));
    }
}

type Gate = crate::queue::Gate<Task, Threads>;

/// A worker thread: run the initializer, then jobs until the queue closes.
fn worker_main(shared: Arc<Shared>) {
    /// Counts the worker out however it leaves, so `shutdown` never waits
    /// for a thread that is gone.
    struct Exit<'a>(&'a Shared);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            self.0.queue.worker_exited();
        }
    }
    let _exit = Exit(&shared);

    if let Some(initializer) = &shared.initializer {
        let outcome = crate::unwind::catch(|| initializer(), None)
            .unwrap_or_else(|panic| Err(panic.to_string()));
        if let Err(reason) = outcome {
            shared
                .queue
                .break_pool(format!("the initializer failed: {reason}"));
            return;
        }
    }
    while let Ok(job) = shared.queue.receiver().recv() {
        job.run(&|| {
            // Counted only while threads may still be started (see
            // `submit`). ORDERING: see `claim_idle`; a hint only.
            if shared.idle.load(Ordering::Relaxed) < shared.max_workers {
                shared.idle.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
