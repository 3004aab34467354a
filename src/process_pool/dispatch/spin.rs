//! Where a driver watches for a little while before it sleeps: the end of
//! its worker's task in the shared region, and the queue when it is idle.
//! Waking a sleeping thread costs more than a short task on a virtual
//! machine, so a short wait is cheaper spent awake.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::{Link, Shared, IDLE_CHECK};
use crate::process_pool::job::ProcessJob;
use crate::process_pool::wire::gate;

/// How long a driver watches the shared region for the end of the task its
/// worker runs before it sleeps on the pipe: a short task's `Done` then
/// comes to a driver that is awake, rather than one the kernel must wake
/// (which costs more than the task on a virtual machine).
pub(super) const REPLY_SPIN: Duration = Duration::from_micros(20);

/// Watches slot `slot`'s gate for [`REPLY_SPIN`] (with more than one CPU,
/// and nothing read yet): until the worker says the task is finished, its
/// `Done` being on its way (`true`).
pub(super) fn watch_for_reply(worker: &dyn Link, slot: usize) -> bool {
    let Some(region) = worker.region() else {
        return false;
    };
    if !crate::future::spinning_helps() || worker.has_buffered() {
        return false;
    }
    let gate_word = region.gate(slot);
    let until = Instant::now() + REPLY_SPIN;
    loop {
        for _ in 0..64 {
            // ORDERING: Relaxed: a hint to stop spinning; the frame that
            // follows is read from the pipe, which orders the rest.
            if gate_word.load(Ordering::Relaxed) == gate::FINISHED {
                return true;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= until {
            return false;
        }
    }
}

/// How long an idle driver watches the queue before it sleeps on it. A
/// caller that submits its next task right after the last result (a loop
/// of `submit(…).result()`) then hands it over without waking a sleeping
/// thread, which costs more than the task on a virtual machine.
const QUEUE_SPIN: Duration = Duration::from_micros(20);

/// The next job from the queue: watched for [`QUEUE_SPIN`] (on one CPU,
/// yielding to the caller that submits it: `future::pause`), then waited
/// for until [`IDLE_CHECK`].
pub(super) fn next_job(shared: &Shared) -> Result<Box<dyn ProcessJob>, RecvTimeoutError> {
    let queue = shared.queue.receiver();
    let until = Instant::now() + QUEUE_SPIN;
    loop {
        match queue.try_recv() {
            Ok(job) => return Ok(job),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Err(RecvTimeoutError::Disconnected)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if Instant::now() >= until {
            break;
        }
        crate::future::pause();
    }
    queue.recv_timeout(IDLE_CHECK)
}
