//! A worker rank: every rank but 0, from `init()` on. Its MPI thread waits
//! for rank 0's `HELLO` (or a `STOP` before any), answers `READY` with this
//! build's prefix and its lanes, then serves tasks until `STOP`, answers
//! `STOPPED`, finalises MPI and exits 0.
//!
//! * **Direct** ([`Mode::Direct`]): one lane; each task runs on the MPI
//!   thread itself, its outcomes written by the same code a local worker
//!   uses (`Outcomes`, into a private region), sent back as one message of
//!   frames. A crash in a task ends this rank, and with it the MPI job.
//! * **Local** ([`Mode::Local`]): a local `ProcessPoolExecutor` of this
//!   rank's own, one lane per local worker; each task becomes a [`RawJob`]
//!   on it, so a crash costs its item alone, exactly as on a local pool.
//!
//! A worker rank may have been launched with the job or spawned by rank 0
//! (spawn mode); it cannot tell the difference past `sys`, which numbers
//! rank 0 as 0 either way.
//!
//! Rank 0 keeps up to [`DEPTH`] tasks out on each lane: the rank queues
//! the next behind the one it runs (direct: unread in MPI until the first
//! is answered; local: on the local pool, whose own dispatch hands it to a
//! worker behind its running task) and answers each lane's tasks in order
//! ([`Outbox`]).
//!
//! Waiting: between tasks the MPI thread polls MPI, spinning (yielding) a
//! while after the last event, then napping (`poll`). In local mode, while
//! every lane holds [`DEPTH`] tasks, rank 0 sends nothing but `STOP`
//! (which waits for the replies), so the thread sleeps on the replies'
//! channel instead, leaving the core to the local workers.

use std::collections::VecDeque;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::poll::Backoff;
use super::protocol::{
    self, Hello, Mode, RankInfo, Ready, DEPTH, HELLO, LANE, PREFIX, STOP, STOPPED,
};
use super::raw_job::{encode_reply, Finished, RawJob, Reply};
use super::sys::Mpi;
use super::task::{parse_task, Task};
use crate::process_pool::outcomes::{Outcomes, Sink};
use crate::process_pool::sys::{self, region::Region};
use crate::process_pool::wire::{self, Message};
use crate::ProcessPoolExecutor;

/// Serves rank 0 until it says stop; the process's exit status.
pub(crate) fn serve(mut mpi: Mpi, ours: Result<[u8; PREFIX], String>) -> i32 {
    let mut buffer = Vec::new();
    let hello = match wait_for(&mut mpi, &mut buffer, &[HELLO, STOP]) {
        Ok(HELLO) => std::mem::take(&mut buffer),
        Ok(_) => return stopped(mpi),
        Err(why) => return failed(&why),
    };
    let (prefix, runner) = match &ours {
        Ok(prefix) => (*prefix, prepare(&mpi, prefix, &hello)),
        // The rank cannot tell who it is: all-zero prefix, refused by rank 0.
        Err(why) => ([0; PREFIX], Err(why.clone())),
    };
    let mut answer = prefix.to_vec();
    let outcome = match &runner {
        Ok(runner) => Ok(RankInfo {
            lanes: runner.lanes() as u32,
            pid: std::process::id(),
            node: mpi.node.clone(),
        }),
        Err(why) => Err(why.clone()),
    };
    // A prefix that differs from rank 0's says all: rank 0 reads no more.
    if let Ok(bytes) = postcard::to_allocvec(&Ready { outcome }) {
        answer.extend_from_slice(&bytes);
    }
    if let Err(why) = mpi.post(answer, 0, protocol::READY).map(drop) {
        return failed(&why);
    }
    let outcome = match runner {
        Ok(Runner::Direct(mut direct)) => direct.serve(&mut mpi, &mut buffer),
        Ok(Runner::Local(local)) => local.serve(&mut mpi, &mut buffer),
        // Refused: rank 0 stops every rank.
        Err(_) => wait_for(&mut mpi, &mut buffer, &[STOP]).map(|_| ()),
    };
    match outcome {
        Ok(()) => stopped(mpi),
        Err(why) => failed(&why),
    }
}

#[cold]
fn failed(why: &str) -> i32 {
    eprintln!(
        "concurrent-futures: MPI worker rank (process {}) failed: {why}",
        std::process::id()
    );
    1
}

/// Answers `STOPPED` and finalises MPI: exit status 0.
fn stopped(mut mpi: Mpi) -> i32 {
    let finalized = mpi
        .post(Vec::new(), 0, STOPPED)
        .and_then(|_| mpi.finalize());
    match finalized {
        Ok(()) => 0,
        Err(why) => failed(&why),
    }
}

/// Waits for a message from rank 0 with one of `tags` (others are dropped),
/// its bytes into `buffer`.
fn wait_for(mpi: &mut Mpi, buffer: &mut Vec<u8>, tags: &[i32]) -> Result<i32, String> {
    let mut backoff = Backoff::new();
    loop {
        mpi.progress()?;
        match mpi.receive(Some(0), buffer)? {
            Some((_, tag)) => {
                if tags.contains(&tag) {
                    return Ok(tag);
                }
            }
            None => std::thread::sleep(backoff.idle()),
        }
    }
}

/// A task that ran this long is followed by naps, not a spin, while the
/// rank waits for the next (see [`Backoff::rested`]).
const LONG_TASK: std::time::Duration = std::time::Duration::from_millis(1);

/// How this rank will run tasks, set up from rank 0's greeting.
enum Runner {
    Direct(Direct),
    Local(Local),
}

impl Runner {
    fn lanes(&self) -> usize {
        match self {
            Runner::Direct(_) => 1,
            Runner::Local(local) => local.pool.max_workers(),
        }
    }
}

fn prepare(mpi: &Mpi, ours: &[u8; PREFIX], hello: &[u8]) -> Result<Runner, String> {
    if let Some(why) = protocol::mismatch(ours, hello) {
        return Err(format!("rank 0 {why}"));
    }
    let hello: Hello = postcard::from_bytes(&hello[PREFIX..])
        .map_err(|e| format!("rank 0's greeting does not decode: {e}"))?;
    let initializer = hello.initializer.map(|offset| {
        // SAFETY: rank 0 sent the offset of an `fn() -> Result<(), String>`
        // (its builder only takes that type) in this same build (the
        // prefix, checked above, holds the executable's hash).
        unsafe { sys::initializer_at(sys::address_at(offset)) }
    });
    match hello.mode {
        Mode::Direct => {
            if let Some(init) = initializer {
                let pid = Some(std::process::id());
                crate::unwind::catch(init, pid)
                    .unwrap_or_else(|e| Err(e.to_string()))
                    .map_err(|why| format!("its initializer failed: {why}"))?;
            }
            let region =
                Region::create().map_err(|e| format!("cannot make its outcome region: {e}"))?;
            Ok(Runner::Direct(Direct {
                region,
                max_frame: hello.max_frame,
            }))
        }
        Mode::Local { workers } => {
            let workers = match workers {
                0 => share_of_cpus(mpi, &hello.root_node),
                n => n as usize,
            };
            let mut builder = ProcessPoolExecutor::builder()
                .max_workers(workers)
                .max_message_size(hello.max_frame);
            if let Some(init) = initializer {
                builder = builder.initializer(init);
            }
            if let Some(tasks) = hello.max_tasks_per_child {
                builder = builder.max_tasks_per_child(tasks as usize);
            }
            if let Some(limit) = hello.task_timeout {
                builder = builder.task_timeout(limit);
            }
            let pool = builder
                .build()
                .map_err(|e| format!("cannot start its local pool: {e}"))?;
            let (replies, done) = crossbeam_channel::unbounded();
            Ok(Runner::Local(Local {
                pool,
                replies,
                done,
                max_frame: hello.max_frame,
            }))
        }
    }
}

/// This rank's share of its node's CPUs: divided among the worker ranks on
/// the node (rank 0, which mostly waits, is not counted), at least one.
fn share_of_cpus(mpi: &Mpi, root_node: &str) -> usize {
    let mut workers_here = mpi.node_ranks;
    if mpi.node == root_node && !mpi.spawned {
        workers_here = workers_here.saturating_sub(1);
    }
    (num_cpus::get() / workers_here.max(1)).max(1)
}

/// Tasks run on this thread.
struct Direct {
    region: Region,
    max_frame: u32,
}

impl Direct {
    fn serve(&mut self, mpi: &mut Mpi, buffer: &mut Vec<u8>) -> Result<(), String> {
        crate::unwind::install_hook();
        let mut payload = Vec::new();
        let (mut scratch, mut spill, mut last_reply) = (Vec::new(), Vec::new(), 0);
        let mut backoff = Backoff::new();
        loop {
            mpi.progress()?;
            let Some((_, tag)) = mpi.receive(Some(0), buffer)? else {
                std::thread::sleep(backoff.idle());
                continue;
            };
            backoff.busy();
            match tag {
                STOP => return Ok(()),
                tag if tag >= LANE => {}
                _ => continue,
            }
            let task = parse_task(tag, buffer, self.max_frame, &mut payload)?;
            // A reply about the size of the last, in a buffer kept from an
            // earlier message.
            let mut frames = mpi.buffer(last_reply);
            let started = Instant::now();
            self.run(&task, &payload, &mut frames, &mut scratch, &mut spill);
            last_reply = frames.len();
            mpi.post(frames, 0, LANE + task.lane as i32)?;
            if started.elapsed() >= LONG_TASK {
                backoff.rested();
            }
        }
    }

    /// Runs one task, its reply's frames into `frames`.
    fn run(
        &mut self,
        task: &Task,
        payload: &[u8],
        frames: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        spill: &mut Vec<u8>,
    ) {
        let start = Instant::now();
        let max = self.max_frame;
        // The slot rank 0 named (its Partial frames name it too): with two
        // tasks out on the lane, rank 0 tells their replies apart by it.
        let slot = usize::from(task.slot);
        let mut outcomes = Outcomes::new(
            &mut self.region,
            slot,
            Sink::Buffer(frames),
            max,
            scratch,
            spill,
        );
        // SAFETY: `call` is the offset of a `trampoline::<A, R>` rank 0 took
        // the address of, in this same build (the handshake compared the
        // executables' hashes and the probe's offset).
        let trampoline = unsafe { sys::trampoline_at(sys::address_at(task.call)) };
        trampoline(
            sys::address_at(task.func),
            payload,
            task.count,
            &mut outcomes,
        );
        // The rest go in the reply's last frames (`encode_reply` splits
        // them under the frame limit).
        outcomes.reclaim_spill();
        let (count, _) = outcomes.done_counts();
        let elapsed = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Plain values whose ends were left implied go as they are, in a
        // `Values` frame with no ends, if it fits a frame (its header
        // takes under 32 bytes); else the reply copies the ends, those
        // left implied written first.
        let size = outcomes.implied_size();
        let bytes = u64::from(count) * size as u64;
        let as_values = size > 0 && count > 0 && bytes + 32 <= u64::from(max);
        if !as_values {
            outcomes.materialize();
        }
        let view = self.region.slot(slot);
        if as_values {
            let values = Message::Values {
                slot: task.slot,
                count,
                size: size as u32,
                elapsed_nanos: elapsed,
            };
            if wire::append_frame(&values, &view.data[..bytes as usize], max, frames).is_ok() {
                return;
            }
        }
        // (A `Values` frame refused after all: its ends, as implied.)
        let implied: Vec<u32>;
        let ends = if as_values {
            implied = (1..=count).map(|i| i * size as u32).collect();
            &implied
        } else {
            &view.ends[..count as usize]
        };
        frames.extend_from_slice(&encode_reply(ends, view.data, task.slot, max, elapsed));
    }
}

/// Tasks run on a local pool.
struct Local {
    pool: ProcessPoolExecutor,
    replies: crossbeam_channel::Sender<Finished>,
    done: Receiver<Finished>,
    max_frame: u32,
}

impl Local {
    fn serve(self, mpi: &mut Mpi, buffer: &mut Vec<u8>) -> Result<(), String> {
        let mut backoff = Backoff::new();
        let lanes = self.pool.max_workers();
        let mut outbox = Outbox::new(lanes);
        loop {
            let mut busy = false;
            if outbox.out == lanes * DEPTH && mpi.sending() == 0 {
                // Every lane holds all rank 0 sends it, so rank 0 sends
                // nothing but `STOP` (which waits for the replies): wait
                // for a reply on the channel, which wakes this thread,
                // rather than spin beside the local pool's threads and
                // workers (on a rank bound to one core they share it).
                self.await_reply(mpi, super::poll::MAX_NAP, &mut outbox, &mut backoff)?;
            }
            if let Some((_, tag)) = mpi.receive(Some(0), buffer)? {
                busy = true;
                match tag {
                    STOP => {
                        // Nothing runs any more: rank 0 waits for no reply.
                        self.pool.kill_workers();
                        return Ok(());
                    }
                    tag if tag >= LANE => {
                        // Into a buffer an earlier task gave back.
                        let mut payload = mpi.buffer(buffer.len());
                        let task = parse_task(tag, buffer, self.max_frame, &mut payload)?;
                        if task.lane >= lanes {
                            return Err(format!("rank 0 sent a task for lane {}", task.lane));
                        }
                        let Some(bounds) = task.bounds else {
                            return Err(format!(
                                "rank 0 sent no item ends for {} items",
                                task.count
                            ));
                        };
                        outbox.expect(task.lane, task.slot)?;
                        let job = RawJob::new(
                            task.lane,
                            task.slot,
                            task.call,
                            task.func,
                            payload,
                            bounds,
                            self.max_frame,
                            self.replies.clone(),
                        );
                        self.pool.submit_job(Box::new(job));
                    }
                    _ => {}
                }
            }
            while let Ok((reply, spent)) = self.done.try_recv() {
                busy = true;
                spent.into_iter().for_each(|buffer| mpi.keep(buffer));
                outbox.deliver(mpi, reply)?;
            }
            mpi.progress()?;
            if busy {
                outbox.after_event(&mut backoff);
                continue;
            }
            let nap = backoff.idle();
            if nap.is_zero() {
                continue;
            }
            self.await_reply(mpi, nap, &mut outbox, &mut backoff)?;
        }
    }

    /// Waits up to `nap` for a reply of the local pool, and sends it on.
    fn await_reply(
        &self,
        mpi: &mut Mpi,
        nap: std::time::Duration,
        outbox: &mut Outbox,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        match self.done.recv_timeout(nap) {
            Ok((reply, spent)) => {
                spent.into_iter().for_each(|buffer| mpi.keep(buffer));
                outbox.deliver(mpi, reply)?;
                outbox.after_event(backoff);
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                Err(String::from("its local pool's replies stopped"))
            }
        }
    }
}

/// The replies of a rank with a local pool, sent to rank 0 in the order of
/// each lane's tasks: a lane's two tasks may run on two local workers, and
/// the second may end first.
struct Outbox {
    /// Per lane, the slots of its tasks on the local pool, oldest first,
    /// and when each went there.
    order: Vec<VecDeque<(u8, Instant)>>,
    /// Per lane, replies that came before the one ahead of them.
    held: Vec<Vec<(u8, Vec<u8>)>>,
    /// Tasks on the local pool whose reply is not sent yet.
    out: usize,
    /// Whether a task sent back since the last [`Outbox::after_event`]
    /// took [`LONG_TASK`] or more.
    long: bool,
}

impl Outbox {
    fn new(lanes: usize) -> Self {
        Outbox {
            order: vec![VecDeque::new(); lanes],
            held: vec![Vec::new(); lanes],
            out: 0,
            long: false,
        }
    }

    /// A task for `lane`'s `slot` goes to the local pool.
    fn expect(&mut self, lane: usize, slot: u8) -> Result<(), String> {
        let order = &mut self.order[lane];
        if order.len() >= DEPTH {
            return Err(format!("rank 0 sent lane {lane} more than {DEPTH} tasks"));
        }
        order.push_back((slot, Instant::now()));
        self.out += 1;
        Ok(())
    }

    /// Sends `reply` to rank 0 if it is its lane's oldest, then any held
    /// one that is now; holds it otherwise.
    fn deliver(&mut self, mpi: &mut Mpi, reply: Reply) -> Result<(), String> {
        self.release(reply, |lane, frames| {
            mpi.post(frames, 0, LANE + lane as i32).map(drop)
        })
    }

    /// Something happened: after long tasks, poll with naps rather than
    /// a spin (see [`Backoff::rested`]): rank 0's next task is a round
    /// trip away, and a spinning thread would take the core that the
    /// local workers and rank 0's driver need meanwhile.
    fn after_event(&mut self, backoff: &mut Backoff) {
        if std::mem::take(&mut self.long) {
            backoff.rested();
        } else {
            backoff.busy();
        }
    }

    /// Passes `reply` to `post` if it is its lane's oldest, then any held
    /// one that is now; holds it otherwise.
    fn release(
        &mut self,
        reply: Reply,
        mut post: impl FnMut(usize, Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        let (lane, slot, frames) = reply;
        let (Some(order), Some(held)) = (self.order.get_mut(lane), self.held.get_mut(lane)) else {
            return Err(format!("its local pool answered for lane {lane}"));
        };
        held.push((slot, frames));
        while let Some(&(next, since)) = order.front() {
            let Some(at) = held.iter().position(|(s, _)| *s == next) else {
                break;
            };
            self.long |= since.elapsed() >= LONG_TASK;
            let (_, frames) = held.swap_remove(at);
            order.pop_front();
            self.out -= 1;
            post(lane, frames)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_s_replies_go_in_the_order_of_its_tasks() {
        let mut outbox = Outbox::new(2);
        for (lane, slot) in [(0, 0), (0, 1), (1, 1), (1, 0)] {
            outbox.expect(lane, slot).expect("room");
        }
        assert!(outbox.expect(0, 0).is_err(), "a third task on lane 0");
        let mut sent = Vec::new();
        let mut post = |reply: Reply, outbox: &mut Outbox| {
            outbox
                .release(reply, |lane, frames| {
                    sent.push((lane, frames));
                    Ok(())
                })
                .expect("posted");
        };
        // Lane 0's second task ends first: held until the first's reply.
        post((0, 1, vec![2]), &mut outbox);
        assert_eq!(outbox.out, 4);
        post((1, 1, vec![4]), &mut outbox);
        post((0, 0, vec![1]), &mut outbox);
        post((1, 0, vec![3]), &mut outbox);
        assert_eq!(outbox.out, 0);
        assert_eq!(
            sent,
            vec![(1, vec![4]), (0, vec![1]), (0, vec![2]), (1, vec![3])]
        );
        assert!(outbox.release((2, 0, Vec::new()), |_, _| Ok(())).is_err());
    }
}
