//! What the pool's handle and its drivers share: the options, the queue,
//! the workers' pids, the tasks handed behind running ones, and the
//! buffers and timings kept from one job or map for the next.

use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::link::Connect;
use super::spares::{Spares, ValueSpares};
use crate::future::Canceller;
use crate::process_pool::job::ProcessJob;
use crate::process_pool::payload::Payload;
use crate::process_pool::spawn::SpawnConfig;
use crate::process_pool::sys;
use crate::queue::WorkQueue;
use crate::Error;

/// The options every driver follows.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) max_tasks_per_child: Option<NonZeroUsize>,
    pub(crate) task_timeout: Option<Duration>,
    /// Whether a worker that is gone is replaced (see
    /// `ProcessPoolBuilder::one_shot`).
    pub(crate) replace_workers: bool,
    pub(crate) spawn: SpawnConfig,
    /// Where links come from when they are not local worker processes.
    pub(crate) links: Option<Arc<dyn Connect>>,
}

/// What the pool's handle and its drivers share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Per driver, a way to cancel the task it has handed to its worker
    /// behind the one it runs (for a cancelling shutdown).
    pub(crate) handed: Mutex<Vec<Option<Canceller>>>,
    /// Drivers waiting for a task or starting their worker: while any is,
    /// no driver takes a second task, and one handed out is taken back.
    pub(crate) idle: std::sync::atomic::AtomicUsize,
    pub(crate) queue: WorkQueue<dyn ProcessJob, Workers>,
    /// Buffers of answered jobs, for the next ones to encode into.
    pub(crate) spares: Mutex<Spares>,
    /// Value vectors of maps that ended, for the next ones.
    pub(crate) value_spares: Mutex<ValueSpares>,
    /// Vectors of plain-number arguments whose jobs are done (see
    /// `Payload::Numbers`), for the next chunks to be gathered into.
    pub(crate) number_spares: Mutex<ValueSpares>,
    /// The time per item the last map of each function measured (by the
    /// function's offset), for the next map of it to size its first
    /// chunks from (see `Map`'s automatic chunk size).
    pub(crate) per_item: Mutex<std::collections::HashMap<u64, f64>>,
}

/// The process pool's part of the queue's locked state.
#[derive(Debug)]
pub(crate) struct Workers {
    /// Set by terminate/kill: drivers stop replacing workers.
    pub(crate) stopping: bool,
    /// The pid of each slot's worker, while it has one.
    pub(crate) pids: Vec<Option<u32>>,
}

impl Shared {
    /// Queues a job; gives it back with the reason if the pool takes no
    /// more work.
    pub(crate) fn submit(
        &self,
        job: Box<dyn ProcessJob>,
    ) -> Result<(), (Box<dyn ProcessJob>, Error)> {
        self.queue.push(job, |_| ())
    }

    /// Stops taking work, cancels what is queued, and sends `signal` to
    /// every worker; drivers replace none of them.
    pub(crate) fn stop_workers(&self, signal: i32) {
        {
            let mut gate = self.queue.lock();
            gate.close();
            gate.pool.stopping = true;
            // Signalled under the lock: a driver unlists its worker (under
            // this lock) before reaping it, so every pid listed here is a
            // child not yet reaped, and cannot have been reused.
            for &pid in gate.pool.pids.iter().flatten() {
                sys::kill(pid, signal);
            }
        }
        self.queue.abandon_queued(&Error::Cancelled);
    }

    /// Sends `signal` to every worker, and changes nothing else.
    pub(crate) fn signal_workers(&self, signal: i32) {
        let gate = self.queue.lock();
        // Under the lock, as in `stop_workers`: no listed pid is reaped yet.
        for &pid in gate.pool.pids.iter().flatten() {
            sys::kill(pid, signal);
        }
    }

    /// Runs `wait` counted as an idle driver.
    pub(super) fn idle_while<T>(&self, wait: impl FnOnce() -> T) -> T {
        // ORDERING: Relaxed: a hint for other drivers, read without any
        // other data depending on it.
        self.idle.fetch_add(1, Ordering::Relaxed);
        let outcome = wait();
        self.idle.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    /// Cancels every task handed to a worker that has not started it.
    pub(crate) fn cancel_handed(&self) {
        let cancellers: Vec<_> = self
            .handed
            .lock()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for cancel in cancellers {
            cancel();
        }
    }

    pub(super) fn set_handed(&self, slot: usize, cancel: Option<Canceller>) {
        if let Some(entry) = self.handed.lock().get_mut(slot) {
            *entry = cancel;
        }
    }

    /// Waits until every driver has exited (and reaped its worker).
    pub(crate) fn wait_for_drivers(&self) {
        // Drivers never shut their own pool down.
        self.queue.wait_for_workers(|_| false);
    }

    /// The pids of the workers running now.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.queue
            .lock()
            .pool
            .pids
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    pub(super) fn set_pid(&self, slot: usize, pid: Option<u32>) {
        if let Some(entry) = self.queue.lock().pool.pids.get_mut(slot) {
            *entry = pid;
        }
    }

    pub(super) fn stopping(&self) -> bool {
        self.queue.lock().pool.stopping
    }

    /// A buffer for a chunk's arguments, about `want` bytes, a kept one
    /// if there is one.
    pub(crate) fn payload_buffer(&self, want: usize) -> Vec<u8> {
        self.spares.lock().payload(want)
    }

    /// A buffer for one call's argument, of a size not known before it is
    /// encoded: the last one kept (a program that submits 64 MiB
    /// arguments gets the buffer of the last one).
    pub(crate) fn call_payload_buffer(&self) -> Vec<u8> {
        self.spares.lock().last_payload()
    }

    /// A buffer for a job's argument bounds, a kept one if there is one.
    pub(crate) fn bounds_buffer(&self) -> Vec<u32> {
        self.spares.lock().bounds()
    }

    /// A vector for a chunk of `want` plain-number arguments to be
    /// gathered into: a kept one if there is one.
    pub(crate) fn numbers_buffer<A: Send + 'static>(&self, want: usize) -> Vec<A> {
        let kept = self.number_spares.lock().take_one::<A>(want);
        kept.unwrap_or_else(|| sys::with_huge_capacity(want))
    }

    /// The buffers of a job that is done with them, kept for later ones.
    pub(super) fn recycle(&self, job: &mut dyn ProcessJob) {
        let (payload, bounds) = (job.take_payload(), job.take_bounds());
        let payload = match payload {
            Payload::Bytes(bytes) => bytes,
            Payload::Numbers(numbers) => {
                let bytes = numbers.capacity_bytes();
                self.number_spares
                    .lock()
                    .keep_boxed(bytes, numbers.into_empty());
                Vec::new()
            }
            // Its arena units are free again.
            Payload::Shared(block) => {
                drop(block);
                Vec::new()
            }
        };
        self.spares.lock().keep(payload, bounds);
    }
}
