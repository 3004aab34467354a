//! Which task goes to which worker, and what happens when a worker fails.
//!
//! One shared queue holds the tasks. Each worker slot has a driver thread
//! that owns one worker process: it takes the next task from the queue,
//! marks it running, writes it to its worker, and reads the reply, then
//! takes the next. One task at a time per worker means `running()` is true
//! exactly while a worker has the task, a task still in the queue can
//! always be cancelled, and a worker that dies takes exactly one task (or
//! one chunk of a `map`) with it.
//!
//! When a worker dies (end of file on its pipe), the driver reaps it, fails
//! its task with [`Error::WorkerDied`] (pid, exit code or signal), and
//! starts a replacement. A task over the per-task time limit has its worker
//! killed the same way and fails with [`Error::TaskTimedOut`]. The pool
//! breaks ([`Error::BrokenPool`] for every queued and later task) only when
//! a worker cannot be started: the process cannot be spawned, fails its
//! handshake, or its initializer fails.

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use parking_lot::Mutex;

use super::spawn::{self, Received, SpawnConfig, Worker};
use super::sys;
use super::wire::{self, outcome, Items, Message, PanicInfo};
use crate::future::Promise;
use crate::map::ChunkOutput;
use crate::queue::{Abandon, WorkQueue};
use crate::Error;

/// How long a worker whose pipe was closed may take to exit before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How often an idle driver checks that its worker is still alive.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// A task for a worker process, type-erased for the queue.
pub(crate) trait ProcessJob: Abandon {
    /// Marks the task running; `false` if it was cancelled.
    fn start(&self) -> bool;
    /// The task message and its payload.
    fn message(&self) -> (Message, &[u8]);
    /// Completes the future from the worker's reply.
    fn finish(self: Box<Self>, reply: Result<&Reply, Error>);
    /// The payload's buffer, once the worker has answered the task (and so
    /// has read it all), for the pool to reuse; empty if the job keeps it.
    fn take_payload(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// The descriptors of the multiprocessing handles in the arguments,
    /// sent beside the task (see `multiprocessing::transfer`).
    fn descriptors(&self) -> &[OwnedFd];
}

/// A worker's answer to one task.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) payload: Vec<u8>,
    pub(crate) elapsed: Duration,
    pub(crate) pid: u32,
}

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
}

/// What the pool's handle and its drivers share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) queue: WorkQueue<dyn ProcessJob, Workers>,
    /// The buffer of a submitted argument whose worker has answered (and so
    /// has read every byte of it), for the next `submit` to encode into:
    /// fresh memory is faulted in (and, on a virtual machine, often backed
    /// by the host) page by page, which cost a 64 MiB argument more than
    /// copying it.
    pub(crate) spare: Mutex<Vec<u8>>,
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

    fn set_pid(&self, slot: usize, pid: Option<u32>) {
        if let Some(entry) = self.queue.lock().pool.pids.get_mut(slot) {
            *entry = pid;
        }
    }

    fn stopping(&self) -> bool {
        self.queue.lock().pool.stopping
    }

    /// A buffer for an argument, the spare one if there is one.
    pub(crate) fn payload_buffer(&self) -> Vec<u8> {
        self.spare
            .try_lock()
            .map(|mut spare| std::mem::take(&mut *spare))
            .unwrap_or_default()
    }

    /// Keeps `buffer` for the next [`payload_buffer`](Self::payload_buffer),
    /// unless there is nothing to keep (a job that keeps its payload gives
    /// an empty one, which must not replace the spare) or it is large and
    /// was less than half used: a large buffer is kept only while large
    /// arguments keep coming.
    fn recycle(&self, mut buffer: Vec<u8>) {
        const SMALL: usize = 64 * 1024;
        let oversized = buffer.capacity() > SMALL && buffer.len() < buffer.capacity() / 2;
        if buffer.capacity() == 0 || oversized {
            return;
        }
        buffer.clear();
        if let Some(mut spare) = self.spare.try_lock() {
            *spare = buffer;
        }
    }
}

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

/// One slot's life: keep a worker, feed it tasks one at a time.
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
    let Some(mut worker) = start_worker(shared, slot) else {
        return;
    };
    let mut tasks_done = 0usize;
    // The last reply's buffer, for the next one.
    let mut buffer = Vec::new();
    // Completes a job and keeps its reply's buffer, and its payload's for
    // the next `submit`: only now, once the worker has answered, has it
    // read every byte lent to its pipe (`wire::write_frame`).
    let finish =
        |mut job: Box<dyn ProcessJob>, outcome: Result<Reply, Error>, buffer: &mut Vec<u8>| {
            let payload = job.take_payload();
            match outcome {
                Ok(reply) => {
                    job.finish(Ok(&reply));
                    *buffer = reply.payload;
                }
                Err(error) => job.finish(Err(error)),
            }
            shared.recycle(payload);
        };
    // A job already written to the worker, whose reply is still to come.
    let mut sent: Option<Box<dyn ProcessJob>> = None;
    loop {
        let job = match sent.take() {
            Some(job) => job,
            None => {
                let job = match next_job(shared) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        // Idle: a worker that died meanwhile (killed from
                        // outside, out of memory) is reaped and replaced
                        // now, not when the next task would find it gone.
                        if worker.is_gone() {
                            shared.set_pid(slot, None);
                            worker.reap(EXIT_GRACE);
                            let Some(fresh) = replace_worker(shared, slot) else {
                                return;
                            };
                            worker = fresh;
                            tasks_done = 0;
                        }
                        continue;
                    }
                };
                if !job.start() {
                    continue; // cancelled while queued
                }
                match send_to(shared, slot, worker, job.as_ref()) {
                    Ok(alive) => {
                        worker = alive;
                        job
                    }
                    Err((error, alive)) => {
                        job.finish(Err(error));
                        worker = match alive {
                            Some(alive) => alive,
                            None => {
                                tasks_done = 0;
                                let Some(fresh) = replace_worker(shared, slot) else {
                                    return;
                                };
                                fresh
                            }
                        };
                        continue;
                    }
                }
            }
        };
        let (outcome, alive) = receive_from(shared, slot, worker, &mut buffer);
        tasks_done += 1;
        let retire = shared
            .config
            .max_tasks_per_child
            .is_some_and(|max| tasks_done >= max.get());
        match alive {
            Some(mut alive) if !retire => {
                // Hand the worker its next task before this one's results
                // are decoded, so that it computes while the driver decodes.
                if let Ok(next) = shared.queue.receiver().try_recv() {
                    if next.start() {
                        match send_to(shared, slot, alive, next.as_ref()) {
                            Ok(still) => {
                                alive = still;
                                sent = Some(next);
                            }
                            Err((error, still)) => {
                                next.finish(Err(error));
                                match still {
                                    Some(still) => alive = still,
                                    None => {
                                        finish(job, outcome, &mut buffer);
                                        tasks_done = 0;
                                        let Some(fresh) = replace_worker(shared, slot) else {
                                            return;
                                        };
                                        worker = fresh;
                                        continue;
                                    }
                                }
                            }
                        }
                    }
                }
                finish(job, outcome, &mut buffer);
                worker = alive;
                continue;
            }
            Some(retired) => {
                // Unlisted before anyone hears of the task, reaped after.
                shared.set_pid(slot, None);
                finish(job, outcome, &mut buffer);
                retired.reap(EXIT_GRACE);
            }
            // `receive_from` unlisted and reaped it.
            None => finish(job, outcome, &mut buffer),
        }
        tasks_done = 0;
        let Some(fresh) = replace_worker(shared, slot) else {
            return;
        };
        worker = fresh;
    }
    shared.set_pid(slot, None);
    worker.reap(EXIT_GRACE);
}

/// How long an idle driver watches the queue before it sleeps on it. A
/// caller that submits its next task right after the last result (a loop
/// of `submit(…).result()`) then hands it over without waking a sleeping
/// thread, which costs more than the task on a virtual machine.
const QUEUE_SPIN: Duration = Duration::from_micros(20);

/// The next job from the queue: watched for [`QUEUE_SPIN`] (with more than
/// one CPU), then waited for until [`IDLE_CHECK`].
fn next_job(shared: &Shared) -> Result<Box<dyn ProcessJob>, RecvTimeoutError> {
    let queue = shared.queue.receiver();
    if crate::future::spinning_helps() {
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
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
    queue.recv_timeout(IDLE_CHECK)
}

/// Starts the replacement of a worker that is gone, unless the pool is
/// being stopped.
fn replace_worker(shared: &Shared, slot: usize) -> Option<Worker> {
    if shared.stopping() {
        return None;
    }
    if !shared.config.replace_workers {
        // A one-shot pool: its process is gone, and so is the pool.
        shared
            .queue
            .break_pool(String::from("its one worker process has ended"));
        return None;
    }
    start_worker(shared, slot)
}

/// Starts a worker for `slot`, or breaks the pool if it cannot.
fn start_worker(shared: &Shared, slot: usize) -> Option<Worker> {
    // A worker killed from outside while it starts (say, by the
    // out-of-memory killer) is no reason to break the pool: try again,
    // a few times. An initializer that fails breaks it at once, as in
    // Python.
    const ATTEMPTS: usize = 3;
    let mut outcome = spawn::spawn(&shared.config.spawn);
    for _ in 1..ATTEMPTS {
        match outcome {
            Err(Error::Spawn { .. }) if !shared.stopping() => {
                outcome = spawn::spawn(&shared.config.spawn);
            }
            _ => break,
        }
    }
    match outcome {
        Ok(worker) => {
            shared.set_pid(slot, Some(worker.pid));
            Some(worker)
        }
        Err(error) => {
            let reason = match error {
                Error::BrokenPool { reason } => reason,
                error => error.to_string(),
            };
            shared.queue.break_pool(reason);
            None
        }
    }
}

/// Writes `job` to `worker`. Gives the worker back if it is still usable
/// (also when the job was refused for its size); a worker that is not has
/// been unlisted from `slot` and reaped. A worker found dead before it read
/// the job is replaced once and the job sent again: it never ran.
// The worker travels by value either way, once per task, next to a write
// to a pipe; boxing it to shrink the error would cost more than the move.
#[allow(clippy::result_large_err)]
fn send_to(
    shared: &Shared,
    slot: usize,
    mut worker: Worker,
    job: &dyn ProcessJob,
) -> Result<Worker, (Error, Option<Worker>)> {
    let max_frame = shared.config.spawn.max_frame;
    let (message, payload) = job.message();
    let mut resent = false;
    while let Err(e) = worker.send_with_fds(&message, payload, job.descriptors(), max_frame) {
        if let wire::WireError::TooLarge { len, max } = e {
            // Nothing was written: the worker is fine, the task is not.
            let reason =
                format!("the task's arguments take {len} bytes, over the frame limit of {max}");
            let error = Error::Encode {
                what: "argument",
                reason,
            };
            return Err((error, Some(worker)));
        }
        let pid = worker.pid;
        shared.set_pid(slot, None);
        let exit = worker.reap(EXIT_GRACE);
        if resent || shared.stopping() || !shared.config.replace_workers {
            return Err((died(pid, exit), None));
        }
        resent = true;
        worker = match start_worker(shared, slot) {
            Some(fresh) => fresh,
            None => return Err((died(pid, exit), None)),
        };
    }
    Ok(worker)
}

/// Reads the reply to the job last sent to `worker`. Gives the worker back
/// if it is still usable; a worker that is not has been unlisted from
/// `slot` and reaped (or killed and reaped) before this returns.
fn receive_from(
    shared: &Shared,
    slot: usize,
    mut worker: Worker,
    buffer: &mut Vec<u8>,
) -> (Result<Reply, Error>, Option<Worker>) {
    let max_frame = shared.config.spawn.max_frame;
    let pid = worker.pid;
    let deadline = shared
        .config
        .task_timeout
        .and_then(|limit| Instant::now().checked_add(limit));
    let received = worker.receive_into(deadline, max_frame, buffer);
    if let Ok(Message::Done { elapsed_nanos, .. }) = received {
        let reply = Reply {
            payload: std::mem::take(buffer),
            elapsed: Duration::from_nanos(elapsed_nanos),
            pid,
        };
        return (Ok(reply), Some(worker));
    }
    // Whatever went wrong, this worker is done for: unlist it first, so
    // that nobody sees a pid that is about to be reaped.
    shared.set_pid(slot, None);
    let error = match received {
        Ok(message) => {
            worker.kill_and_reap();
            let reason = format!("it answered a task with {message:?}");
            Error::Protocol { pid, reason }
        }
        Err(Received::TimedOut) => {
            worker.kill_and_reap();
            let limit = shared.config.task_timeout.unwrap_or_default();
            Error::TaskTimedOut { limit, pid }
        }
        Err(Received::Wire(wire::WireError::Closed | wire::WireError::Truncated { .. })) => {
            died(pid, worker.reap(EXIT_GRACE))
        }
        Err(Received::Wire(e)) => {
            worker.kill_and_reap();
            let reason = e.to_string();
            Error::Protocol { pid, reason }
        }
    };
    (Err(error), None)
}

fn died(pid: u32, exit: spawn::Exit) -> Error {
    Error::WorkerDied {
        pid,
        exit_code: exit.code,
        signal: exit.signal,
    }
}

/// Turns a Done payload back into one result per item, in order. After
/// the last outcome in the payload it yields [`Error::Protocol`] for every
/// further item asked for (a worker that broke off), so it never ends.
#[cfg(feature = "fuzzing")]
pub(crate) fn outcomes<R>(reply: &Reply) -> impl Iterator<Item = Result<R, Error>> + '_
where
    R: serde::de::DeserializeOwned,
{
    let mut items = Items::new(&reply.payload);
    std::iter::from_fn(move || Some(next_outcome(reply.pid, &mut items)))
}

/// Decodes the next outcome of a Done payload: the value of an item that
/// succeeded, or why it did not. After the last outcome (or a malformed
/// one, after which nothing can be trusted) every call gives
/// [`Error::Protocol`].
#[inline]
fn next_outcome<R>(pid: u32, items: &mut Items<'_>) -> Result<R, Error>
where
    R: serde::de::DeserializeOwned,
{
    match items.next_ok() {
        Some(bytes) => postcard::from_bytes::<R>(bytes).map_err(|e| undecodable_result(&e)),
        // Not a whole OK entry: the item's own failure, or a payload that
        // is short or malformed.
        None => {
            let entry = items.next_outcome();
            Err(failed_outcome(pid, entry, items))
        }
    }
}

#[cold]
fn undecodable_result(error: &postcard::Error) -> Error {
    Error::Decode {
        what: "result",
        reason: wire::why(error),
    }
}

/// The error for an outcome other than a value: the item's own failure,
/// or a payload that is short or malformed.
#[cold]
#[inline(never)]
fn failed_outcome(
    pid: u32,
    entry: Result<Option<(u8, &[u8])>, wire::WireError>,
    items: &mut Items<'_>,
) -> Error {
    let (tag, bytes) = match entry {
        Ok(Some(outcome)) => outcome,
        Ok(None) => {
            let reason = String::from("the worker sent fewer results than items");
            return Error::Protocol { pid, reason };
        }
        Err(e) => {
            // Nothing after a malformed entry can be trusted.
            *items = Items::new(&[]);
            let reason = format!("a result frame is malformed: {e}");
            return Error::Protocol { pid, reason };
        }
    };
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match tag {
        outcome::PANICKED => match postcard::from_bytes::<PanicInfo>(bytes) {
            Ok(info) => Error::Panicked {
                message: info.message,
                location: info.location,
                pid: Some(pid),
            },
            Err(e) => Error::Protocol {
                pid,
                reason: format!("an undecodable panic report: {e}"),
            },
        },
        outcome::BAD_ARGUMENT => Error::Decode {
            what: "argument",
            reason: text(),
        },
        // A worker short of room sends no reason: it is always this one.
        outcome::BAD_RESULT if bytes.is_empty() => Error::Encode {
            what: "result",
            reason: String::from(
                "the results of its chunk are over the pool's frame limit (max_message_size)",
            ),
        },
        outcome::BAD_RESULT => Error::Encode {
            what: "result",
            reason: text(),
        },
        tag => Error::Protocol {
            pid,
            reason: format!("an unknown outcome tag {tag}"),
        },
    }
}

/// The Task message for `count` items. A chunk's items are counted in a
/// `usize` but a map never makes chunks anywhere near `u32::MAX` items.
fn task_message(call: u64, func: u64, count: usize) -> Message {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    Message::Task { call, func, count }
}

/// A single submitted call: one item, one future.
pub(crate) struct SingleJob<R> {
    pub(crate) call: u64,
    pub(crate) func: u64,
    pub(crate) payload: Vec<u8>,
    /// The descriptors of the handles in the argument.
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) promise: Promise<R>,
}

impl<R> ProcessJob for SingleJob<R>
where
    R: serde::de::DeserializeOwned + Send,
{
    fn start(&self) -> bool {
        self.promise.start()
    }

    fn message(&self) -> (Message, &[u8]) {
        (task_message(self.call, self.func, 1), &self.payload)
    }

    fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }

    fn descriptors(&self) -> &[OwnedFd] {
        &self.fds
    }

    fn finish(self: Box<Self>, reply: Result<&Reply, Error>) {
        let outcome =
            reply.and_then(|reply| next_outcome(reply.pid, &mut Items::new(&reply.payload)));
        // The argument's descriptors are closed before anyone hears of
        // the result.
        let SingleJob { fds, promise, .. } = *self;
        drop(fds);
        promise.complete(outcome);
    }
}

impl<R: Send> Abandon for SingleJob<R> {
    fn abandon(self: Box<Self>, error: Error) {
        self.promise.abandon(error);
    }
}

/// One chunk of a `map`: many items, one future of their results. Items
/// whose argument could not be encoded are not sent; their errors are put
/// back in place.
pub(crate) struct ChunkJob<R> {
    pub(crate) call: u64,
    pub(crate) func: u64,
    pub(crate) payload: Vec<u8>,
    /// The number of items in the chunk, sent or not.
    pub(crate) len: usize,
    /// The items not sent, by index (ascending), and why.
    pub(crate) unsent: Vec<(usize, Error)>,
    /// The descriptors of the handles in the arguments.
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) promise: Promise<ChunkOutput<R>>,
}

impl<R> ProcessJob for ChunkJob<R>
where
    R: serde::de::DeserializeOwned + Send,
{
    fn start(&self) -> bool {
        self.promise.start()
    }

    fn message(&self) -> (Message, &[u8]) {
        let count = self.len - self.unsent.len();
        (task_message(self.call, self.func, count), &self.payload)
    }

    fn descriptors(&self) -> &[OwnedFd] {
        &self.fds
    }

    fn finish(self: Box<Self>, reply: Result<&Reply, Error>) {
        let mut this = *self;
        // The arguments' descriptors are closed before anyone hears of
        // the results.
        drop(std::mem::take(&mut this.fds));
        let mut values = Vec::with_capacity(this.len);
        let mut failures = Vec::new();
        let mut unsent = this.unsent.into_iter().peekable();
        let elapsed = match &reply {
            Ok(reply) => {
                let mut sent = Items::new(&reply.payload);
                for index in 0..this.len {
                    if let Some((_, error)) = unsent.next_if(|(at, _)| *at == index) {
                        failures.push((index, error));
                        continue;
                    }
                    // The common case, a value, is decoded here without
                    // going through `Result<R, Error>` (large: moving one
                    // per item cost more than decoding a small value). Not
                    // a whole OK entry: the item's own failure, or a
                    // payload that is short or malformed.
                    let Some(bytes) = sent.next_ok() else {
                        let entry = sent.next_outcome();
                        failures.push((index, failed_outcome(reply.pid, entry, &mut sent)));
                        continue;
                    };
                    match postcard::from_bytes::<R>(bytes) {
                        Ok(value) => values.push(value),
                        Err(e) => failures.push((index, undecodable_result(&e))),
                    }
                }
                reply.elapsed
            }
            // The items sent share their worker's fate.
            Err(error) => {
                for index in 0..this.len {
                    let error = match unsent.next_if(|(at, _)| *at == index) {
                        Some((_, own)) => own,
                        None => error.clone(),
                    };
                    failures.push((index, error));
                }
                Duration::ZERO
            }
        };
        let output = ChunkOutput {
            values,
            failures,
            elapsed,
        };
        this.promise.complete(Ok(output));
    }
}

impl<R: Send> Abandon for ChunkJob<R> {
    fn abandon(self: Box<Self>, error: Error) {
        self.promise.abandon(error);
    }
}
