//! An item's failure as it travels between processes that are not parent
//! and child: a rank of the MPI pool runs its items on workers of its own,
//! and the error one of them met (its worker died, its time ran out, it
//! panicked there) reaches the pool's caller word for word, with the pid
//! of the process where it happened. Carried as the detail of an
//! [`outcome::ERROR`](super::outcome::ERROR) outcome.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// [`Error`], as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Failure {
    Cancelled,
    Shutdown,
    Panicked {
        message: String,
        location: Option<String>,
        pid: Option<u32>,
    },
    BrokenPool {
        reason: String,
    },
    WorkerDied {
        pid: u32,
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    TaskTimedOut {
        limit_nanos: u64,
        pid: u32,
    },
    Encode {
        argument: bool,
        reason: String,
    },
    Decode {
        argument: bool,
        reason: String,
    },
    Spawn {
        reason: String,
    },
    Protocol {
        pid: u32,
        reason: String,
    },
    InvalidArgument {
        reason: String,
    },
    StackOverflow {
        pid: u32,
    },
    /// Any other error, by its text.
    Other {
        text: String,
    },
}

/// `error`, encoded.
#[cfg_attr(not(any(feature = "mpi", test)), allow(dead_code))]
pub(crate) fn encode(error: &Error) -> Vec<u8> {
    let what = |what: &str| what == "argument";
    let failure = match error.clone() {
        Error::Cancelled => Failure::Cancelled,
        Error::Shutdown => Failure::Shutdown,
        Error::Panicked {
            message,
            location,
            pid,
        } => Failure::Panicked {
            message,
            location,
            pid,
        },
        Error::BrokenPool { reason } => Failure::BrokenPool { reason },
        Error::WorkerDied {
            pid,
            exit_code,
            signal,
        } => Failure::WorkerDied {
            pid,
            exit_code,
            signal,
        },
        Error::TaskTimedOut { limit, pid } => Failure::TaskTimedOut {
            limit_nanos: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
            pid,
        },
        Error::Encode { what: w, reason } => Failure::Encode {
            argument: what(w),
            reason,
        },
        Error::Decode { what: w, reason } => Failure::Decode {
            argument: what(w),
            reason,
        },
        Error::Spawn { reason } => Failure::Spawn { reason },
        Error::Protocol { pid, reason } => Failure::Protocol { pid, reason },
        Error::InvalidArgument { reason } => Failure::InvalidArgument { reason },
        Error::StackOverflow { pid } => Failure::StackOverflow { pid },
        other => Failure::Other {
            text: other.to_string(),
        },
    };
    postcard::to_allocvec(&failure).unwrap_or_default()
}

/// The error `bytes` encode; `None` if they do not decode.
pub(crate) fn decode(bytes: &[u8]) -> Option<Error> {
    let what = |argument: bool| if argument { "argument" } else { "result" };
    let failure: Failure = postcard::from_bytes(bytes).ok()?;
    Some(match failure {
        Failure::Cancelled => Error::Cancelled,
        Failure::Shutdown => Error::Shutdown,
        Failure::Panicked {
            message,
            location,
            pid,
        } => Error::Panicked {
            message,
            location,
            pid,
        },
        Failure::BrokenPool { reason } => Error::BrokenPool { reason },
        Failure::WorkerDied {
            pid,
            exit_code,
            signal,
        } => Error::WorkerDied {
            pid,
            exit_code,
            signal,
        },
        Failure::TaskTimedOut { limit_nanos, pid } => Error::TaskTimedOut {
            limit: Duration::from_nanos(limit_nanos),
            pid,
        },
        Failure::Encode { argument, reason } => Error::Encode {
            what: what(argument),
            reason,
        },
        Failure::Decode { argument, reason } => Error::Decode {
            what: what(argument),
            reason,
        },
        Failure::Spawn { reason } => Error::Spawn { reason },
        Failure::Protocol { pid, reason } => Error::Protocol { pid, reason },
        Failure::InvalidArgument { reason } => Error::InvalidArgument { reason },
        Failure::StackOverflow { pid } => Error::StackOverflow { pid },
        Failure::Other { text } => Error::BrokenPool { reason: text },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_a_rank_reports_arrives_as_it_was() {
        let errors = [
            Error::Cancelled,
            Error::Panicked {
                message: String::from("boom"),
                location: Some(String::from("src/main.rs:3:5")),
                pid: Some(42),
            },
            Error::WorkerDied {
                pid: 7,
                exit_code: None,
                signal: Some(11),
            },
            Error::TaskTimedOut {
                limit: Duration::from_millis(250),
                pid: 9,
            },
            Error::Decode {
                what: "argument",
                reason: String::from("bad"),
            },
            Error::Encode {
                what: "result",
                reason: String::from("worse"),
            },
            Error::StackOverflow { pid: 3 },
        ];
        for error in errors {
            let back = decode(&encode(&error)).expect("it decodes");
            assert_eq!(format!("{back:?}"), format!("{error:?}"));
        }
        assert!(decode(&[0xff, 0xff]).is_none());
    }
}
