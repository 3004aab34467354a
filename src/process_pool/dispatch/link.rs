//! The seam under dispatch: a *worker link* is whatever a driver feeds
//! tasks through. A local worker process (two pipes, a socket and a shared
//! region, `spawn::Worker`) is one; an MPI rank (`crate::mpi`, feature
//! `mpi`) is another. Dispatch keeps every rule of its own (two tasks in
//! hand, claims, time limits, what a dead worker leaves) and asks the link
//! only what it can answer.
//!
//! A link without a shared region ([`Link::region`] is `None`) has no gate
//! that the far side and this one can both swap, so none of its tasks is
//! ever *handed* (pending and cancellable while a worker holds it): each
//! is marked running when it is sent, and from then on `running()` is
//! true and `cancel()` fails, for the second one too. By default such a
//! link holds one task at a time ([`Link::depth`] 1), which then starts as
//! soon as it arrives, its link being free, so `running()` is exact. A
//! link that queues a second task on the far side (an MPI lane, depth 2,
//! so that the far side never idles for a round trip between tasks) says
//! so in its docs: its second task reports running while it waits there,
//! as Python reports the tasks in its call queue, and is never taken back
//! for an idle worker; dispatch hands out a second task only while no
//! other driver is idle. Its outcomes come in the payload of the `Done`
//! frame, not in a slot, in the order of its tasks. Time limits are the
//! far side's to enforce.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::process_pool::job::ProcessJob;
use crate::process_pool::spawn::{Exit, Received, Worker};
use crate::process_pool::sys::region::{Region, SLOTS};
use crate::process_pool::wire::{Message, WireError};
use crate::Error;

/// One worker, as a driver sees it.
pub(crate) trait Link: Send {
    /// The worker's process id, for errors (on another host for MPI).
    fn pid(&self) -> u32;
    /// The pid of a local child that may be signalled, if it is one.
    fn local_pid(&self) -> Option<u32>;
    /// The shared region, if the worker has one.
    fn region(&self) -> Option<&Arc<Region>>;
    /// How many tasks the link may hold at once (at most `SLOTS`); over
    /// one without a region, the later ones are marked running when sent
    /// (see the module docs).
    fn depth(&self) -> usize {
        if self.region().is_some() {
            SLOTS
        } else {
            1
        }
    }
    /// Whether `job` may be sent as the second task in hand, behind one
    /// the worker has not finished. A frame the link cannot take in whole
    /// may not: its write would wait for the worker to read past the first
    /// task, which it does only once that task is done, while the worker,
    /// to finish it, may be waiting for the driver to read its results (a
    /// chunk's outcomes over its slot, a result over 8 MiB): each would
    /// wait for the other forever. Such a task waits until the worker
    /// holds no other (or goes back to the queue for a worker that falls
    /// idle).
    fn may_hand(&self, _job: &dyn ProcessJob) -> bool {
        true
    }
    /// Sends `job`'s task for `slot`. [`WireError::TooLarge`] and
    /// [`WireError::Unsendable`] mean nothing was sent: the task fails, the
    /// worker is fine.
    fn send(&mut self, job: &dyn ProcessJob, slot: u8, max: u32) -> Result<(), WireError>;
    /// Reads the next frame, its payload into `payload` (see
    /// `Worker::receive_into`).
    fn receive_into(
        &mut self,
        deadline: Option<Instant>,
        stall: Duration,
        max: u32,
        payload: &mut Vec<u8>,
    ) -> Result<Message, Received>;
    /// A frame is on its way: wait for it without a deadline's sleep.
    fn expect_frame(&mut self) {}
    /// Whether bytes from the worker are read but not taken yet.
    fn has_buffered(&self) -> bool {
        false
    }
    /// Whether the worker has gone while it held no task.
    fn is_gone(&self) -> bool;
    /// Kills the worker if it still runs, and reaps it.
    fn kill_and_reap(self: Box<Self>) -> Exit;
    /// Tells the worker to stop, and reaps it (killed after `grace`).
    fn reap(self: Box<Self>, grace: Duration) -> Exit;
}

/// Where a driver gets its links from, other than by starting a local
/// worker process.
pub(crate) trait Connect: Send + Sync + std::fmt::Debug {
    /// The link for driver `slot`. [`Error::Spawn`] is retried with a
    /// pause while other links serve the pool; any other error breaks it.
    fn connect(&self, slot: usize) -> Result<Box<dyn Link>, Error>;
    /// How long `map`'s automatic chunks should take on these links: long
    /// enough that what a chunk costs the parent (its wake-ups, and a
    /// round trip whenever the far side runs out of tasks in hand) is a
    /// small part of it.
    fn target_chunk_time(&self) -> Duration;
}

impl Link for Worker {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn local_pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn region(&self) -> Option<&Arc<Region>> {
        Some(&self.region)
    }

    fn may_hand(&self, job: &dyn ProcessJob) -> bool {
        // Once the worker has read the first task (it reads a task whole
        // before it runs it), the pipe is empty and takes this frame whole:
        // its header, and its payload's pages lent (`vmsplice`) one pipe
        // buffer each, one more for a start and an end within pages.
        // Arguments in the arena travel as where they lie: a few bytes.
        const PAGE: usize = 4096;
        if job.shared_arguments().is_some() {
            return true;
        }
        let (_, payload) = job.message(0);
        payload.len() + 3 * PAGE <= self.task_pipe
    }

    fn send(&mut self, job: &dyn ProcessJob, slot: u8, max: u32) -> Result<(), WireError> {
        let (message, payload) = job.message(slot);
        match (message, job.shared_arguments()) {
            (
                Message::Task {
                    call,
                    func,
                    count,
                    slot,
                },
                Some((at, len)),
            ) => {
                let message = Message::TaskShared {
                    call,
                    func,
                    count,
                    slot,
                    at,
                    len,
                };
                self.send_with_fds(&message, &[], job.descriptors(), max)
            }
            (message, _) => self.send_with_fds(&message, payload, job.descriptors(), max),
        }
    }

    fn receive_into(
        &mut self,
        deadline: Option<Instant>,
        stall: Duration,
        max: u32,
        payload: &mut Vec<u8>,
    ) -> Result<Message, Received> {
        Worker::receive_into(self, deadline, stall, max, payload)
    }

    fn expect_frame(&mut self) {
        Worker::expect_frame(self);
    }

    fn has_buffered(&self) -> bool {
        Worker::has_buffered(self)
    }

    fn is_gone(&self) -> bool {
        Worker::is_gone(self)
    }

    fn kill_and_reap(self: Box<Self>) -> Exit {
        Worker::kill_and_reap(*self)
    }

    fn reap(self: Box<Self>, grace: Duration) -> Exit {
        Worker::reap(*self, grace)
    }
}

/// Descriptors cannot travel through a link that has no socket.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn refuse_descriptors(fds: &[OwnedFd]) -> Result<(), WireError> {
    if fds.is_empty() {
        Ok(())
    } else {
        Err(WireError::Unsendable(String::from(
            "its arguments hold multiprocessing handles, which cannot leave this machine",
        )))
    }
}
