//! Which task goes to which worker, and what happens when a worker fails.
//!
//! One shared queue holds the tasks. Each worker slot has a driver thread
//! that owns one worker process and keeps two tasks in its hands: the one
//! it runs and the next, so that the worker never waits for the parent
//! between tasks (the round trip, the parent's decoding of the last
//! outcomes and its encoding of the next arguments all overlap with work).
//!
//! # `running()` and cancellation stay exact
//!
//! The first task is marked running when it is sent. The second is only
//! *handed* ([`Claim`]): its future is still pending and cancellable. The
//! worker claims it in the shared region (a compare-and-swap of its slot's
//! gate) before it runs anything, and cancelling the future first swaps the
//! same gate to withdrawn, so exactly one of the two wins: a task is run or
//! cancelled, never both. `running()` on a handed future reads that gate.
//! When the first task's `Done` arrives, the second is marked running.
//! A task whose frame the link cannot take in whole is not handed at all
//! ([`Link::may_hand`]: its write would wait for a worker that may itself
//! be waiting for the driver to read its results): it waits in the driver,
//! still pending and cancellable, until the worker holds no other task,
//! or is given back to the queue when another worker falls idle.
//!
//! # Faults
//!
//! When a worker dies (end of file on its pipe, or its process descriptor
//! says it exited), the driver reads every frame it left, then the shared
//! region: the items it finished are delivered, the one it was running
//! fails with [`Error::WorkerDied`] (pid, exit code or signal), and the
//! items it had not started, including the whole of a task it had not
//! claimed, are sent to the replacement worker first. Nothing runs twice.
//! An item over the per-task time limit has its worker killed the same way
//! and fails with [`Error::TaskTimedOut`]; the limit applies to each item,
//! not to a whole chunk, measured by watching the region's progress word
//! (an item is killed between the limit and 1.25 times it). The pool breaks
//! ([`Error::BrokenPool`] for every queued and later task) only when no
//! worker can be started at all, or the initializer fails; a driver that
//! cannot start its worker while others run keeps trying, backing off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use super::job::ProcessJob;
use super::spawn::{self, Received};
use super::sys::{self, region::Region};
use super::wire::{self, gate};
use crate::future::Claim;
use crate::Error;
#[cfg(feature = "mpi")]
pub(crate) use link::refuse_descriptors;
pub(crate) use link::{Connect, Link};
use settle::{bury, take_back, take_frame};
pub(crate) use shared::{Config, Shared, Workers};
use spin::{next_job, watch_for_reply, REPLY_SPIN};
use start::start_worker;

mod link;
mod settle;
mod shared;
mod spares;
mod spin;
mod start;

/// How long a worker whose task pipe was closed may take to exit before it
/// is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How long a worker that stopped answering in the middle of its work (end
/// of file while tasks were out) may take to exit before it is killed: it
/// can do nothing useful any more.
const DEATH_GRACE: Duration = Duration::from_millis(200);

/// How often an idle driver checks that its worker is still alive.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// Starts the driver of `slot`. Its worker starts at once, in the
/// background.
pub(crate) fn start_driver(shared: &Arc<Shared>, slot: usize) -> std::io::Result<()> {
    let shared_for_thread = Arc::clone(shared);
    shared.queue.lock().live += 1;
    let started = std::thread::Builder::new()
        .name(format!("ProcessPoolExecutor-driver-{slot}"))
        .spawn(move || drive(&shared_for_thread, slot));
    if started.is_err() {
        shared.queue.worker_exited();
    }
    started.map(drop)
}

/// A task in a worker's hands.
struct InFlight {
    /// `None` once the driver took a handed task back (to give it to an
    /// idle worker): the worker will answer `Skipped` for its slot.
    job: Option<Box<dyn ProcessJob>>,
    /// Its slot in the region.
    slot: usize,
}

/// How long a task handed behind a running one may wait while another
/// worker is idle before it is taken back and offered to that worker: a
/// long task must not hold the next one hostage.
const HANDED_PATIENCE: Duration = Duration::from_millis(5);

/// A handed task's claim: its slot's gate in the worker's region.
struct SlotClaim {
    region: Arc<Region>,
    slot: usize,
}

impl Claim for SlotClaim {
    fn withdraw(&self) -> bool {
        // ORDERING: AcqRel, against the worker's claim of the same gate:
        // exactly one of the two swaps succeeds.
        self.region
            .gate(self.slot)
            .compare_exchange(
                gate::QUEUED,
                gate::WITHDRAWN,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    fn started(&self) -> bool {
        // ORDERING: Acquire: a status read, ordered after the worker's swap.
        let now = self.region.gate(self.slot).load(Ordering::Acquire);
        now == gate::STARTED || now == gate::FINISHED
    }
}

/// How a worker's service ended, when it did not simply go on.
enum Ending {
    /// It died, or was found unusable.
    Lost,
    /// It has run `max_tasks_per_child` tasks.
    Retired,
    /// The queue is closed and empty: the pool shuts down.
    Shutdown,
}

/// One slot's life: keep a worker, keep it fed.
fn drive(shared: &Shared, slot: usize) {
    /// Counts the driver out however it leaves.
    struct Exit<'a>(&'a Shared);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            self.0.queue.worker_exited();
        }
    }
    let _exit = Exit(shared);

    // A write to a worker that died raises SIGPIPE in the writing thread;
    // with it blocked here, the write fails with EPIPE instead, whatever the
    // application did with the signal's disposition.
    sys::block_sigpipe();
    // Tasks to send before any from the queue: what a dead worker left.
    let mut carry: VecDeque<Box<dyn ProcessJob>> = VecDeque::new();
    loop {
        // A driver starting its worker counts as idle: it will want a task.
        let Some(worker) = shared.idle_while(|| start_worker(shared, slot, &mut carry)) else {
            for job in carry {
                job.fail_rest(Error::Cancelled);
            }
            return;
        };
        match serve(shared, slot, worker, &mut carry) {
            Ending::Shutdown => return,
            Ending::Retired | Ending::Lost => {}
        }
        if shared.stopping() {
            for job in carry.drain(..) {
                job.fail_rest(Error::Cancelled);
            }
            return;
        }
        if !shared.config.replace_workers {
            // A one-shot pool: its process is gone, and so is the pool.
            let reason = String::from("its one worker process has ended");
            for job in carry.drain(..) {
                job.fail_rest(Error::BrokenPool {
                    reason: reason.clone(),
                });
            }
            shared.queue.break_pool(reason);
            return;
        }
    }
}

/// Feeds one worker until it ends; it is reaped (and unlisted) when this
/// returns.
fn serve(
    shared: &Shared,
    slot: usize,
    mut worker: Box<dyn Link>,
    carry: &mut VecDeque<Box<dyn ProcessJob>>,
) -> Ending {
    let max_frame = shared.config.spawn.max_frame;
    let limit = shared
        .config
        .max_tasks_per_child
        .map_or(usize::MAX, |n| n.get());
    let mut sent_total = 0usize;
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // One claim per slot of this worker's region, shared by every task
    // handed through it.
    let region = worker.region().cloned();
    let depth = worker.depth().min(sys::region::SLOTS);
    let claims: Vec<Arc<dyn Claim>> = match &region {
        Some(region) => (0..sys::region::SLOTS)
            .map(|slot| {
                Arc::new(SlotClaim {
                    region: Arc::clone(region),
                    slot,
                }) as Arc<dyn Claim>
            })
            .collect(),
        None => Vec::new(),
    };
    let mut buffer = Vec::new();
    // How long a frame that has begun may go without a byte: the frame
    // stall limit, or the time limit if it is shorter.
    let stall = shared
        .config
        .task_timeout
        .map_or(spawn::FRAME_STALL, |limit| limit.min(spawn::FRAME_STALL));
    // The front item's progress word as last seen, and since when.
    let mut watch: Option<(usize, u64, Instant)> = None;
    // Whether the last lone task answered soon enough for a spin to catch
    // its reply (a chunk sized to take milliseconds never does: spinning
    // for it only burns the parent's CPU), and since when this one waits.
    let mut quick = true;
    let mut lone_since: Option<Instant> = None;
    loop {
        // Keep two tasks in the worker's hands.
        while in_flight.len() < depth && sent_total < limit {
            let job = match carry.pop_front() {
                Some(job) => job,
                None if in_flight.is_empty() => match shared.idle_while(|| next_job(shared)) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Disconnected) => {
                        shared.set_pid(slot, None);
                        worker.reap(EXIT_GRACE);
                        return Ending::Shutdown;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // Idle: a worker that died meanwhile (killed from
                        // outside, out of memory) is replaced now, not when
                        // the next task would find it gone.
                        if worker.is_gone() {
                            return bury(shared, slot, worker, in_flight, carry, None);
                        }
                        continue;
                    }
                },
                // A second task only while no other worker is idle: an
                // idle one should have it.
                None if shared.idle.load(Ordering::Relaxed) > 0 => break,
                None => match shared.queue.receiver().try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            // A task too large to hand waits here until the worker is free
            // (see `Link::may_hand`), still pending: a cancelling shutdown
            // reaches it as it would a handed one.
            if !in_flight.is_empty() && !worker.may_hand(&*job) {
                shared.set_handed(slot, Some(job.canceller()));
                carry.push_front(job);
                break;
            }
            let free = (0..sys::region::SLOTS)
                .find(|s| in_flight.iter().all(|f| f.slot != *s))
                .unwrap_or(0);
            if let Some(region) = &region {
                // ORDERING: Release: the reset progress is visible to the
                // worker that swaps the gate with Acquire.
                region.progress(free).store(0, Ordering::Relaxed);
                region.base(free).store(0, Ordering::Relaxed);
                region.implied(free).store(0, Ordering::Relaxed);
                region.gate(free).store(gate::QUEUED, Ordering::Release);
            }
            let mut job = job;
            let claim = if in_flight.is_empty() {
                None
            } else {
                claims.get(free).cloned()
            };
            let handed = claim.is_some();
            if !job.begin(claim) {
                continue; // cancelled while queued
            }
            if handed {
                shared.set_handed(slot, Some(job.canceller()));
            }
            let sent = worker.send(&*job, free as u8, max_frame);
            match sent {
                Ok(()) => {
                    sent_total += 1;
                    in_flight.push_back(InFlight {
                        job: Some(job),
                        slot: free,
                    });
                }
                Err(wire::WireError::TooLarge { len, max }) => {
                    // Nothing was written: the worker is fine, the task is not.
                    let reason = format!(
                        "the task's arguments take {len} bytes, over the frame limit of {max}"
                    );
                    job.fail_rest(Error::Encode {
                        what: "argument",
                        reason,
                    });
                }
                Err(wire::WireError::Unsendable(reason)) => {
                    job.fail_rest(Error::InvalidArgument { reason });
                }
                Err(_) => {
                    // The worker is gone; the task never reached it.
                    in_flight.push_back(InFlight {
                        job: Some(job),
                        slot: free,
                    });
                    return bury(shared, slot, worker, in_flight, carry, None);
                }
            }
        }
        if in_flight.is_empty() {
            // Retired (`max_tasks_per_child`): reaped, then replaced.
            shared.set_pid(slot, None);
            worker.reap(EXIT_GRACE);
            return Ending::Retired;
        }
        // Wait for the next frame; with a time limit, watch the item the
        // worker runs.
        let deadline = match (shared.config.task_timeout, &region) {
            (Some(limit), Some(region)) => {
                let front = in_flight[0].slot;
                let progress = region.progress(front).load(Ordering::Acquire);
                let now = Instant::now();
                let since = match watch {
                    Some((s, p, since)) if s == front && p == progress => since,
                    _ => {
                        watch = Some((front, progress, now));
                        now
                    }
                };
                if now.duration_since(since) >= limit {
                    let pid = worker.pid();
                    let error = Error::TaskTimedOut { limit, pid };
                    return bury(shared, slot, worker, in_flight, carry, Some(error));
                }
                Some((since + limit).min(now + limit / 4))
            }
            _ => None,
        };
        // A handed task is offered back while another worker idles (only
        // a region can take it back).
        // So is a task waiting here because it was too large to hand.
        let offered = match in_flight.get(1) {
            Some(InFlight { job: Some(_), .. }) => region.is_some(),
            _ => !carry.is_empty(),
        };
        let deadline = if offered {
            let soon = Instant::now() + HANDED_PATIENCE;
            Some(deadline.map_or(soon, |d| d.min(soon)))
        } else {
            deadline
        };
        // Only a lone task is worth watching for: with a second one handed,
        // the worker goes on without the driver, whose spin would only take
        // a CPU from it.
        if in_flight.len() == 1 {
            lone_since.get_or_insert_with(Instant::now);
            if quick && watch_for_reply(&*worker, in_flight[0].slot) {
                worker.expect_frame();
            }
        } else {
            lone_since = None;
        }
        let received = worker.receive_into(deadline, stall, max_frame, &mut buffer);
        if lone_since.is_some_and(|since| since.elapsed() >= 4 * REPLY_SPIN) {
            quick = false;
        }
        let pid = worker.pid();
        match received {
            Err(Received::TimedOut) => {
                if shared.idle.load(Ordering::Relaxed) > 0 {
                    take_back(shared, slot, &*worker, &mut in_flight);
                    // Offered to the idle driver through the queue; kept
                    // here if the queue takes no more (a shutdown: the
                    // task still runs, on this worker).
                    let waiting: Vec<_> = carry.drain(..).collect();
                    for job in waiting {
                        if let Err((job, _closed)) = shared.submit(job) {
                            carry.push_back(job);
                        }
                    }
                }
                continue;
            }
            // A frame stalled for longer than the item's time limit: the
            // time limit's error, as for an item that overran it.
            Err(Received::Stalled) if stall < spawn::FRAME_STALL => {
                let limit = shared.config.task_timeout.unwrap_or(stall);
                let error = Error::TaskTimedOut { limit, pid };
                return bury(shared, slot, worker, in_flight, carry, Some(error));
            }
            Err(Received::Stalled) => {
                let reason = String::from("a frame it began writing never completed");
                return bury(
                    shared,
                    slot,
                    worker,
                    in_flight,
                    carry,
                    Some(Error::Protocol { pid, reason }),
                );
            }
            Err(Received::Wire(wire::WireError::Closed | wire::WireError::Truncated { .. })) => {
                return bury(shared, slot, worker, in_flight, carry, None);
            }
            Err(Received::Wire(e)) => {
                let reason = e.to_string();
                return bury(
                    shared,
                    slot,
                    worker,
                    in_flight,
                    carry,
                    Some(Error::Protocol { pid, reason }),
                );
            }
            Ok(message) => match take_frame(shared, &*worker, &mut in_flight, message, &buffer) {
                Ok(again) => {
                    carry.extend(again);
                    watch = None;
                    // The next lone task is spun for if this one's reply
                    // came soon enough for a spin to have caught it.
                    if let Some(since) = lone_since.take() {
                        quick = since.elapsed() < 4 * REPLY_SPIN;
                    }
                }
                Err(reason) => {
                    return bury(
                        shared,
                        slot,
                        worker,
                        in_flight,
                        carry,
                        Some(Error::Protocol { pid, reason }),
                    );
                }
            },
        }
    }
}
