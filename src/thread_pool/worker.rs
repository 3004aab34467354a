//! The thread pool's shared state, its queue of tasks and the worker loop.
//!
//! # Threads
//!
//! Threads start lazily, as Python's do: a submission first tries to claim
//! an idle thread (the `idle` counter, which a worker raises each time it
//! finishes a job and a submission lowers when it counts on that worker);
//! only if none is idle and fewer than `max_workers` run does it start one.
//!
//! # The queue
//!
//! The pool's lifecycle (open, shut down, broken, the live workers) is the
//! shared [`Queue`]'s gate. Tasks wait in two deques, a two-lock queue:
//!
//! - the *inbox* ([`Threads::tasks`]), under the gate's lock, so that a
//!   submission checks that the pool is open and queues its task in one
//!   critical section (the invariant the queue's module docs describe);
//! - the *outbox*, under a lock of its own, from which workers take tasks
//!   one at a time, oldest first.
//!
//! A worker that finds the outbox empty takes the gate's lock and swaps
//! the whole inbox into it. So the submitting thread and the workers meet
//! on a lock once per swap, not once per task: when tasks come faster than
//! they run, one swap moves thousands, and the submitter no longer queues
//! behind every worker's take (measured: with one lock for both, the
//! submitter spent a fifth of its time yielding and sleeping in that
//! lock). Every worker takes from the same outbox, so no task waits
//! behind another worker's long one while a worker is free; order stays
//! first in, first out.
//!
//! Not a channel: a channel's nodes are allocated by the submitting thread
//! and freed by the workers, and that cross-thread freeing made both sides
//! wait on the allocator's lock (glibc: a futex wake-up in the submitting
//! thread's `malloc` every few dozen tasks). The deques' buffers are
//! reused (the swap trades them).
//!
//! # Sleeping and waking
//!
//! A worker that finds both deques empty first *searches*: it watches the
//! `queued` and `outboxed` hints for [`SEARCH`], without the locks,
//! yielding between looks, and only then sleeps on `work`. A submission,
//! and a worker that swaps the inbox, wake a sleeper only when more tasks
//! are queued in both deques than workers search (each of those will take
//! one when its search ends): waking a sleeping thread costs the waker a
//! system call and the sleeper
//! tens of microseconds on a virtual machine, so a stream of short tasks
//! is best served by the workers that are already awake. The counts change
//! under the gate's lock, and the outbox fills only under it too, so a
//! task is never left queued with every worker asleep: a worker goes to
//! sleep only after seeing both deques empty under the gate's lock, and
//! whoever queues a task after that (a submission into the inbox, a swap
//! into the outbox) sees it sleeping. Closing the gate wakes every
//! sleeper, and a worker exits when the gate is closed and both deques are
//! empty.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::future::Task;
use crate::queue::{Queue, Resolve};
use crate::Error;

/// How long a worker that ran out of tasks watches for a new one before it
/// sleeps (only with more than one CPU, where the submitter runs beside
/// it). Short tasks submitted in a stream arrive well within it; a worker
/// woken from sleep needs tens of microseconds to run again.
const SEARCH: Duration = Duration::from_micros(50);

/// A value on a cache line of its own (64 bytes, or 128 where pairs of
/// lines are fetched together): the hints that searching workers read over
/// and over, and the outbox's lock that the workers take for every task,
/// must not share a line with the gate's lock that the submitter takes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct OwnLine<T>(pub(crate) T);

impl<T> std::ops::Deref for OwnLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A user's initializer, type-erased; an `Err` carries why it failed.
pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the pool's handle and its workers share.
pub(crate) struct Shared {
    pub(crate) max_workers: usize,
    pub(crate) thread_name_prefix: String,
    pub(crate) initializer: Option<Initializer>,
    /// The lifecycle, and under its lock the inbox ([`Threads`]).
    pub(crate) queue: Queue<Task, Threads>,
    /// Tasks swapped out of the inbox, taken by the workers one at a time
    /// (see the module docs).
    pub(crate) outbox: OwnLine<Mutex<VecDeque<Task>>>,
    /// Signalled when a task is queued for a sleeping worker, and (to
    /// all) when the gate closes.
    pub(crate) work: Condvar,
    /// The inbox's length as of its last change between zero and
    /// non-zero, stored under the gate's lock: what a searching worker
    /// watches without the lock.
    pub(crate) queued: OwnLine<AtomicUsize>,
    /// The same for the outbox, stored under the outbox's lock.
    pub(crate) outboxed: OwnLine<AtomicUsize>,
    /// Workers that finished a job and wait for another, not yet claimed by
    /// a submission.
    pub(crate) idle: AtomicUsize,
}

/// The thread pool's part of the queue's locked state.
#[derive(Debug, Default)]
pub(crate) struct Threads {
    /// The inbox: tasks submitted and not yet swapped into the outbox,
    /// oldest first.
    pub(crate) tasks: VecDeque<Task>,
    /// At most this many tasks are in the outbox: its length when a worker
    /// last swapped into it or took from it under the gate's lock (workers
    /// also take from it without that lock, which only makes it smaller).
    pub(crate) in_outbox: usize,
    /// Workers looking for a task without sleeping (see the module docs).
    pub(crate) searching: usize,
    /// Workers asleep on `work`.
    pub(crate) sleeping: usize,
    /// Threads started so far (they are never restarted once gone).
    pub(crate) started: usize,
    /// The ids of the pool's threads, so a shutdown called from a task does
    /// not wait for its own thread.
    pub(crate) ids: Vec<ThreadId>,
    /// Set by `shutdown_background`: the threads are left to finish on
    /// their own, and dropping the pool does not wait for them.
    pub(crate) detached: bool,
}

type Gate = crate::queue::Gate<Task, Threads>;

impl Shared {
    /// Claims an idle worker for a new job, if there is one.
    fn claim_idle(&self) -> bool {
        // ORDERING: `idle` is a hint that decides whether to start another
        // thread; the job itself is handed over under the lock. Relaxed is
        // enough.
        self.idle
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Queues `task`, starting a thread if none is idle or waking one if
    /// need be; gives the task back with the reason if the pool takes no
    /// more work.
    pub(crate) fn submit(self: &Arc<Self>, task: Task) -> Result<(), (Task, Error)> {
        let mut gate = self.queue.lock();
        if gate.is_closed() {
            let refusal = gate.refusal();
            return Err((task, refusal));
        }
        gate.pool.tasks.push_back(task);
        if gate.pool.tasks.len() == 1 {
            self.publish_queued(&gate);
        }
        // Once every thread runs, idle ones need not be counted: the
        // counter is touched by the workers after every job, and a
        // read-modify-write of it per submission made the two sides fight
        // over its cache line.
        let started = if gate.pool.started < self.max_workers && !self.claim_idle() {
            self.spawn_worker(&mut gate)
        } else {
            Ok(())
        };
        let wake = self.needs_sleeper(&gate);
        drop(gate);
        if wake {
            self.work.notify_one();
        }
        if let Err(reason) = started {
            self.break_pool(reason);
        }
        Ok(())
    }

    /// Stores the inbox's length for the searching workers. Only whether
    /// it is zero matters to them, so it is stored when that changes (and
    /// after the inbox is emptied at once), not on every push: each store
    /// takes the line from the workers that read it.
    fn publish_queued(&self, gate: &Gate) {
        // ORDERING: a hint for when to take the lock, which hands the task
        // over; Relaxed is enough.
        self.queued.store(gate.pool.tasks.len(), Ordering::Relaxed);
    }

    /// Stores the outbox's length for the searching workers, as
    /// [`publish_queued`](Self::publish_queued) does the inbox's.
    fn publish_outboxed(&self, outbox: &VecDeque<Task>) {
        // ORDERING: as in `publish_queued`.
        self.outboxed.store(outbox.len(), Ordering::Relaxed);
    }

    /// Closes the gate (no more submissions) and wakes every sleeping
    /// worker, so that each runs what is left and exits; with `cancel`,
    /// the queued tasks are cancelled instead of run.
    pub(crate) fn close(&self, cancel: bool) {
        let cancelled = {
            let mut gate = self.queue.lock();
            gate.close();
            self.take_queued(&mut gate, cancel)
        };
        self.work.notify_all();
        resolve_all(cancelled, &Error::Cancelled);
    }

    /// Breaks the pool: no more work is taken, and every queued task fails
    /// with the reason (the first one, if it broke more than once).
    pub(crate) fn break_pool(&self, reason: String) {
        let (reason, failed) = {
            let mut gate = self.queue.lock();
            let reason = gate.break_with(reason);
            (reason, self.take_queued(&mut gate, true))
        };
        self.work.notify_all();
        resolve_all(failed, &Error::BrokenPool { reason });
    }

    /// Takes every queued task out of both deques (if `take`), to be
    /// resolved outside the locks: resolving runs callbacks, which may
    /// submit to this pool.
    fn take_queued(&self, gate: &mut Gate, take: bool) -> VecDeque<Task> {
        if !take {
            return VecDeque::new();
        }
        let mut tasks = {
            let mut outbox = self.outbox.lock();
            let tasks = std::mem::take(&mut *outbox);
            self.publish_outboxed(&outbox);
            tasks
        };
        tasks.append(&mut gate.pool.tasks);
        gate.pool.in_outbox = 0;
        self.publish_queued(gate);
        tasks
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

    /// The next task for a worker, or `None` once the gate is closed and
    /// no task is left: from the outbox, else the inbox swapped into it;
    /// with neither, searches, then sleeps (see the module docs).
    fn next_task(&self) -> Option<Task> {
        if let Some(task) = self.take_outboxed() {
            return Some(task);
        }
        let mut gate = self.queue.lock();
        if let Some(task) = self.swap_in(&mut gate) {
            return Some(task);
        }
        if crate::future::spinning_helps() && !gate.is_closed() {
            gate.pool.searching += 1;
            drop(gate);
            self.search();
            gate = self.queue.lock();
            gate.pool.searching -= 1;
        }
        loop {
            if let Some(task) = self.swap_in(&mut gate) {
                return Some(task);
            }
            if gate.is_closed() {
                return None;
            }
            gate.pool.sleeping += 1;
            self.work.wait(&mut gate);
            gate.pool.sleeping -= 1;
        }
    }

    /// Takes the oldest task of the outbox, without the gate's lock.
    fn take_outboxed(&self) -> Option<Task> {
        let mut outbox = self.outbox.lock();
        let task = outbox.pop_front()?;
        if outbox.is_empty() {
            self.publish_outboxed(&outbox);
        }
        Some(task)
    }

    /// Under the gate's lock: the oldest task of the outbox if another
    /// worker has refilled it, else of the inbox, whose other tasks move
    /// to the outbox (waking a sleeper if they need one). `None` if both
    /// are empty.
    fn swap_in(&self, gate: &mut Gate) -> Option<Task> {
        let task = {
            let mut outbox = self.outbox.lock();
            if outbox.is_empty() {
                gate.pool.in_outbox = 0;
                if gate.pool.tasks.is_empty() {
                    return None;
                }
                std::mem::swap(&mut *outbox, &mut gate.pool.tasks);
                self.publish_queued(gate);
            }
            let task = outbox.pop_front();
            self.publish_outboxed(&outbox);
            gate.pool.in_outbox = outbox.len();
            task
        };
        if self.needs_sleeper(gate) {
            // The gate's lock is held: the sleeper wakes into it, after
            // this worker lets go.
            self.work.notify_one();
        }
        task
    }

    /// Whether a sleeping worker must be woken: more tasks are queued, in
    /// the inbox and (at most) in the outbox, than workers search, each
    /// of which takes one when its search ends. Counting both deques
    /// against the same searchers matters: a searcher counted once for a
    /// task in the outbox and again for one in the inbox left the second
    /// waiting with a worker asleep.
    fn needs_sleeper(&self, gate: &Gate) -> bool {
        gate.pool.sleeping > 0 && gate.pool.tasks.len() + gate.pool.in_outbox > gate.pool.searching
    }

    /// Watches for a queued task for at most [`SEARCH`], without the
    /// locks.
    fn search(&self) {
        let until = Instant::now() + SEARCH;
        loop {
            for _ in 0..32 {
                // ORDERING: see `publish_queued`.
                if self.queued.load(Ordering::Relaxed) > 0
                    || self.outboxed.load(Ordering::Relaxed) > 0
                {
                    return;
                }
                std::hint::spin_loop();
            }
            // Leave the CPU to the submitter if it waits for this one
            // (more threads than CPUs, or CPUs shared with other work).
            thread::yield_now();
            if Instant::now() >= until {
                return;
            }
        }
    }
}

/// Resolves tasks taken out of the queue with `error`.
fn resolve_all(tasks: VecDeque<Task>, error: &Error) {
    for task in tasks {
        task.resolve(error.clone());
    }
}

/// A worker thread: run the initializer, then tasks until the queue closes.
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
            shared.break_pool(format!("the initializer failed: {reason}"));
            return;
        }
    }
    while let Some(task) = shared.next_task() {
        task.run(&|| {
            // Counted only while threads may still be started (see
            // `submit`). ORDERING: see `claim_idle`; a hint only.
            if shared.idle.load(Ordering::Relaxed) < shared.max_workers {
                shared.idle.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
