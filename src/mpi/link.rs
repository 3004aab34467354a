//! A lane of a worker rank, as rank 0's dispatch sees it: a
//! [`Link`](crate::process_pool::dispatch::Link) without a shared region.
//!
//! A task goes out as one MPI message (its `Task` frame, then where each of
//! its items ends, so that the rank's local pool can send the rest of it
//! again after a local worker died); its reply comes back as one message
//! of frames, `Partial`s then `Done`, which [`MpiLink::receive_into`] reads
//! one at a time, exactly as a local worker's pipe is read.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;

use super::protocol::LANE;
use super::transport::Command;
use crate::process_pool::dispatch::{refuse_descriptors, Connect, Link};
use crate::process_pool::job::ProcessJob;
use crate::process_pool::spawn::{Exit, Received};
use crate::process_pool::sys::region::Region;
use crate::process_pool::wire::{self, Message, WireError};
use crate::Error;

/// How long a driver polls its lane's channel before it sleeps on it: a
/// short task's reply then finds the driver awake.
const REPLY_SPIN: Duration = Duration::from_micros(50);

/// One lane of one worker rank.
#[derive(Debug)]
pub(crate) struct MpiLink {
    pub(crate) rank: usize,
    pub(crate) lane: usize,
    pub(crate) pid: u32,
    pub(crate) commands: Sender<Command>,
    pub(crate) replies: Receiver<Vec<u8>>,
    /// The reply being read, and how much of it is read.
    reply: Vec<u8>,
    at: usize,
}

impl MpiLink {
    pub(crate) fn new(
        rank: usize,
        lane: usize,
        pid: u32,
        commands: Sender<Command>,
        replies: Receiver<Vec<u8>>,
    ) -> Self {
        MpiLink {
            rank,
            lane,
            pid,
            commands,
            replies,
            reply: Vec::new(),
            at: 0,
        }
    }

    /// The next reply message: polled for a moment, then waited for until
    /// `deadline`.
    fn next_reply(&self, deadline: Option<Instant>) -> Result<Vec<u8>, Received> {
        let closed = || Received::Wire(WireError::Closed);
        let until = Instant::now() + REPLY_SPIN;
        while crate::future::spinning_helps() && Instant::now() < until {
            match self.replies.try_recv() {
                Ok(reply) => return Ok(reply),
                Err(TryRecvError::Disconnected) => return Err(closed()),
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
        let got = match deadline {
            Some(deadline) => self.replies.recv_deadline(deadline),
            None => self
                .replies
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        got.map_err(|e| match e {
            RecvTimeoutError::Timeout => Received::TimedOut,
            RecvTimeoutError::Disconnected => closed(),
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

    fn send(&mut self, job: &dyn ProcessJob, slot: u8, max: u32) -> Result<(), WireError> {
        refuse_descriptors(job.descriptors())?;
        let (message, payload) = job.message(slot);
        let ends = job.item_ends();
        let mut bytes = Vec::with_capacity(payload.len() + 64 + 4 * ends.len());
        wire::encode_frame(&message, payload, max, &mut bytes)?;
        for end in ends {
            bytes.extend_from_slice(&end.to_le_bytes());
        }
        let tag = LANE + self.lane as i32;
        self.commands
            .send(Command::Send {
                dest: self.rank,
                tag,
                bytes,
            })
            .map_err(|_| WireError::Closed)
    }

    fn receive_into(
        &mut self,
        deadline: Option<Instant>,
        _stall: Duration,
        max: u32,
        payload: &mut Vec<u8>,
    ) -> Result<Message, Received> {
        if self.at >= self.reply.len() {
            self.reply = self.next_reply(deadline)?;
            self.at = 0;
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
        // A lane holds one chunk, and idles for its round trip: MPI, the
        // rank's MPI thread and, with a local pool, its pipes and wake-ups
        // (0.1 to 2 ms on a loaded machine). 20 ms keeps that to a few %.
        Duration::from_millis(20)
    }
}
