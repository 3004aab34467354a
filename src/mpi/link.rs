//! A lane of a worker rank, as rank 0's dispatch sees it: a
//! [`Link`](crate::process_pool::dispatch::Link) without a shared region.
//!
//! A task goes out as one MPI message (its `Task` frame, then, to a rank
//! with a local pool, where each of its items ends, or the size they all
//! take, so that the pool can send the rest of it again after a local
//! worker died); its reply comes back as one message of frames, `Partial`s
//! (or `PartialValues`) then `Done` (or `Values`), which
//! [`MpiLink::receive_into`] reads one at a time, exactly as a local
//! worker's pipe is read. (A message over 1 GiB travels in pieces, which
//! `sys` puts back together.)
//!
//! How a driver waits for the reply, and when it polls MPI itself, is
//! [`MpiLink::next_reply`]'s to say.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use parking_lot::Mutex;

use super::protocol::{DEPTH, LANE};
use super::transport::Transport;
use crate::process_pool::dispatch::{refuse_descriptors, Connect, Link};
use crate::process_pool::job::ProcessJob;
use crate::process_pool::spawn::{Exit, Received};
use crate::process_pool::sys::region::Region;
use crate::process_pool::wire::{self, ItemEnds, Message, WireError};
use crate::Error;

/// How long a driver polls MPI without sleeping for the reply of a short
/// task, before it sleeps on its lane's channel (and the MPI thread polls
/// for it); for a long task, how late its reply may be before the driver
/// polls less often. A reply that is a little late then finds the driver
/// awake, which on these machines saves a wake-up of 0.1 to 1 ms.
const REPLY_SPIN: Duration = Duration::from_millis(1);
/// A reply expected later than this is slept for, until a little before
/// it is due (see [`Due::wake_at`]): a driver that polled through a
/// whole long chunk would take a core from the ranks (`mpirun -n 3` on 2
/// cores puts rank 0 beside both workers).
const SLEEP_OVER: Duration = Duration::from_millis(1);
/// A driver spinning for a short task's reply yields at every this many
/// polls.
const YIELD_EVERY: u32 = 16;
/// How long a driver waiting for a long task's reply sleeps between polls.
const POLL_NAP: Duration = Duration::from_micros(50);
/// How long a driver whose rank holds the next task sleeps between polls
/// for the reply of the one before (see [`MpiLink::next_reply`]).
const QUEUED_NAP: Duration = Duration::from_micros(250);
/// How early a sleeping driver wakes before its reply is due.
const WAKE_AHEAD: Duration = Duration::from_micros(300);

/// When the reply of a lane's front task is due, from the round trips so
/// far.
#[derive(Debug, Clone)]
struct Due {
    /// The tasks out, oldest first: when each was posted, and its items.
    out: VecDeque<(Instant, usize)>,
    /// When the last reply came: a task posted behind another starts on
    /// the rank when that one ends, about then.
    last_reply: Option<Instant>,
    /// Round trips seen: seconds, over items (see [`Due::replied`]).
    seen: (f64, f64),
}

impl Due {
    fn new() -> Self {
        Due {
            out: VecDeque::new(),
            last_reply: None,
            seen: (0.0, 0.0),
        }
    }

    /// A task of `items` items went out `at`.
    fn sent(&mut self, items: usize, at: Instant) {
        self.out.push_back((at, items));
    }

    /// When the front task started on the rank, as far as this side
    /// knows: when it was posted, or when the reply of the task ahead of
    /// it came, whichever is later.
    fn front_start(&self) -> Option<(Instant, usize)> {
        let &(sent_at, items) = self.out.front()?;
        let start = self.last_reply.map_or(sent_at, |last| last.max(sent_at));
        Some((start, items))
    }

    /// The front task's reply came `at`: learns how long a task takes per
    /// item, the time over the items of the tasks so far (each from its
    /// start, see [`Due::front_start`]), each weighed by its items and
    /// halved at every later one (as `map` sizes its chunks), so that the
    /// one-item chunks a map starts with count for little.
    fn replied(&mut self, at: Instant) {
        if let Some((start, items)) = self.front_start() {
            let (seconds, seen) = self.seen;
            self.seen = (
                seconds / 2.0 + at.saturating_duration_since(start).as_secs_f64(),
                seen / 2.0 + items as f64,
            );
        }
        self.out.pop_front();
        self.last_reply = Some(at);
    }

    /// Whether the rank holds a task behind the front one: it goes on
    /// with that one when the front ends, so the front's reply is not
    /// urgent.
    fn queued(&self) -> bool {
        self.out.len() > 1
    }

    /// When the front task's reply is due, and when to start polling for
    /// it (a little before); `None` (poll at once) for a reply due soon,
    /// or with nothing learnt yet.
    fn wake_at(&self) -> Option<(Instant, Instant)> {
        let (start, items) = self.front_start()?;
        let (seconds, seen) = self.seen;
        let per_item = (seen > 0.0).then(|| seconds / seen)?;
        let expected = Duration::try_from_secs_f64(per_item * items as f64).ok()?;
        if expected <= SLEEP_OVER {
            return None;
        }
        // Early by a tenth, for a chunk quicker than the last ones.
        let due = start + expected;
        Some((due, due - expected / 10 - WAKE_AHEAD))
    }
}

/// How a driver polls for its reply.
#[derive(Debug, Clone, Copy)]
enum Poll {
    /// Without sleeping, until then.
    Spin(Instant),
    /// With naps: a quarter of the time left until the reply is due, at
    /// least [`POLL_NAP`]; from then on [`POLL_NAP`], for [`REPLY_SPIN`];
    /// then growing.
    Nap(Instant),
    /// With naps of [`QUEUED_NAP`], growing once the reply is late.
    Lazy,
}

/// One lane of one worker rank.
#[derive(Debug)]
pub(crate) struct MpiLink {
    pub(crate) rank: usize,
    pub(crate) lane: usize,
    pub(crate) pid: u32,
    transport: Arc<Transport>,
    replies: Receiver<Vec<u8>>,
    /// Whether the rank wants each item's end with a task (its local pool
    /// resends the rest of a task from there after a local worker died).
    send_ends: bool,
    /// The reply being read, and how much of it is read.
    reply: Vec<u8>,
    at: usize,
    /// The ticket of the send of the task out.
    ticket: u64,
    /// When its reply is due.
    due: Due,
}

impl MpiLink {
    pub(crate) fn new(
        rank: usize,
        lane: usize,
        pid: u32,
        transport: Arc<Transport>,
        replies: Receiver<Vec<u8>>,
        send_ends: bool,
    ) -> Self {
        MpiLink {
            rank,
            lane,
            pid,
            transport,
            replies,
            send_ends,
            reply: Vec::new(),
            at: 0,
            ticket: 0,
            due: Due::new(),
        }
    }

    /// The next reply message.
    ///
    /// A reply due soon (a short task, or nothing learnt yet) is polled for
    /// without sleeping, yielding between polls, for up to [`REPLY_SPIN`];
    /// then the driver sleeps on its lane's channel, and rank 0's MPI
    /// thread polls for it.
    ///
    /// For a long task the driver polls, with short naps, while the task
    /// is going out (a large one goes in pieces that may need this side's
    /// progress), sleeps until shortly before the reply is due, and polls
    /// again with naps ([`POLL_NAP`], growing once the reply is late).
    /// Naps rather than a spin: `mpirun -n 3` on 2 cores puts rank 0 beside
    /// two busy ranks, where a spinning driver takes a core from them and a
    /// yielding one waits a whole time slice for its next turn.
    ///
    /// While the rank holds the next task behind it ([`Due::queued`]), a
    /// long task's reply is not urgent: the rank goes on without this
    /// side. The driver then sleeps until the reply is due (not watching
    /// the next task go out: the rank takes it only when this one ends),
    /// and polls with longer naps ([`QUEUED_NAP`]): every wake-up of rank
    /// 0 takes a moment of a core from the ranks beside it.
    fn next_reply(&self, deadline: Option<Instant>) -> Result<Vec<u8>, Received> {
        let Some((due, wake)) = self.due.wake_at() else {
            let until = Instant::now() + REPLY_SPIN;
            if let Some(reply) = self.poll_until(Poll::Spin(until), deadline, || false) {
                return reply;
            }
            return self.sleep_until(deadline);
        };
        if self.due.queued() {
            // Nothing to watch while it goes out either: the rank takes
            // it only when the task ahead of it ends, and rank 0's MPI
            // thread keeps the send going meanwhile.
            let until = deadline.map_or(due, |d| d.min(due));
            match self.replies.recv_deadline(until) {
                Ok(reply) => return Ok(reply),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Received::Wire(WireError::Closed))
                }
                Err(RecvTimeoutError::Timeout) if deadline.is_some_and(|d| until >= d) => {
                    return Err(Received::TimedOut)
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            return match self.poll_until(Poll::Lazy, deadline, || false) {
                Some(reply) => reply,
                None => self.sleep_until(deadline),
            };
        }
        let ticket = self.ticket;
        let sent = || self.transport.is_sent(ticket) || Instant::now() >= wake;
        // Short naps while it goes out: it is on its way at once.
        if let Some(reply) = self.poll_until(Poll::Nap(Instant::now()), deadline, sent) {
            return reply;
        }
        let until = deadline.map_or(wake, |d| d.min(wake));
        match self.replies.recv_deadline(until) {
            Ok(reply) => return Ok(reply),
            Err(RecvTimeoutError::Disconnected) => return Err(Received::Wire(WireError::Closed)),
            Err(RecvTimeoutError::Timeout) if deadline.is_some_and(|d| until >= d) => {
                return Err(Received::TimedOut)
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        match self.poll_until(Poll::Nap(due), deadline, || false) {
            Some(reply) => reply,
            None => self.sleep_until(deadline),
        }
    }

    /// Sleeps on the lane's channel until the reply, or `deadline`.
    fn sleep_until(&self, deadline: Option<Instant>) -> Result<Vec<u8>, Received> {
        let got = match deadline {
            Some(deadline) => self.replies.recv_deadline(deadline),
            None => self
                .replies
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        got.map_err(|e| match e {
            RecvTimeoutError::Timeout => Received::TimedOut,
            RecvTimeoutError::Disconnected => Received::Wire(WireError::Closed),
        })
    }

    /// Polls MPI for this lane's reply, as `how` says, or until `deadline`
    /// or until `enough` says so: the reply or the error, if it came to
    /// one; `None` when polling ended without.
    fn poll_until(
        &self,
        how: Poll,
        deadline: Option<Instant>,
        enough: impl Fn() -> bool,
    ) -> Option<Result<Vec<u8>, Received>> {
        let mut late_nap = POLL_NAP;
        let mut lazy_nap = QUEUED_NAP;
        let mut spins = 0u32;
        self.transport.polling(|| loop {
            match self.replies.try_recv() {
                Ok(reply) => return Some(Ok(reply)),
                Err(TryRecvError::Disconnected) => {
                    return Some(Err(Received::Wire(WireError::Closed)))
                }
                Err(TryRecvError::Empty) => {}
            }
            if self.transport.poll() {
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Some(Err(Received::TimedOut));
            }
            if enough() {
                return None;
            }
            match how {
                Poll::Spin(until) if now >= until => return None,
                Poll::Spin(_) => {
                    // A yield now and then, not a pause: on a rank bound to
                    // one core a thread woken there (the one that waits
                    // for this driver's result) runs within microseconds.
                    // Not at every poll: a yield is a system call, and
                    // with nothing else to run it only delays the next
                    // poll (no-op round trip, -n 2: 12.0 -> 11.2 us).
                    spins = spins.wrapping_add(1);
                    if spins % YIELD_EVERY == 0 {
                        std::thread::yield_now();
                    } else {
                        for _ in 0..32 {
                            std::hint::spin_loop();
                        }
                    }
                }
                Poll::Nap(due) => {
                    let nap = if now < due {
                        ((due - now) / 4).max(POLL_NAP)
                    } else if now < due + REPLY_SPIN {
                        POLL_NAP
                    } else {
                        // Late: poll less and less often.
                        late_nap = (late_nap * 2).min(super::poll::MAX_NAP);
                        late_nap
                    };
                    std::thread::sleep(nap.min(super::poll::MAX_NAP));
                }
                Poll::Lazy => {
                    let nap = lazy_nap;
                    lazy_nap = (lazy_nap * 2).min(super::poll::MAX_NAP);
                    std::thread::sleep(nap);
                }
            }
        })
    }
}

impl Link for MpiLink {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn local_pid(&self) -> Option<u32> {
        None
    }

    fn region(&self) -> Option<&std::sync::Arc<Region>> {
        None
    }

    /// Two: the rank queues the second task and starts it the moment the
    /// first ends, without waiting for a round trip (see
    /// [`protocol::DEPTH`](super::protocol::DEPTH)).
    fn depth(&self) -> usize {
        DEPTH
    }

    fn send(&mut self, job: &dyn ProcessJob, slot: u8, max: u32) -> Result<(), WireError> {
        refuse_descriptors(job.descriptors())?;
        let (message, payload) = job.message(slot);
        // The items' ends for a rank's local pool: the size they share
        // (four bytes for the task), or each one's end (see `parse_task`).
        let ends = self.send_ends.then(|| job.item_ends());
        let trailer = match &ends {
            None => 0,
            Some(ItemEnds::Uniform(_)) => 4,
            Some(ItemEnds::Listed(ends)) => 4 * ends.len(),
        };
        let mut bytes = self.transport.buffer(payload.len() + 64 + trailer);
        wire::encode_frame(&message, payload, max, &mut bytes)?;
        match &ends {
            None => {}
            Some(ItemEnds::Uniform(size)) => bytes.extend_from_slice(&size.to_le_bytes()),
            Some(ItemEnds::Listed(ends)) => {
                for end in ends {
                    bytes.extend_from_slice(&end.to_le_bytes());
                }
            }
        }
        let items = match message {
            Message::Task { count, .. } => count as usize,
            _ => 1,
        };
        self.due.sent(items, Instant::now());
        let tag = LANE + self.lane as i32;
        self.ticket = self
            .transport
            .post(bytes, self.rank, tag)
            .map_err(|_| WireError::Closed)?;
        Ok(())
    }

    fn receive_into(
        &mut self,
        deadline: Option<Instant>,
        _stall: Duration,
        max: u32,
        payload: &mut Vec<u8>,
    ) -> Result<Message, Received> {
        if self.at >= self.reply.len() {
            if self.reply.capacity() > 0 {
                self.transport.keep(std::mem::take(&mut self.reply));
            }
            self.reply = self.next_reply(deadline)?;
            self.at = 0;
            self.due.replied(Instant::now());
        }
        let mut rest = &self.reply[self.at..];
        let before = rest.len();
        let message = wire::read_frame_into(&mut rest, max, payload).map_err(|e| match e {
            // A reply ends with a whole frame: it cannot stop short.
            WireError::Closed => Received::Wire(WireError::Malformed(String::from(
                "an empty reply from a worker rank",
            ))),
            e => Received::Wire(e),
        })?;
        self.at += before - rest.len();
        Ok(message)
    }

    fn has_buffered(&self) -> bool {
        self.at < self.reply.len()
    }

    fn is_gone(&self) -> bool {
        // A reply while no task is out: nothing a rank would send.
        !self.replies.is_empty()
    }

    fn kill_and_reap(self: Box<Self>) -> Exit {
        // A rank's lane cannot be killed from here; what it held fails,
        // and the lane is not used again (see `Lanes::connect`).
        Exit {
            code: None,
            signal: None,
        }
    }

    fn reap(self: Box<Self>, _grace: Duration) -> Exit {
        // The ranks are stopped all at once, by the pool's shutdown.
        Exit {
            code: Some(0),
            signal: None,
        }
    }
}

/// The lanes of every worker rank, handed to rank 0's drivers, one each.
#[derive(Debug)]
pub(crate) struct Lanes {
    links: Vec<Mutex<Option<MpiLink>>>,
    /// Where each lane is, for the error of one asked for twice.
    places: Vec<(usize, usize)>,
}

impl Lanes {
    pub(crate) fn new(links: Vec<MpiLink>) -> Self {
        let places = links.iter().map(|l| (l.rank, l.lane)).collect();
        Lanes {
            links: links.into_iter().map(|l| Mutex::new(Some(l))).collect(),
            places,
        }
    }
}

impl Connect for Lanes {
    /// Each lane serves one driver once: a lane that was given up (its
    /// rank broke the protocol, or MPI failed) is never trusted again. Its
    /// driver hands what it carried to the others and asks again a few
    /// times ([`Error::Spawn`]), then breaks the pool: a rank that sends
    /// garbage means a job that cannot be trusted.
    fn connect(&self, slot: usize) -> Result<Box<dyn Link>, Error> {
        let link = self.links.get(slot).and_then(|l| l.lock().take());
        match link {
            Some(link) => Ok(Box::new(link)),
            None => {
                let (rank, lane) = self.places.get(slot).copied().unwrap_or((0, slot));
                Err(Error::Spawn {
                    reason: format!(
                        "lane {lane} of MPI rank {rank} was given up after a fault and is not \
                         used again"
                    ),
                })
            }
        }
    }

    fn target_chunk_time(&self) -> Duration {
        // A lane holds the next chunk behind the one it runs, so it idles
        // for a round trip (MPI, the rank's MPI thread and, with a local
        // pool, its pipes and wake-ups: 0.1 to 2 ms on a loaded machine)
        // only when rank 0 is later than a whole chunk with the next one,
        // a busy machine's time slices being milliseconds. 20 ms leaves
        // that room, and keeps rank 0's wake-ups per chunk to a few %.
        Duration::from_millis(20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_awaited_at_once_until_round_trips_say_it_takes_long() {
        let start = Instant::now();
        let mut due = Due::new();
        due.sent(1, start);
        assert_eq!(due.wake_at(), None, "nothing learnt: poll at once");
        // A one-item probe that took 50 ms, then a chunk of 10 000 items
        // in 10 ms: the probe is halved, and counts as one item of 10 000.5.
        due.replied(start + Duration::from_millis(50));
        let next = start + Duration::from_millis(60);
        due.sent(10_000, next);
        due.replied(next + Duration::from_millis(10));
        let (seconds, items) = due.seen;
        assert!((seconds - 35e-3).abs() < 1e-9, "{:?}", due.seen);
        assert!((items - 10_000.5).abs() < 1e-9, "{:?}", due.seen);
        let later = next + Duration::from_millis(20);
        due.sent(10_000, later);
        let (due_at, wake) = due.wake_at().expect("a long task is slept for");
        let expected = Duration::from_secs_f64(10_000.0 * seconds / items);
        assert!(wake > later && wake < due_at, "{wake:?}");
        assert_eq!(due_at, later + expected);
        assert!(!due.queued());
        // A second task behind it: queued on the rank, due after the
        // first's reply, from when that came.
        due.sent(10, later);
        assert!(due.queued());
        let first_reply = later + Duration::from_millis(7);
        due.replied(first_reply);
        assert!(!due.queued());
        assert_eq!(due.front_start(), Some((first_reply, 10)));
        // A short task is polled for at once.
        assert_eq!(due.wake_at(), None);
    }
}
