//! Starting, greeting, watching, killing and reaping worker processes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arena::Arena;
use super::entry::{BAD_START, MARKER, SOCKET_MARKER};
use super::sys::{self, region::Region};
use super::wire::{self, Frame, Message, WireError};
use crate::Error;

/// How long a frame that has begun may go without a byte arriving before
/// it is given up as one that will never complete (a task that wrote a
/// few bytes to the result pipe itself, a worker stopped in mid-write).
pub(crate) const FRAME_STALL: Duration = Duration::from_secs(5);

/// The pipe buffer each direction asks for: the most an unprivileged
/// process gets by default.
const PIPE_BUFFER: usize = 1 << 20;

/// The parent's read buffer on a result pipe: room for the replies of
/// small tasks and chunks; larger payloads are read past it, straight
/// into their own buffer.
const RESULT_BUFFER: usize = 64 * 1024;

/// What every worker of one pool is started with.
#[derive(Debug, Clone)]
pub(crate) struct SpawnConfig {
    pub(crate) token: u128,
    pub(crate) exe: (u64, u64),
    pub(crate) initializer: Option<u64>,
    pub(crate) max_frame: u32,
    pub(crate) startup_timeout: Duration,
    /// The pool's argument arena, which every worker maps (`None` if it
    /// could not be made, or for a pool whose tasks go elsewhere).
    pub(crate) arena: Option<Arc<Arena>>,
}

/// A running worker process, the parent's ends of its two pipes and the
/// region they share.
#[derive(Debug)]
pub(crate) struct Worker {
    process: sys::Process,
    pub(crate) pid: u32,
    pub(crate) tasks: File,
    /// Buffered: a small reply comes in with one `read`, not one per part.
    pub(crate) results: BufReader<Watched>,
    /// Reused buffer for outgoing frames.
    pub(crate) scratch: Vec<u8>,
    /// The shared region (see `wire`).
    pub(crate) region: Arc<Region>,
    /// The parent's end of the worker's Unix socket, on which the
    /// descriptors of multiprocessing handles in task arguments travel.
    socket: OwnedFd,
    /// The task pipe's capacity, in bytes: what a frame may take to be
    /// written without the worker reading it (see `Link::may_hand`).
    pub(crate) task_pipe: usize,
}

/// The result pipe, read with a deadline: every `read` first waits until
/// bytes are there, the deadline passes ([`io::ErrorKind::TimedOut`]), or
/// the worker process has exited with nothing left in the pipe (end of
/// file, even while a child the task forked keeps the pipe open).
#[derive(Debug)]
pub(crate) struct Watched {
    file: File,
    /// Readable once the worker has exited (see [`sys::region::pidfd`]).
    exited: Option<OwnedFd>,
    /// When the current wait gives up.
    deadline: Option<Instant>,
    /// Within a frame: how long one read may wait for its first byte.
    stall: Option<Duration>,
    /// Whether bytes are known to be on their way (the worker said so in
    /// the shared region): a read that finds none yet tries again for a
    /// moment before it sleeps.
    coming: bool,
}

/// How long a read whose bytes are on their way tries again before it
/// sleeps: the worker writes them right after it says so.
const COMING_SPIN: Duration = Duration::from_micros(20);

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The pipe is non-blocking: bytes already there (a reply the driver
        // saw coming in the shared region) cost one `read`, no `poll`.
        loop {
            match self.file.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.coming {
                        self.coming = false;
                        if let Some(n) = self.read_soon(buf)? {
                            return Ok(n);
                        }
                    }
                    if !self.wait()? {
                        return Ok(0);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Watched {
    /// Reads again, without sleeping, for [`COMING_SPIN`]: `None` if
    /// nothing came.
    fn read_soon(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let until = Instant::now() + COMING_SPIN;
        while Instant::now() < until {
            for _ in 0..16 {
                std::hint::spin_loop();
            }
            match self.file.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Waits until the pipe is readable: `true`; `false` if the worker has
    /// exited with nothing left in the pipe (end of file, even while a child
    /// the task forked holds it open); `TimedOut` past the deadline or the
    /// stall limit.
    fn wait(&mut self) -> io::Result<bool> {
        let now = Instant::now();
        let mut wait = self.deadline.map(|d| d.saturating_duration_since(now));
        if let Some(stall) = self.stall {
            wait = Some(wait.map_or(stall, |w| w.min(stall)));
        }
        let pipe = self.file.as_raw_fd();
        let ready = match &self.exited {
            Some(exited) => sys::region::poll_readable(&[pipe, exited.as_raw_fd()], wait)?,
            None => sys::region::poll_readable(&[pipe], wait)?,
        };
        if ready & 1 != 0 {
            return Ok(true);
        }
        if ready & 2 != 0 {
            // Exited, and the pipe held nothing: whatever it wrote has
            // been read. Look once more, in case bytes landed between
            // the two checks.
            return Ok(sys::region::poll_readable(&[pipe], Some(Duration::ZERO))? != 0);
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "no bytes in time"))
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
}

/// Starts a worker and completes the handshake (and its initializer, if the
/// pool has one).
///
/// # Errors
///
/// [`Error::Spawn`] if the process cannot be started, dies during start-up,
/// does not answer within the start-up time or fails the handshake;
/// [`Error::BrokenPool`] if its initializer failed.
pub(crate) fn spawn(config: &SpawnConfig) -> Result<Worker, Error> {
    let spawn_error = |reason: String| Error::Spawn { reason };
    let (task_read, task_write) =
        sys::pipe().map_err(|e| spawn_error(format!("cannot create a pipe: {e}")))?;
    let (result_read, result_write) =
        sys::pipe().map_err(|e| spawn_error(format!("cannot create a pipe: {e}")))?;
    // Large payloads move in fewer, longer writes with fewer wake-ups.
    let task_pipe = sys::enlarge_pipe(&task_write, PIPE_BUFFER);
    sys::enlarge_pipe(&result_read, PIPE_BUFFER);
    let region = Region::create()
        .map_err(|e| spawn_error(format!("cannot create the shared region: {e}")))?;
    let (socket, socket_child) =
        sys::seqpacket_pair().map_err(|e| spawn_error(format!("cannot create a socket: {e}")))?;
    let keep = [
        task_read.as_raw_fd(),
        result_write.as_raw_fd(),
        region.fd(),
        socket_child.as_raw_fd(),
    ];
    let arena_fd = config.arena.as_ref().map(|arena| arena.fd());
    let keep_all: Vec<i32> = keep.iter().copied().chain(arena_fd).collect();

    let marker = format!("{MARKER}=v1:{}:{}:{:032x}", keep[0], keep[1], config.token);
    let socket_marker = format!("{SOCKET_MARKER}={}", keep[3]);
    let process = sys::spawn_process(&[marker.as_bytes(), socket_marker.as_bytes()], &keep_all)
        .map_err(|e| spawn_error(format!("cannot start /proc/self/exe: {e}")))?;
    // The child has its copies; the parent keeps only its own ends, so that
    // it sees end of file when the worker dies.
    drop(task_read);
    drop(result_write);
    drop(socket_child);

    sys::set_nonblocking(&result_read)
        .map_err(|e| spawn_error(format!("cannot set up the result pipe: {e}")))?;
    let results = Watched {
        file: File::from(result_read),
        exited: sys::region::pidfd(process.id()),
        deadline: None,
        stall: None,
        coming: false,
    };
    let mut worker = Worker {
        pid: process.id(),
        process,
        tasks: File::from(task_write),
        results: BufReader::with_capacity(RESULT_BUFFER, results),
        scratch: Vec::new(),
        region: Arc::new(region),
        socket,
        task_pipe,
    };
    match handshake(&mut worker, config) {
        Ok(()) => Ok(worker),
        Err(error) => {
            let exit = worker.kill_and_reap();
            Err(match error {
                Error::Spawn { reason } if exit.code == Some(BAD_START) => Error::Spawn {
                    reason: format!(
                        "{reason}; the worker refused the handshake (see its standard error)"
                    ),
                },
                error => error,
            })
        }
    }
}

fn handshake(worker: &mut Worker, config: &SpawnConfig) -> Result<(), Error> {
    let pid = worker.pid;
    let spawn_error = |reason: String| Error::Spawn { reason };
    let hello = Message::Hello {
        version: wire::VERSION,
        token: config.token,
        exe: config.exe,
        probe: sys::offset_of(sys::probe as fn() as usize),
        initializer: config.initializer,
        max_frame: config.max_frame,
        region_fd: worker.region.fd(),
        arena_fd: config.arena.as_ref().map(|arena| arena.fd()),
    };
    worker
        .send(&hello, &[], config.max_frame)
        .map_err(|e| spawn_error(format!("worker {pid} did not take the greeting: {e}")))?;

    let deadline = Instant::now() + config.startup_timeout;
    let ready = worker
        .receive(Some(deadline), config.max_frame)
        .map_err(|e| match e {
            Received::TimedOut => spawn_error(format!(
                "worker {pid} did not answer within {:?}",
                config.startup_timeout
            )),
            Received::Stalled => spawn_error(format!("worker {pid} stalled in its greeting")),
            Received::Wire(e) => spawn_error(format!("worker {pid} failed during start-up: {e}")),
        })?;
    match ready.message {
        Message::Ready { version, token, .. }
            if version == wire::VERSION && token == config.token => {}
        other => {
            return Err(spawn_error(format!(
                "worker {pid} answered the greeting with {other:?}, not a matching Ready"
            )))
        }
    }
    if config.initializer.is_some() {
        // The initializer may take as long as it needs: no deadline.
        let answer = worker
            .receive(None, config.max_frame)
            .map_err(|e| match e {
                Received::Wire(e) => Error::BrokenPool {
                    reason: format!("worker {pid} died in its initializer: {e}"),
                },
                Received::TimedOut | Received::Stalled => Error::BrokenPool {
                    reason: format!("worker {pid} stalled in its initializer"),
                },
            })?;
        match answer.message {
            Message::Initialized => {}
            Message::InitFailed { reason } => {
                return Err(Error::BrokenPool {
                    reason: format!("the initializer failed: {reason}"),
                })
            }
            other => {
                return Err(spawn_error(format!(
                    "worker {pid} answered its initializer with {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// Why [`Worker::receive`] got no frame.
#[derive(Debug)]
pub(crate) enum Received {
    /// The deadline passed.
    TimedOut,
    /// A frame began but stopped coming: it will never complete.
    Stalled,
    /// The pipe failed, closed, or carried a bad frame.
    Wire(WireError),
}

impl Worker {
    /// Sends one frame to the worker.
    pub(crate) fn send(
        &mut self,
        message: &Message,
        payload: &[u8],
        max: u32,
    ) -> Result<(), WireError> {
        wire::write_frame(&mut self.tasks, message, payload, max, &mut self.scratch)
    }

    /// Sends one task frame, and first, if its arguments hold
    /// multiprocessing handles, a `Descriptors` frame and the descriptors
    /// `fds` on the worker's socket (`SCM_RIGHTS`, at most 253 a message).
    /// Nothing is sent if the task is over the frame limit, so the worker
    /// never holds descriptors that no task follows.
    pub(crate) fn send_with_fds(
        &mut self,
        message: &Message,
        payload: &[u8],
        fds: &[OwnedFd],
        max: u32,
    ) -> Result<(), WireError> {
        if !fds.is_empty() {
            wire::encode_frame(message, &[], max, &mut self.scratch)?;
            let len = (self.scratch.len() - 4) as u64 + payload.len() as u64;
            if len > u64::from(max) {
                return Err(WireError::TooLarge { len, max });
            }
            let count = u32::try_from(fds.len()).map_err(|_| WireError::TooLarge {
                len: fds.len() as u64,
                max: u32::MAX,
            })?;
            self.send(&Message::Descriptors { count }, &[], max)?;
            for chunk in fds.chunks(sys::MAX_FDS_PER_MESSAGE) {
                let chunk: Vec<BorrowedFd<'_>> = chunk.iter().map(AsFd::as_fd).collect();
                sys::send_with_fds(&self.socket, &[0], &chunk)?;
            }
        }
        self.send(message, payload, max)
    }

    /// Reads one frame from the worker, waiting until `deadline` at most.
    pub(crate) fn receive(
        &mut self,
        deadline: Option<Instant>,
        max: u32,
    ) -> Result<Frame, Received> {
        let mut payload = Vec::new();
        let message = self.receive_into(deadline, FRAME_STALL, max, &mut payload)?;
        Ok(Frame { message, payload })
    }

    /// Reads one frame like [`receive`](Self::receive), its payload into
    /// `payload`, whose allocation is reused when it fits: a large reply's
    /// buffer is not allocated (and its pages faulted in) again for the
    /// next one. `deadline` bounds the wait for the frame's first byte
    /// ([`Received::TimedOut`], nothing consumed); once a frame has begun it
    /// is read to its end, and no read of it may wait more than `stall`
    /// ([`Received::Stalled`]: it will never complete).
    pub(crate) fn receive_into(
        &mut self,
        deadline: Option<Instant>,
        stall: Duration,
        max: u32,
        payload: &mut Vec<u8>,
    ) -> Result<Message, Received> {
        if self.results.buffer().is_empty() {
            let watched = self.results.get_mut();
            watched.deadline = deadline;
            watched.stall = None;
            match self.results.fill_buf() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Received::TimedOut),
                Err(e) => return Err(Received::Wire(WireError::Io(e))),
            }
        }
        let watched = self.results.get_mut();
        watched.deadline = None;
        watched.stall = Some(stall);
        match wire::read_frame_into(&mut self.results, max, payload) {
            Ok(message) => Ok(message),
            Err(WireError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => Err(Received::Stalled),
            Err(e) => Err(Received::Wire(e)),
        }
    }

    /// Says that a frame is on its way (see [`Watched::coming`]).
    pub(crate) fn expect_frame(&mut self) {
        self.results.get_mut().coming = true;
    }

    /// Whether bytes from the worker are buffered, not read yet.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.results.buffer().is_empty()
    }

    /// Whether the worker has gone while idle: its result pipe is readable
    /// (end of file, or bytes nobody asked for) or the process has exited,
    /// although no task is out.
    pub(crate) fn is_gone(&self) -> bool {
        if !self.results.buffer().is_empty() {
            return true;
        }
        let watched = self.results.get_ref();
        let pipe = watched.file.as_raw_fd();
        let ready = match &watched.exited {
            Some(exited) => {
                sys::region::poll_readable(&[pipe, exited.as_raw_fd()], Some(Duration::ZERO))
            }
            None => sys::region::poll_readable(&[pipe], Some(Duration::ZERO)),
        };
        ready.map_or(true, |ready| ready != 0)
    }

    /// Kills the worker (if it still runs) and reaps it.
    pub(crate) fn kill_and_reap(mut self) -> Exit {
        self.process.kill();
        exit_of(self.process.wait().ok())
    }

    /// Reaps a worker that is exiting by itself (its pipe closed, or it was
    /// told to stop). If it has not exited within `grace`, it is killed.
    pub(crate) fn reap(mut self, grace: Duration) -> Exit {
        drop(self.tasks);
        // The worker exits when it reads end of file; its end of the result
        // pipe closes as it does. Drain the pipe until end of file (or the
        // process's own exit, whoever holds the pipe), then give the exit
        // what is left of the grace: a worker whose task closed its pipes
        // and went on is killed, not waited for.
        let deadline = Instant::now() + grace;
        let mut drain = [0u8; 512];
        {
            let watched = self.results.get_mut();
            watched.deadline = Some(deadline);
            watched.stall = None;
        }
        loop {
            match self.results.read(&mut drain) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !wait_for_exit(
            self.results.get_ref().exited.as_ref(),
            &mut self.process,
            left,
        ) {
            self.process.kill();
        }
        exit_of(self.process.wait().ok())
    }
}

/// Waits up to `grace` for `process` to exit (reaping it only where there
/// is no process descriptor `exited`); `true` if it did.
fn wait_for_exit(exited: Option<&OwnedFd>, process: &mut sys::Process, grace: Duration) -> bool {
    if let Some(exited) = exited {
        return sys::region::poll_readable(&[exited.as_raw_fd()], Some(grace))
            .is_ok_and(|r| r != 0);
    }
    let until = Instant::now() + grace;
    loop {
        if process.try_wait() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn exit_of(status: Option<std::process::ExitStatus>) -> Exit {
    match status {
        Some(status) => Exit {
            code: status.code(),
            signal: status.signal(),
        },
        None => Exit {
            code: None,
            signal: None,
        },
    }
}
