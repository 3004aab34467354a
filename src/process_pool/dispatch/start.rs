//! Starting a driver's worker, again and again if it must.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Link, Shared};
use crate::process_pool::job::ProcessJob;
use crate::process_pool::spawn;
use crate::Error;

/// Starts a worker for `slot`, retrying with a growing pause: without end
/// while other workers serve the pool (tasks this driver carries go back
/// to the queue for them meanwhile), a few times over a few seconds when
/// none does, after which the pool breaks. An initializer that fails
/// breaks it at once, as in Python.
pub(super) fn start_worker(
    shared: &Shared,
    slot: usize,
    carry: &mut VecDeque<Box<dyn ProcessJob>>,
) -> Option<Box<dyn Link>> {
    const ALONE_ATTEMPTS: usize = 8;
    let mut pause = Duration::from_millis(5);
    let mut attempt = 0;
    loop {
        if shared.stopping() {
            return None;
        }
        let connected = match &shared.config.links {
            Some(links) => links.connect(slot),
            None => spawn::spawn(&shared.config.spawn).map(|w| Box::new(w) as Box<dyn Link>),
        };
        match connected {
            Ok(worker) => {
                shared.set_pid(slot, worker.local_pid());
                return Some(worker);
            }
            Err(Error::Spawn { reason }) => {
                attempt += 1;
                let others = shared.pids().len();
                if others == 0 && attempt >= ALONE_ATTEMPTS {
                    shared.queue.break_pool(reason);
                    return None;
                }
                if others > 0 {
                    // The others can run what this driver holds.
                    for job in carry.drain(..) {
                        if let Err((job, error)) = shared.submit(job) {
                            job.fail_rest(error);
                        }
                    }
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(error) => {
                let reason = match error {
                    Error::BrokenPool { reason } => reason,
                    error => error.to_string(),
                };
                shared.queue.break_pool(reason);
                return None;
            }
        }
    }
}
