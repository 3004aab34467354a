//! What a driver does with what its worker says, and with what a dead
//! worker leaves: frames taken in turn, and tasks settled by the shared
//! region (see the module docs of `dispatch` and `wire`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Ending, InFlight, Link, Shared, DEATH_GRACE};
use crate::process_pool::job::ProcessJob;
use crate::process_pool::sys;
use crate::process_pool::wire::{gate, Block, Message, WireError};
use crate::Error;

/// Takes the handed task back from the worker, if it has not started it,
/// and queues it for another.
pub(super) fn take_back(
    shared: &Shared,
    slot: usize,
    worker: &dyn Link,
    in_flight: &mut VecDeque<InFlight>,
) {
    let (Some(second), Some(region)) = (in_flight.get_mut(1), worker.region()) else {
        return;
    };
    // ORDERING: AcqRel, against the worker's claim of the same gate.
    let withdrawn = region
        .gate(second.slot)
        .compare_exchange(
            gate::QUEUED,
            gate::WITHDRAWN,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok();
    if !withdrawn {
        return;
    }
    shared.set_handed(slot, None);
    if let Some(mut job) = second.job.take() {
        if job.unhand() {
            if let Err((job, error)) = shared.submit(job) {
                job.abandon(error);
            }
        }
    }
}

/// Acts on one frame from a worker: a job that must be sent again (the
/// worker stopped at an argument it could not decode), or `Err` for a
/// frame that breaks the protocol.
pub(super) fn take_frame(
    shared: &Shared,
    worker: &dyn Link,
    in_flight: &mut VecDeque<InFlight>,
    message: Message,
    payload: &[u8],
) -> Result<Option<Box<dyn ProcessJob>>, String> {
    let pid = worker.pid();
    let front_slot = in_flight.front().map(|f| f.slot);
    let check = |slot: u8| {
        if Some(usize::from(slot)) == front_slot {
            Ok(())
        } else {
            Err(format!("it answered for slot {slot}, not the task it runs"))
        }
    };
    match message {
        Message::Partial { slot, count } => {
            check(slot)?;
            let block = Block::from_payload(payload, count as usize);
            accept_partial(in_flight, block, pid)?;
        }
        Message::PartialValues { slot, count, size } => {
            check(slot)?;
            let block = Block::from_values(payload, count as usize, size);
            accept_partial(in_flight, block, pid)?;
        }
        Message::Done {
            slot,
            count,
            failed,
            elapsed_nanos,
        } => {
            check(slot)?;
            let (job, slot) = take_front(in_flight)?;
            // Without a region, the outcomes are the frame's payload.
            let block = match worker.region() {
                Some(region) => Block::from_view(region.slot(slot), 0, count as usize),
                None => Block::from_payload(payload, count as usize),
            }
            .map_err(|e| e.to_string())?;
            let all_ok = failed == 0;
            return finish(shared, in_flight, job, &block, pid, all_ok, elapsed_nanos);
        }
        Message::Values {
            slot,
            count,
            size,
            elapsed_nanos,
        } => {
            check(slot)?;
            let (job, _) = take_front(in_flight)?;
            let block =
                Block::from_values(payload, count as usize, size).map_err(|e| e.to_string())?;
            return finish(shared, in_flight, job, &block, pid, true, elapsed_nanos);
        }
        Message::Skipped { slot } => {
            check(slot)?;
            // Withdrawn: its future is cancelled already, or the job was
            // taken back for another worker.
            in_flight.pop_front();
            start_next(in_flight);
        }
        other => return Err(format!("it answered a task with {other:?}")),
    }
    Ok(None)
}

/// Hands the front task the outcomes of a `Partial` or `PartialValues`.
fn accept_partial(
    in_flight: &mut VecDeque<InFlight>,
    block: Result<Block<'_>, WireError>,
    pid: u32,
) -> Result<(), String> {
    let block = block.map_err(|e| e.to_string())?;
    let job = in_flight
        .front_mut()
        .and_then(|f| f.job.as_mut())
        .ok_or("no task")?;
    job.accept(&block, pid, false);
    Ok(())
}

/// Takes the front task, done: its job and its slot.
fn take_front(in_flight: &mut VecDeque<InFlight>) -> Result<(Box<dyn ProcessJob>, usize), String> {
    let front = in_flight.pop_front().ok_or("no task")?;
    let job = front
        .job
        .ok_or("it ran a task it had been told was withdrawn")?;
    Ok((job, front.slot))
}

/// A task's last outcomes, `block`, came (in a `Done` or `Values`): hands
/// them to the job, and finishes it, or gives it back if some of its items
/// are to go again.
fn finish(
    shared: &Shared,
    in_flight: &mut VecDeque<InFlight>,
    mut job: Box<dyn ProcessJob>,
    block: &Block<'_>,
    pid: u32,
    all_ok: bool,
    elapsed_nanos: u64,
) -> Result<Option<Box<dyn ProcessJob>>, String> {
    job.accept(block, pid, all_ok);
    job.add_elapsed(Duration::from_nanos(elapsed_nanos));
    // The worker has moved on to the next task, if it has one.
    start_next(in_flight);
    if job.unresolved() > 0 {
        // Stopped at an argument that did not decode: the rest goes
        // again. A stop with no outcome at all is no stop.
        if job.resolved_in_message() == 0 {
            return Err(String::from("it answered a task with no outcome"));
        }
        job.rest_again();
        return Ok(Some(job));
    }
    shared.recycle(&mut *job);
    job.finish();
    Ok(None)
}

/// Marks the task the worker moves on to as running.
pub(super) fn start_next(in_flight: &mut VecDeque<InFlight>) {
    if let Some(job) = in_flight.front_mut().and_then(|f| f.job.as_mut()) {
        job.start();
    }
}

/// Settles what a worker that is gone (or must go) leaves behind: kills it
/// if `cause` says it must go, reads what it sent, reaps it, and sorts its
/// tasks by the shared region: finished items delivered, the running one
/// failed, the rest carried to the replacement.
pub(super) fn bury(
    shared: &Shared,
    slot: usize,
    mut worker: Box<dyn Link>,
    mut in_flight: VecDeque<InFlight>,
    carry: &mut VecDeque<Box<dyn ProcessJob>>,
    cause: Option<Error>,
) -> Ending {
    let pid = worker.pid();
    shared.set_pid(slot, None);
    let max_frame = shared.config.spawn.max_frame;
    let mut buffer = Vec::new();
    let Some(region) = worker.region().cloned() else {
        return bury_remote(worker, in_flight, cause);
    };
    let exit = if cause.is_some() {
        // Unusable: killed first, then what it sent before is read (the
        // process is gone, so the reads end at once).
        if let Some(local) = worker.local_pid() {
            sys::kill(local, libc::SIGKILL);
        }
        if !matches!(cause, Some(Error::Protocol { .. })) {
            drain(
                shared,
                &mut *worker,
                &mut in_flight,
                carry,
                max_frame,
                &mut buffer,
            );
        }
        worker.kill_and_reap()
    } else {
        drain(
            shared,
            &mut *worker,
            &mut in_flight,
            carry,
            max_frame,
            &mut buffer,
        );
        worker.reap(DEATH_GRACE)
    };
    // ORDERING: Acquire: the worker's handler stored it before it died.
    let overflowed = region.death().load(Ordering::Acquire) == sys::overflow::OVERFLOWED;
    let error = cause.unwrap_or(if overflowed {
        Error::StackOverflow { pid }
    } else {
        Error::WorkerDied {
            pid,
            exit_code: exit.code,
            signal: exit.signal,
        }
    });
    // Every task in its hands is settled by what the region says: one the
    // worker started (normally only the first; also the second when a
    // broken protocol left the first's `Done` unread) by its progress, one
    // it never started goes whole to the next worker.
    for InFlight { job, slot: s } in in_flight {
        let Some(mut job) = job else {
            continue;
        };
        // ORDERING: Acquire: pairs with the worker's Release stores; it is
        // dead, so these are its last words.
        let gate_now = region.gate(s).load(Ordering::Acquire);
        if gate_now == gate::STARTED || gate_now == gate::FINISHED {
            let progress = region.progress(s).load(Ordering::Acquire);
            let in_message = job.unresolved() + job.resolved_in_message();
            let finished = ((progress / 2) as usize).min(in_message);
            let running = progress % 2 == 1 && finished < in_message;
            let known = job.resolved_in_message();
            // The slot holds the outcomes from `base` on; those before it
            // came in `Partial` frames, which were all read (drained).
            let base = (region.base(s).load(Ordering::Acquire) as usize).min(finished);
            if base > known {
                // Handed over in frames that never arrived: they ran, and
                // are lost with the worker.
                while job.resolved_in_message() < base && job.unresolved() > 0 {
                    job.fail_next_only(error.clone());
                }
            }
            let known = job.resolved_in_message();
            if finished > known {
                match Block::from_view(region.slot(s), known - base, finished - known) {
                    Ok(block) => job.accept(&block, pid, false),
                    Err(e) => {
                        let reason = format!("its region is malformed: {e}");
                        job.fail_rest(Error::Protocol { pid, reason });
                        continue;
                    }
                }
            }
            job.fail_next(running.then(|| error.clone()));
            if job.unresolved() == 0 {
                shared.recycle(&mut *job);
                job.finish();
            } else {
                carry.push_back(job);
            }
        } else if job.unhand() {
            // Never started: it goes, whole, to the next worker.
            carry.push_back(job);
        }
    }
    Ending::Lost
}

/// Settles the tasks of a link without a region: what ran of them is not
/// known here, so none is sent again (nothing may run twice); each fails
/// with `cause`.
fn bury_remote(
    worker: Box<dyn Link>,
    in_flight: VecDeque<InFlight>,
    cause: Option<Error>,
) -> Ending {
    let pid = worker.pid();
    let exit = worker.kill_and_reap();
    let error = cause.unwrap_or(Error::WorkerDied {
        pid,
        exit_code: exit.code,
        signal: exit.signal,
    });
    for job in in_flight.into_iter().filter_map(|f| f.job) {
        job.fail_rest(error.clone());
    }
    Ending::Lost
}

/// Reads the frames a dead worker left in its pipe.
pub(super) fn drain(
    shared: &Shared,
    worker: &mut dyn Link,
    in_flight: &mut VecDeque<InFlight>,
    carry: &mut VecDeque<Box<dyn ProcessJob>>,
    max_frame: u32,
    buffer: &mut Vec<u8>,
) {
    while !in_flight.is_empty() {
        let deadline = Some(Instant::now() + DEATH_GRACE);
        match worker.receive_into(deadline, DEATH_GRACE, max_frame, buffer) {
            Ok(message) => match take_frame(shared, &*worker, in_flight, message, buffer) {
                Ok(again) => carry.extend(again),
                Err(_) => return,
            },
            Err(_) => return,
        }
    }
}
