//! Rank 0's MPI thread: the one thread of the application's process that
//! calls MPI (`MPI_THREAD_SERIALIZED`). Everything else talks to it through
//! [`Command`]s; it greets the worker ranks, posts the drivers' tasks, hands
//! every reply to the channel of its lane, and at the end stops the ranks
//! and finalises MPI.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

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
    /// Posts `bytes` to rank `dest` with `tag`.
    Send {
        dest: usize,
        tag: i32,
        bytes: Vec<u8>,
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

/// The thread's body.
pub(crate) fn run(mut mpi: Mpi, ours: [u8; PREFIX], commands: Receiver<Command>) {
    let mut routes: Vec<Vec<Sender<Vec<u8>>>> = vec![Vec::new(); mpi.size];
    let mut backoff = Backoff::new();
    let mut buffer = Vec::new();
    // Set once MPI failed: nothing goes out any more.
    let mut broken: Option<String> = None;
    // How long to wait for the first command: zero while spinning.
    let mut nap = Duration::ZERO;
    loop {
        let mut busy = false;
        let mut next = next_command(&commands, nap);
        loop {
            match next {
                Ok(command) => {
                    busy = true;
                    let flow = handle(&mut mpi, &ours, command, &mut routes, &mut broken);
                    if let Flow::End(timeout, reply) = flow {
                        return finish(mpi, broken, timeout, &reply, &mut buffer);
                    }
                }
                // Nobody can send commands any more: the process is going.
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
            next = next_command(&commands, Duration::ZERO);
        }
        if broken.is_none() {
            match receive(&mut mpi, &mut buffer) {
                Ok(Some((from, tag))) => {
                    busy = true;
                    route(&routes, from, tag, &mut buffer);
                }
                Ok(None) => {}
                Err(e) => fail(&mut broken, &mut routes, e),
            }
            if let Err(e) = mpi.progress() {
                fail(&mut broken, &mut routes, e);
            }
        }
        nap = if busy {
            backoff.busy();
            Duration::ZERO
        } else {
            backoff.idle()
        };
    }
}

/// The next command: one already queued, or one that comes within `wait`.
fn next_command(commands: &Receiver<Command>, wait: Duration) -> Result<Command, RecvTimeoutError> {
    if !wait.is_zero() {
        return commands.recv_timeout(wait);
    }
    commands.try_recv().map_err(|e| match e {
        TryRecvError::Empty => RecvTimeoutError::Timeout,
        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
    })
}

enum Flow {
    Go,
    /// Stop the ranks, finalise, answer on the sender, end.
    End(Duration, Sender<Result<(), String>>),
}

fn handle(
    mpi: &mut Mpi,
    ours: &[u8; PREFIX],
    command: Command,
    routes: &mut [Vec<Sender<Vec<u8>>>],
    broken: &mut Option<String>,
) -> Flow {
    match command {
        Command::Send { dest, tag, bytes } => {
            if broken.is_none() {
                if let Err(e) = mpi.post(bytes, dest, tag) {
                    fail(broken, routes, e);
                }
            }
            Flow::Go
        }
        Command::Connect {
            hello,
            timeout,
            reply,
        } => {
            let outcome = match broken {
                Some(why) => Err(why.clone()),
                None => connect(mpi, ours, &hello, timeout, routes, &mut Vec::new()),
            };
            let _ = reply.send(outcome);
            Flow::Go
        }
        Command::Stop { timeout, reply } => Flow::End(timeout, reply),
    }
}

/// Stops the worker ranks and finalises MPI (unless it failed before).
fn finish(
    mut mpi: Mpi,
    broken: Option<String>,
    timeout: Duration,
    reply: &Sender<Result<(), String>>,
    buffer: &mut Vec<u8>,
) {
    let outcome = match broken {
        Some(why) => Err(why),
        // Every rank said it stopped, so none sends any more; `finalize`
        // waits for this rank's own sends.
        None => stop(&mut mpi, timeout, buffer).and_then(|()| mpi.finalize()),
    };
    let _ = reply.send(outcome);
}

/// MPI failed: the lanes hear of it as a closed channel.
fn fail(broken: &mut Option<String>, routes: &mut [Vec<Sender<Vec<u8>>>], why: String) {
    eprintln!("concurrent-futures: MPI failed on rank 0: {why}");
    *broken = Some(why);
    routes.iter_mut().for_each(Vec::clear);
}

/// Takes one message that has arrived, if any: its source and tag.
fn receive(mpi: &mut Mpi, buffer: &mut Vec<u8>) -> Result<Option<(usize, i32)>, String> {
    let Some(found) = mpi.probe(None)? else {
        return Ok(None);
    };
    mpi.take(found, buffer)?;
    Ok(Some((found.from, found.tag)))
}

/// Hands a lane's reply to its channel (a reply for no lane is dropped:
/// a rank cannot reply to what it was never sent).
fn route(routes: &[Vec<Sender<Vec<u8>>>], from: usize, tag: i32, buffer: &mut Vec<u8>) {
    let lane = usize::try_from(tag - LANE).ok();
    if let Some(to) = lane.and_then(|lane| routes.get(from)?.get(lane)) {
        let _ = to.send(std::mem::take(buffer));
    }
}

/// Greets every worker rank and waits for each one's answer.
fn connect(
    mpi: &mut Mpi,
    ours: &[u8; PREFIX],
    hello: &[u8],
    timeout: Duration,
    routes: &mut [Vec<Sender<Vec<u8>>>],
    buffer: &mut Vec<u8>,
) -> Result<Vec<Peer>, String> {
    let ranks = 1..mpi.size;
    for rank in ranks.clone() {
        mpi.post(hello.to_vec(), rank, HELLO)?;
    }
    let mut answers: Vec<Option<Vec<u8>>> = vec![None; mpi.size];
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new();
    while ranks.clone().any(|r| answers[r].is_none()) {
        mpi.progress()?;
        match receive(mpi, buffer)? {
            Some((from, protocol::READY)) if from < answers.len() => {
                answers[from] = Some(std::mem::take(buffer));
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
        routes.iter_mut().for_each(Vec::clear);
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
