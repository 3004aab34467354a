//! The one error type of the crate.

use std::time::Duration;

/// Everything that can go wrong with a task, a future or a pool.
///
/// `Error` is `Clone`, so every waiter on a failed [`Future`](crate::Future)
/// can be told what happened, and it names what it is about: the panic
/// message and where it happened, the worker's pid, the limit that was hit.
///
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a
/// catch-all arm.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(1);
/// let f = pool.submit(|| -> u32 { panic!("boom") });
/// match f.result() {
///     Err(Error::Panicked { message, .. }) => assert_eq!(message, "boom"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The future was cancelled before its task started.
    ///
    /// Returned by [`Future::result`](crate::Future::result) after a
    /// successful [`Future::cancel`](crate::Future::cancel), and for queued
    /// tasks that a cancelling shutdown or a dropped `map` iterator removed.
    #[error("the task was cancelled before it started")]
    Cancelled,

    /// Waiting gave up: the time limit of a timed wait passed first.
    ///
    /// Only the wait timed out; the task itself goes on and its future can
    /// still be waited for. Returned by
    /// [`Future::result_timeout`](crate::Future::result_timeout) and the
    /// timed [`as_completed`](crate::as_completed_timeout).
    #[error("timed out after {0:?} waiting for the result")]
    Timeout(Duration),

    /// The task panicked. The worker that ran it lives on.
    #[error("{}", panic_text(message, location.as_deref(), *pid))]
    Panicked {
        /// The panic's message (its payload when that was a string).
        message: String,
        /// `file:line:column` where the panic happened, when known.
        location: Option<String>,
        /// The pid of the worker process, for a process-pool task.
        pid: Option<u32>,
    },

    /// The pool was shut down: the task was submitted after
    /// [`shutdown`](crate::ThreadPoolExecutor::shutdown) began.
    #[error("the pool has been shut down; no new tasks are accepted")]
    Shutdown,

    /// The pool is broken and runs no more tasks, for the reason given
    /// (for example, its initializer failed).
    #[error("the pool is broken: {reason}")]
    BrokenPool {
        /// Why the pool broke.
        reason: String,
    },

    /// The worker process running the task died: it exited, aborted, was
    /// killed or crashed. Only the tasks that were on that worker fail; the
    /// pool replaces the worker and carries on.
    #[error("worker process {pid} died while running the task ({})", exit_text(*exit_code, *signal))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// Its exit code, if it exited.
        exit_code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
    },

    /// The task ran longer than the process pool's per-task time limit; its
    /// worker was killed and replaced.
    #[error("the task exceeded its time limit of {limit:?}; worker process {pid} was killed")]
    TaskTimedOut {
        /// The limit that was set.
        limit: Duration,
        /// The pid of the worker that was killed.
        pid: u32,
    },

    /// A value could not be encoded to travel to or from a worker process.
    ///
    /// The reason is the wire format's (over the frame limit, a sequence
    /// without a known length, a serde impl that needs a self-describing
    /// format) or, when the value's own `Serialize` impl returned an error,
    /// that error's message, word for word.
    #[error("could not encode the {what}: {reason}")]
    Encode {
        /// Which value: `"argument"` or `"result"`.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// A value that came from the other side of the pipe could not be
    /// decoded.
    ///
    /// As for [`Encode`](Error::Encode), a message that the value's own
    /// `Deserialize` impl gave `de::Error::custom` (or one of serde's own,
    /// such as an unknown variant) is in the reason, word for word.
    #[error("could not decode the {what}: {reason}")]
    Decode {
        /// Which value: `"argument"` or `"result"`.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// A worker process could not be started, or failed its handshake.
    #[error("could not start a worker process: {reason}")]
    Spawn {
        /// Why.
        reason: String,
    },

    /// A worker broke the protocol (a truncated or oversized frame, a
    /// message it should not send); the worker was stopped and replaced.
    #[error("worker process {pid} broke the protocol: {reason}")]
    Protocol {
        /// The worker's process id.
        pid: u32,
        /// What was wrong.
        reason: String,
    },

    /// An argument or option was out of range, for example a pool of zero
    /// workers.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },

    /// The result was already taken out of this future (by a successful
    /// [`result_timeout`](crate::Future::result_timeout),
    /// [`try_result`](crate::Future::try_result) or `.await`).
    #[error("the result of this future was already taken")]
    AlreadyRetrieved,

    /// A system call failed: what the crate was doing and what the system
    /// said (for example creating shared memory for a
    /// [`multiprocessing`](crate::multiprocessing) handle).
    #[error("{what} failed: {reason}")]
    Os {
        /// What the crate was doing.
        what: String,
        /// The system's error.
        reason: String,
    },

    /// The other end of a
    /// [`multiprocessing::Connection`](crate::multiprocessing::Connection)
    /// is closed in every process: nothing more can be received from it or
    /// sent to it. Python's `EOFError` and `BrokenPipeError`.
    #[error("the other end of the connection is closed")]
    Disconnected,

    /// A process-pool task overflowed its stack (unbounded recursion, a
    /// huge local array): its worker died of it and was replaced. Rust's
    /// "has overflowed its stack" line is on the worker's standard error.
    /// Reported for overflows on the thread that runs the task; one on a
    /// thread the task started itself shows as [`Error::WorkerDied`] with
    /// `SIGSEGV`.
    #[error("the task overflowed its stack; worker process {pid} died of it")]
    StackOverflow {
        /// The worker's process id.
        pid: u32,
    },
}

fn panic_text(message: &str, location: Option<&str>, pid: Option<u32>) -> String {
    let mut text = format!("the task panicked: {message}");
    if let Some(location) = location {
        text.push_str(&format!(" (at {location})"));
    }
    if let Some(pid) = pid {
        text.push_str(&format!(" in worker process {pid}"));
    }
    text
}

fn exit_text(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (_, Some(signal)) => format!("killed by signal {signal}{}", signal_name(signal)),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => String::from("status unknown"),
    }
}

/// ` (SIGKILL)` and the like for the signals a worker commonly dies of.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

impl Error {
    /// Builds [`Error::Panicked`] from the payload `catch_unwind` returned.
    pub(crate) fn from_panic(
        payload: &(dyn std::any::Any + Send),
        location: Option<String>,
        pid: Option<u32>,
    ) -> Self {
        Error::Panicked {
            message: panic_message(payload),
            location,
            pid,
        }
    }
}

/// The text of a panic payload: the `&str` or `String` it carries, or a
/// placeholder for any other type.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<a panic payload that is not a string>")
    }
}
