//! Rank 0's side of MPI: the [`Transport`] every thread of rank 0 calls
//! MPI through, and the MPI thread that started it.
//!
//! MPI runs `MPI_THREAD_SERIALIZED`: any thread may call it, one at a
//! time. So MPI sits behind one mutex, and the hot path has no hand-offs:
//! a driver posts its lane's task itself ([`Transport::post`]) and polls
//! MPI itself for the reply ([`Transport::poll`]); whoever holds the mutex
//! while polling hands every reply it takes to the channel of its lane,
//! its own included. (Before, every task and every reply went through the
//! MPI thread: two more thread wake-ups per round trip, which on a rank
//! bound to one core cost more than the round trip itself.)
//!
//! The MPI thread is what is left: it greets the worker ranks
//! ([`Command::Connect`]), polls in the background while no driver does
//! (a driver waiting for a long task sleeps on its channel), and at the
//! end stops the ranks and finalises MPI, on the thread that initialised
//! it, as MPI asks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::poll::Backoff;
use super::protocol::{self, RankInfo, Ready, HELLO, LANE, MAX_LANES, PREFIX, STOP, STOPPED};
use super::sys::Mpi;

/// What the rest of rank 0 asks of its MPI thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Greets every worker rank with `hello` (prefix ‖ `Hello`), and
    /// answers with each rank's lanes, or why they cannot serve.
    Connect {
        hello: Vec<u8>,
        timeout: Duration,
        reply: Sender<Result<Vec<Peer>, String>>,
    },
    /// Starts `count` worker ranks of the executable `exe` (spawn mode).
    Spawn {
        exe: std::ffi::CString,
        count: usize,
        reply: Sender<Result<(), String>>,
    },
    /// Stops every worker rank and finalises MPI; the thread then ends.
    Stop {
        timeout: Duration,
        reply: Sender<Result<(), String>>,
    },
}

/// A worker rank that serves, and the channels its lanes' replies arrive on.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) rank: usize,
    pub(crate) info: RankInfo,
    pub(crate) lanes: Vec<Receiver<Vec<u8>>>,
}

/// MPI on rank 0, for every thread.
#[derive(Debug)]
pub(crate) struct Transport {
    state: Mutex<State>,
    /// Drivers polling MPI for a reply right now: while any does, the MPI
    /// thread does not (it would only take a core from them).
    pollers: AtomicUsize,
}

#[derive(Debug)]
struct State {
    /// `None` once MPI is finalised or failed: nothing goes out any more.
    mpi: Option<Mpi>,
    /// Why MPI failed, if it did.
    broken: Option<String>,
    /// Per rank, per lane, where its replies go.
    routes: Vec<Vec<Sender<Vec<u8>>>>,
    /// The message being received.
    buffer: Vec<u8>,
}

/// The most messages one [`Transport::poll`] takes: a poller that finds a
/// flood lets the mutex go now and then.
const POLL_BATCH: usize = 16;

impl Transport {
    fn new(mpi: Mpi) -> Self {
        let routes = vec![Vec::new(); mpi.size];
        Transport {
            state: Mutex::new(State {
                mpi: Some(mpi),
                broken: None,
                routes,
                buffer: Vec::new(),
            }),
            pollers: AtomicUsize::new(0),
        }
    }

    /// Starts sending `bytes` to rank `dest` with `tag`.
    ///
    /// # Errors
    ///
    /// Why not, if MPI failed or was finalised (the lanes then hear of it
    /// as closed channels).
    pub(crate) fn post(&self, bytes: Vec<u8>, dest: usize, tag: i32) -> Result<u64, String> {
        let mut state = self.state.lock();
        let state = &mut *state;
        let Some(mpi) = state.mpi.as_mut() else {
            return Err(state.gone());
        };
        let posted = mpi.post(bytes, dest, tag);
        match posted.and_then(|ticket| mpi.progress().map(|()| ticket)) {
            Ok(ticket) => Ok(ticket),
            Err(e) => {
                state.fail(e.clone());
                Err(e)
            }
        }
    }

    /// An empty buffer with room for a message of `len` bytes, kept from
    /// an earlier message if one fits.
    pub(crate) fn buffer(&self, len: usize) -> Vec<u8> {
        match self.state.lock().mpi.as_mut() {
            Some(mpi) => mpi.buffer(len),
            None => Vec::with_capacity(len),
        }
    }

    /// Keeps `buffer`, a reply read to its end, for a later message.
    pub(crate) fn keep(&self, buffer: Vec<u8>) {
        if let Some(mpi) = self.state.lock().mpi.as_mut() {
            mpi.keep(buffer);
        }
    }

    /// Whether the send of `ticket` is complete, as of the last poll (or
    /// MPI is gone, and it never will be).
    pub(crate) fn is_sent(&self, ticket: u64) -> bool {
        let state = self.state.lock();
        state.mpi.as_ref().map_or(true, |mpi| mpi.is_sent(ticket))
    }

    /// Takes the messages that have arrived (a few at most) and hands each
    /// to its lane's channel, unless another thread is at it; whether any
    /// was taken.
    pub(crate) fn poll(&self) -> bool {
        match self.state.try_lock() {
            Some(mut state) => state.poll(),
            None => false,
        }
    }

    /// Runs `wait` counted as a driver that polls.
    pub(crate) fn polling<T>(&self, wait: impl FnOnce() -> T) -> T {
        // ORDERING: Relaxed: a hint to the MPI thread, which only decides
        // whether to poll from it; nothing else depends on it.
        self.pollers.fetch_add(1, Ordering::Relaxed);
        let outcome = wait();
        self.pollers.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    fn drivers_poll(&self) -> bool {
        // ORDERING: Relaxed: see `polling`.
        self.pollers.load(Ordering::Relaxed) > 0
    }
}

impl State {
    fn gone(&self) -> String {
        self.broken
            .clone()
            .unwrap_or_else(|| String::from("MPI is finalised on rank 0"))
    }

    /// MPI failed: nothing is sent any more, and the lanes hear of it as
    /// closed channels.
    fn fail(&mut self, why: String) {
        eprintln!("concurrent-futures: MPI failed on rank 0: {why}");
        self.broken = Some(why);
        self.mpi = None;
        self.routes.iter_mut().for_each(Vec::clear);
    }

    fn poll(&mut self) -> bool {
        let Some(mpi) = self.mpi.as_mut() else {
            return false;
        };
        let mut taken = 0;
        let outcome = loop {
            if taken == POLL_BATCH {
                break Ok(());
            }
            match receive(mpi, &mut self.buffer) {
                Ok(Some((from, tag))) => {
                    taken += 1;
                    route(&self.routes, from, tag, &mut self.buffer);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = outcome.and_then(|()| mpi.progress()) {
            self.fail(e);
        }
        taken > 0
    }
}

/// Starts rank 0's transport on this thread (the one that initialised MPI):
/// `started` gets the transport, and the thread serves `commands` until
/// told to stop, or until nobody can send commands any more.
pub(crate) fn run(
    mpi: Mpi,
    ours: [u8; PREFIX],
    commands: &Receiver<Command>,
    started: impl FnOnce(Arc<Transport>) -> bool,
) {
    let transport = Arc::new(Transport::new(mpi));
    if !started(Arc::clone(&transport)) {
        return;
    }
    let mut backoff = Backoff::new();
    loop {
        let nap = if transport.drivers_poll() {
            super::poll::MAX_NAP
        } else {
            backoff.nap()
        };
        match commands.recv_timeout(nap) {
            Ok(Command::Connect {
                hello,
                timeout,
                reply,
            }) => {
                let mut state = transport.state.lock();
                let outcome = state.connect(&ours, &hello, timeout);
                let _ = reply.send(outcome);
            }
            Ok(Command::Spawn { exe, count, reply }) => {
                let mut state = transport.state.lock();
                let _ = reply.send(state.spawn(&exe, count));
            }
            Ok(Command::Stop { timeout, reply }) => {
                let mut state = transport.state.lock();
                let _ = reply.send(state.finish(timeout));
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if !transport.drivers_poll() && transport.poll() {
            backoff.busy();
        }
    }
}

/// Takes one message that has arrived, if any: its source and tag.
fn receive(mpi: &mut Mpi, buffer: &mut Vec<u8>) -> Result<Option<(usize, i32)>, String> {
    mpi.receive(None, buffer)
}

/// Hands a lane's reply to its channel (a reply for no lane is dropped:
/// a rank cannot reply to what it was never sent).
fn route(routes: &[Vec<Sender<Vec<u8>>>], from: usize, tag: i32, buffer: &mut Vec<u8>) {
    let lane = usize::try_from(tag - LANE).ok();
    if let Some(to) = lane.and_then(|lane| routes.get(from)?.get(lane)) {
        let _ = to.send(std::mem::take(buffer));
    }
}

impl State {
    /// Greets every worker rank and waits for each one's answer.
    fn connect(
        &mut self,
        ours: &[u8; PREFIX],
        hello: &[u8],
        timeout: Duration,
    ) -> Result<Vec<Peer>, String> {
        let Some(mpi) = self.mpi.as_mut() else {
            return Err(self.gone());
        };
        let outcome = greet(mpi, ours, hello, timeout, &mut self.routes);
        if outcome.is_err() {
            self.routes.iter_mut().for_each(Vec::clear);
        }
        outcome
    }

    /// Starts `count` worker ranks (see [`Mpi::spawn`]).
    fn spawn(&mut self, exe: &std::ffi::CStr, count: usize) -> Result<(), String> {
        let Some(mpi) = self.mpi.as_mut() else {
            return Err(self.gone());
        };
        mpi.spawn(exe, count)?;
        self.routes.resize(mpi.size, Vec::new());
        Ok(())
    }

    /// Stops the worker ranks and finalises MPI (unless it failed before).
    fn finish(&mut self, timeout: Duration) -> Result<(), String> {
        self.routes.iter_mut().for_each(Vec::clear);
        let Some(mut mpi) = self.mpi.take() else {
            return Err(self.gone());
        };
        // Every rank said it stopped, so none sends any more; `finalize`
        // waits for this rank's own sends.
        stop(&mut mpi, timeout, &mut self.buffer).and_then(|()| mpi.finalize())
    }
}

/// The handshake: every worker rank greeted, its answer awaited and read.
fn greet(
    mpi: &mut Mpi,
    ours: &[u8; PREFIX],
    hello: &[u8],
    timeout: Duration,
    routes: &mut [Vec<Sender<Vec<u8>>>],
) -> Result<Vec<Peer>, String> {
    let ranks = 1..mpi.size;
    for rank in ranks.clone() {
        mpi.post(hello.to_vec(), rank, HELLO)?;
    }
    let mut buffer = Vec::new();
    let mut answers: Vec<Option<Vec<u8>>> = vec![None; mpi.size];
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new();
    while ranks.clone().any(|r| answers[r].is_none()) {
        mpi.progress()?;
        match receive(mpi, &mut buffer)? {
            Some((from, protocol::READY)) if from < answers.len() => {
                answers[from] = Some(std::mem::take(&mut buffer));
                backoff.busy();
            }
            Some(_) => backoff.busy(),
            None => {
                if Instant::now() >= deadline {
                    let silent: Vec<String> = ranks
                        .clone()
                        .filter(|&r| answers[r].is_none())
                        .map(|r| r.to_string())
                        .collect();
                    return Err(format!(
                        "worker ranks {} did not answer within {timeout:?}",
                        silent.join(", ")
                    ));
                }
                std::thread::sleep(backoff.idle());
            }
        }
    }
    let mut peers = Vec::new();
    let mut refusals = Vec::new();
    for rank in ranks {
        let answer = answers[rank].take().unwrap_or_default();
        if let Some(why) = protocol::mismatch(ours, &answer) {
            refusals.push(format!("rank {rank} was refused: {why}"));
            continue;
        }
        match postcard::from_bytes::<Ready>(&answer[PREFIX..]) {
            Ok(Ready { outcome: Ok(info) }) => {
                let lanes = info.lanes as usize;
                if lanes == 0 || lanes > MAX_LANES {
                    refusals.push(format!("rank {rank} offered {lanes} lanes"));
                    continue;
                }
                let (senders, receivers) =
                    (0..lanes).map(|_| crossbeam_channel::unbounded()).unzip();
                routes[rank] = senders;
                peers.push(Peer {
                    rank,
                    info,
                    lanes: receivers,
                });
            }
            Ok(Ready { outcome: Err(why) }) => {
                refusals.push(format!("rank {rank} cannot serve: {why}"));
            }
            Err(e) => refusals.push(format!("rank {rank} answered garbage: {e}")),
        }
    }
    if refusals.is_empty() {
        Ok(peers)
    } else {
        Err(refusals.join("; "))
    }
}

/// Tells every worker rank to stop, and waits until each says it has.
fn stop(mpi: &mut Mpi, timeout: Duration, buffer: &mut Vec<u8>) -> Result<(), String> {
    let ranks = 1..mpi.size;
    for rank in ranks.clone() {
        mpi.post(Vec::new(), rank, STOP)?;
    }
    let mut stopped = vec![false; mpi.size];
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new();
    while ranks.clone().any(|r| !stopped[r]) {
        mpi.progress()?;
        match receive(mpi, buffer)? {
            Some((from, STOPPED)) if from < stopped.len() => {
                stopped[from] = true;
                backoff.busy();
            }
            // Replies to tasks nobody waits for any more.
            Some(_) => backoff.busy(),
            None => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "worker ranks did not stop within {timeout:?} (a task still running?)"
                    ));
                }
                std::thread::sleep(backoff.idle());
            }
        }
    }
    Ok(())
}
