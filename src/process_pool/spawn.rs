//! Starting, greeting, watching, killing and reaping worker processes.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use super::entry::{BAD_START, MARKER, SOCKET_MARKER};
use super::sys;
use super::wire::{self, Frame, Message, WireError};
use crate::Error;

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
}

/// A running worker process and the parent's ends of its two pipes.
#[derive(Debug)]
pub(crate) struct Worker {
    process: sys::Process,
    pub(crate) pid: u32,
    pub(crate) tasks: File,
    /// Buffered: a small reply (its length, header and outcomes) comes in
    /// with one `read`, not one per part.
    pub(crate) results: BufReader<File>,
    /// Reused buffer for outgoing frames.
    pub(crate) scratch: Vec<u8>,
    /// The parent's end of the worker's Unix socket, on which the
    /// descriptors of multiprocessing handles in task arguments travel.
    socket: OwnedFd,
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
    sys::enlarge_pipe(&task_write, PIPE_BUFFER);
    sys::enlarge_pipe(&result_read, PIPE_BUFFER);
    let (socket, socket_child) =
        sys::seqpacket_pair().map_err(|e| spawn_error(format!("cannot create a socket: {e}")))?;
    let keep = [
        task_read.as_raw_fd(),
        result_write.as_raw_fd(),
        socket_child.as_raw_fd(),
    ];

    let marker = format!("{MARKER}=v1:{}:{}:{:032x}", keep[0], keep[1], config.token);
    let socket_marker = format!("{SOCKET_MARKER}={}", keep[2]);
    let process = sys::spawn_process(&[marker.as_bytes(), socket_marker.as_bytes()], &keep)
        .map_err(|e| spawn_error(format!("cannot start /proc/self/exe: {e}")))?;
    // The child has its copies; the parent keeps only its own ends, so that
    // it sees end of file when the worker dies.
    drop(task_read);
    drop(result_write);
    drop(socket_child);

    let mut worker = Worker {
        pid: process.id(),
        process,
        tasks: File::from(task_write),
        results: BufReader::with_capacity(RESULT_BUFFER, File::from(result_read)),
        scratch: Vec::new(),
        socket,
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
                Received::TimedOut => unreachable!("no deadline was set"),
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

    /// Sends one task frame whose arguments hold multiprocessing handles:
    /// first a `Descriptors` frame, then the descriptors `fds` on the
    /// worker's socket (`SCM_RIGHTS`, at most 253 a message), then the
    /// task. Nothing is sent if the task is over the frame limit, so the
    /// worker never holds descriptors that no task follows.
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
        let message = self.receive_into(deadline, max, &mut payload)?;
        Ok(Frame { message, payload })
    }

    /// Reads one frame like [`receive`](Self::receive), its payload into
    /// `payload`, whose allocation is reused when it fits: a large reply's
    /// buffer is not allocated (and its pages faulted in) again for the
    /// next one.
    pub(crate) fn receive_into(
        &mut self,
        deadline: Option<Instant>,
        max: u32,
        payload: &mut Vec<u8>,
    ) -> Result<Message, Received> {
        // Bytes already buffered need no wait.
        if let (Some(deadline), true) = (deadline, self.results.buffer().is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match sys::wait_readable(self.results.get_ref(), Some(left)) {
                Ok(true) => {}
                Ok(false) => return Err(Received::TimedOut),
                Err(e) => return Err(Received::Wire(WireError::Io(e))),
            }
        }
        wire::read_frame_into(&mut self.results, max, payload).map_err(Received::Wire)
    }

    /// Whether the worker has gone while idle: its result pipe is readable
    /// (end of file, or bytes nobody asked for) although no task is out.
    pub(crate) fn is_gone(&self) -> bool {
        !self.results.buffer().is_empty()
            || sys::wait_readable(self.results.get_ref(), Some(Duration::ZERO)).unwrap_or(true)
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
        // The worker exits when it reads end of file, and its end of the
        // result pipe closes as it does (it is close-on-exec in the worker,
        // so no program a task started holds it): wait for that end of
        // file, then for the exit that follows at once.
        let deadline = Instant::now() + grace;
        let mut drain = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let readable = if self.results.buffer().is_empty() {
                sys::wait_readable(self.results.get_ref(), Some(left))
            } else {
                Ok(true)
            };
            match readable {
                Ok(true) => match self.results.read(&mut drain) {
                    Ok(0) => return exit_of(self.process.wait().ok()),
                    // Bytes nobody asked for: keep draining until the end.
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                },
                Ok(false) | Err(_) => break,
            }
        }
        self.process.kill();
        exit_of(self.process.wait().ok())
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
