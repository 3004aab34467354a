//! Frames and messages between the parent and a worker process, and the
//! shared region beside the pipes.
//!
//! # Framing
//!
//! ```text
//! frame   = length:u32 (little-endian) ‖ header ‖ payload
//! header  = one `Message`, postcard-encoded
//! payload = the rest of the frame (raw bytes; only Task and Partial have one)
//! ```
//!
//! `length` counts header and payload. A frame longer than the pool's limit
//! is refused before anything is allocated for it; a frame cut short by end
//! of file, a header that does not decode, or a message the reader does not
//! expect is a [`WireError`], never a panic.
//!
//! # Tasks: arguments on the pipe, outcomes in shared memory
//!
//! A Task's payload is its `count` arguments, encoded one after another
//! in the values' format (`encode`: postcard's layout with fixed-width
//! numbers) with nothing between them (a bulk sequence: values end where
//! their type says). A `TaskShared` carries no payload: its arguments, in
//! the same format, are the `len` bytes at `at` of the pool's argument
//! arena (`sys::arena`, a sealed memfd every worker maps read-only), which
//! the parent does not touch again until the task's outcomes are in; a
//! worker told of bytes outside its arena refuses the task and exits.
//! Outcomes do not come back on the pipe: each
//! worker has a region of shared memory (`sys::region`, a sealed anonymous
//! memfd mapped by both sides at spawn) with [`SLOTS`](sys::region::SLOTS)
//! slots, one per task in flight, so that the worker always has its next
//! task while the parent reads the last one's outcomes. A slot holds:
//!
//! * `gate` (u32): [`gate::QUEUED`] when the parent sends the task;
//!   the worker moves it to [`gate::STARTED`] (compare-and-swap) before it
//!   runs anything, and the parent may move it to [`gate::WITHDRAWN`]
//!   first (the task's future was cancelled), in which case the worker
//!   answers `Skipped` and runs nothing. Whoever swaps first wins, so a
//!   task is either run or cancelled, never both. The worker sets
//!   [`gate::FINISHED`] before its `Done`. (A parent that never hands a
//!   task out, and so leaves a slot [`gate::EMPTY`] or finished, gets its
//!   task run: only `WITHDRAWN` stops one.)
//! * `progress` (u64), for the task's items counted from 0: `2k + 1` while
//!   item `k` runs, `2k + 2` once its outcome is published. (Between two
//!   items the worker may go straight from `2k + 1` to `2k + 3`, which
//!   publishes item `k`'s outcome just as `2k + 2` would.) The parent sets
//!   it to 0 with the gate.
//! * `ends` and `data`: the outcomes, item after item: `data` holds each
//!   outcome's bytes (a value's encoding, or for a failure a tag
//!   byte from [`outcome`] and its detail), `ends[i]` where outcome `i`
//!   ends, with bit 31 ([`FAILED`]) set for a failure.
//!
//! * `implied` (u64): 0, or a size `s`: then every outcome the slot
//!   holds is a value of `s` bytes, outcome `i` ending at `(i + 1) * s`,
//!   and its end was not written (the worker's loop for plain numbers,
//!   which then stores a result and the progress word per item, nothing
//!   else). The worker sets it, before the slot's first outcome, only in
//!   an empty slot; before any other kind of outcome, or before it hands
//!   the slot over, it writes the ends it left out and clears the word
//!   (release), so a parent that reads the word with acquire after the
//!   progress word sees either the word or the ends. The parent sets it to
//!   0 with the gate.
//!
//! The worker writes an outcome, then its end, then the progress word
//! (release); after the last item it sends `Done` on the pipe. When a
//! slot's `ends` or `data` are full, the worker sends what it holds as a
//! `Partial` frame (payload: the block, `ends` as little-endian u32s then
//! `data`) and starts the slot over; a single outcome larger than a slot
//! goes out as a `Partial` of its own. A full slot of values whose ends
//! were left implied goes as `PartialValues` instead, the values alone.
//!
//! A worker with no region shared with the parent (an MPI rank) sends the
//! outcomes in the frames instead: `Done`'s payload is a block as in a
//! `Partial`; and a slot of plain values whose ends were left implied
//! goes as `Values`, whose payload is the values alone.
//!
//! # What a dead worker leaves
//!
//! Frames that reached the pipe before the worker died are read to the
//! end. Then the progress word says, for the task it was on, which items
//! finished (their outcomes are in the slot, after those a `Partial`
//! already delivered), which one was running (it fails with the death),
//! and which never started: those are sent, and run, on the replacement
//! worker. The task behind it, still `QUEUED`, never started at all. So a
//! death costs exactly the item that was running, and nothing runs twice.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::sys;

mod block;
mod bounds;
pub(crate) mod bulk;
pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod remote;
pub(crate) use block::{Block, Entry};
pub(crate) use bounds::{Bounds, ItemEnds};
pub(crate) use decode::{decode_all, from_bytes, Deserializer};
pub(crate) use encode::{encode, encode_run, Append, Bounded, RunState};

/// The protocol version; both sides must agree exactly.
pub(crate) const VERSION: u32 = 3;

/// Bit 31 of an outcome's end: the outcome is a failure (a tag from
/// [`outcome`] and its detail), not a value.
pub(crate) const FAILED: u32 = 1 << 31;

/// The values of a slot's gate word.
pub(crate) mod gate {
    /// No task has used the slot yet.
    pub(crate) const EMPTY: u32 = 0;
    /// Sent to the worker; it has not started.
    pub(crate) const QUEUED: u32 = 1;
    /// The worker has started it.
    pub(crate) const STARTED: u32 = 2;
    /// Withdrawn by the parent before the worker started it.
    pub(crate) const WITHDRAWN: u32 = 3;
    /// The worker has run all of it (set just before its `Done`).
    pub(crate) const FINISHED: u32 = 4;
}

/// The largest frame the pool accepts by default (1 GiB).
pub(crate) const DEFAULT_MAX_FRAME: u32 = 1 << 30;

/// The messages; a frame's header is exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Parent → worker, first: who the parent is, so that the worker can
    /// check it is the same program.
    Hello {
        /// [`VERSION`].
        version: u32,
        /// The per-pool random token, which the worker also got in its
        /// environment.
        token: u128,
        /// The device and inode of the parent's executable.
        exe: (u64, u64),
        /// Where a known function lies relative to the anchor.
        probe: u64,
        /// The initializer to run before the first task (its offset), if any.
        initializer: Option<u64>,
        /// The largest frame either side may send.
        max_frame: u32,
        /// The descriptor of the shared region, inherited by the worker.
        region_fd: i32,
        /// The descriptor of the pool's argument arena, inherited by the
        /// worker, if the pool has one.
        arena_fd: Option<i32>,
    },
    /// Worker → parent, after `Hello` checked out and the initializer ran.
    Ready {
        /// [`VERSION`].
        version: u32,
        /// The token the worker was given.
        token: u128,
        /// The worker's pid.
        pid: u32,
    },
    /// Worker → parent: the initializer ran and succeeded.
    Initialized,
    /// Worker → parent: the initializer failed; the worker exits.
    InitFailed {
        /// Why it failed.
        reason: String,
    },
    /// Parent → worker: run `func` (through the trampoline `call`) on each
    /// of the `count` items in the payload, outcomes into `slot`.
    Task {
        /// Offset of the monomorphised trampoline.
        call: u64,
        /// Offset of the user's function.
        func: u64,
        /// The number of items in the payload.
        count: u32,
        /// The region's slot for the outcomes.
        slot: u8,
    },
    /// Worker → parent: the task in `slot` is done; the outcomes not sent
    /// in a `Partial` are in the slot.
    Done {
        /// The slot.
        slot: u8,
        /// The number of outcomes in the slot.
        count: u32,
        /// How many of them are failures.
        failed: u32,
        /// Nanoseconds the worker spent on the task's items.
        elapsed_nanos: u64,
    },
    /// Worker → parent: the next `count` outcomes of the task in `slot`,
    /// in the payload (a block: their ends, then their bytes).
    Partial {
        /// The slot.
        slot: u8,
        /// The number of outcomes in the payload.
        count: u32,
    },
    /// Worker → parent: the task in `slot` was withdrawn; nothing ran.
    Skipped {
        /// The slot.
        slot: u8,
    },
    /// Parent → worker, right before a `Task` whose arguments hold
    /// multiprocessing handles: `count` descriptors follow on the worker's
    /// socket (`SCM_RIGHTS`), for that task's handles to take.
    Descriptors {
        /// How many.
        count: u32,
    },
    /// Parent → worker: a `Task` whose arguments lie in the pool's argument
    /// arena (the `len` bytes at `at`), not in the frame's payload.
    TaskShared {
        /// Offset of the monomorphised trampoline.
        call: u64,
        /// Offset of the user's function.
        func: u64,
        /// The number of items in the arguments.
        count: u32,
        /// The region's slot for the outcomes.
        slot: u8,
        /// Where the arguments start in the arena.
        at: u64,
        /// Their length in bytes.
        len: u64,
    },
    /// Worker → parent: the next `count` outcomes of the task in `slot`,
    /// all values of `size` bytes (not zero), one after another in the
    /// payload with no ends: a `Partial` of a slot whose ends were left
    /// implied.
    PartialValues {
        /// The slot.
        slot: u8,
        /// The number of values in the payload.
        count: u32,
        /// The size of each, in bytes.
        size: u32,
    },
    /// Worker → parent, from a worker that has no shared region (an MPI
    /// rank): the task in `slot` is done, and its outcomes not sent in a
    /// `Partial` are `count` values of `size` bytes each, one after
    /// another in the payload, with no ends and no failure (what the
    /// plain-number loop leaves, the implied ends above): a fifth of a
    /// `Done`'s payload for one-byte results.
    Values {
        /// The slot.
        slot: u8,
        /// The number of values in the payload.
        count: u32,
        /// The size of each, in bytes (not zero).
        size: u32,
        /// Nanoseconds the worker spent on the task's items.
        elapsed_nanos: u64,
    },
}

/// What can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The other side closed the pipe between frames.
    #[error("the pipe was closed")]
    Closed,
    /// The other side closed the pipe in the middle of a frame.
    #[error("the frame was cut short after {got} of {expected} bytes")]
    Truncated { got: usize, expected: usize },
    /// The length prefix is over the limit.
    #[error("a frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    /// The header does not decode as a message.
    #[error("the frame's header is not a valid message: {0}")]
    Malformed(String),
    /// The message cannot go through this link (nothing was sent).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    #[error("{0}")]
    Unsendable(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One frame read off the wire.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) message: Message,
    pub(crate) payload: Vec<u8>,
}

/// Encodes `message` and `payload` as one frame into `out` (cleared first).
pub(crate) fn encode_frame(
    message: &Message,
    payload: &[u8],
    max: u32,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    out.clear();
    append_frame(message, payload, max, out)
}

/// Encodes `message` and `payload` as one frame at the end of `out`
/// (left as it was if the frame is refused).
pub(crate) fn append_frame(
    message: &Message,
    payload: &[u8],
    max: u32,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let header = postcard::to_io(message, &mut *out)
        .map(|out| out.len() - at - 4)
        .map_err(|e| WireError::Malformed(e.to_string()));
    let len = header.and_then(|header| {
        let len = header as u64 + payload.len() as u64;
        if len > u64::from(max) {
            return Err(WireError::TooLarge { len, max });
        }
        Ok(len)
    });
    match len {
        Ok(len) => {
            out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
            out.extend_from_slice(payload);
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(e)
        }
    }
}

/// Where frames are written: any writer, with a cheaper way to send a
/// large payload where it has one.
pub(crate) trait FrameSink: Write {
    /// Writes all of `bytes`, a frame's large payload. An implementation
    /// may lend the pages of `bytes` to the reader rather than copy them
    /// (see [`sys::write_lent`]): the caller leaves `bytes` unchanged until
    /// the reader has read the whole frame.
    fn write_payload(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
}

impl FrameSink for Vec<u8> {}

impl FrameSink for std::fs::File {
    fn write_payload(&mut self, bytes: &[u8]) -> io::Result<()> {
        sys::write_lent(self, bytes)
    }
}

/// Writes one frame. Large payloads go out in a second write rather than
/// being copied behind the header, their pages lent to a pipe's reader
/// rather than copied into the pipe ([`FrameSink::write_payload`]): the
/// caller leaves `payload` unchanged until the reader has read the frame.
pub(crate) fn write_frame(
    writer: &mut impl FrameSink,
    message: &Message,
    payload: &[u8],
    max: u32,
    scratch: &mut Vec<u8>,
) -> Result<(), WireError> {
    const COPY_LIMIT: usize = 64 * 1024;
    if payload.len() <= COPY_LIMIT {
        encode_frame(message, payload, max, scratch)?;
        writer.write_all(scratch)?;
    } else {
        encode_frame(message, &[], max, scratch)?;
        let len = (scratch.len() - 4) as u64 + payload.len() as u64;
        if len > u64::from(max) {
            return Err(WireError::TooLarge { len, max });
        }
        scratch[..4].copy_from_slice(&(len as u32).to_le_bytes());
        writer.write_all(scratch)?;
        writer.write_payload(payload)?;
    }
    writer.flush()?;
    Ok(())
}

/// Reads one frame; [`WireError::Closed`] on end of file before its first
/// byte.
pub(crate) fn read_frame(reader: &mut impl Read, max: u32) -> Result<Frame, WireError> {
    let mut payload = Vec::new();
    let message = read_frame_into(reader, max, &mut payload)?;
    Ok(Frame { message, payload })
}

/// Reads one frame like [`read_frame`], its payload into `payload`, whose
/// allocation is reused when it fits (a worker's tasks, one after another).
/// A buffer much larger than the frame is given back rather than kept.
pub(crate) fn read_frame_into(
    reader: &mut impl Read,
    max: u32,
    payload: &mut Vec<u8>,
) -> Result<Message, WireError> {
    let mut prefix = [0u8; 4];
    let got = read_full(reader, &mut prefix)?;
    if got == 0 {
        return Err(WireError::Closed);
    }
    if got < prefix.len() {
        return Err(WireError::Truncated { got, expected: 4 });
    }
    let len = u32::from_le_bytes(prefix);
    if len > max {
        return Err(WireError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    let len = len as usize;
    payload.clear();
    // A buffer too small for this frame is replaced, not grown: growing
    // would double it, past what the frame declares (up to twice the
    // limit), and copy bytes nobody needs. One much larger than a frame of
    // some size is given back; a tiny frame (a control message, whose few
    // bytes come with its header) leaves it for the next large one.
    let oversized = payload.capacity() > 2 * len.max(64 * 1024) && len > HEAD_GUESS;
    if payload.capacity() < len || oversized {
        *payload = Vec::new();
    }
    // The header is a few bytes: read it first, then the payload straight
    // into its buffer, so that a large payload is neither zeroed before the
    // read nor moved after it.
    let mut head = [0u8; HEAD_GUESS];
    let first = len.min(HEAD_GUESS);
    let got = read_full(reader, &mut head[..first])?;
    if got < first {
        return Err(WireError::Truncated {
            got: got + 4,
            expected: len + 4,
        });
    }
    let header = match postcard::take_from_bytes::<Message>(&head[..first]) {
        Ok((message, rest)) => {
            sys::reserve(payload, len - (first - rest.len()));
            payload.extend_from_slice(rest);
            Some(message)
        }
        // A header longer than the guess (a long reason string): read the
        // whole body and split it.
        Err(_) if first < len => {
            sys::reserve(payload, len);
            payload.extend_from_slice(&head[..first]);
            None
        }
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    let rest = (len - first) as u64;
    let got = reader.take(rest).read_to_end(payload)? as u64;
    if got < rest {
        return Err(WireError::Truncated {
            got: first + got as usize + 4,
            expected: len + 4,
        });
    }
    match header {
        Some(message) => Ok(message),
        None => {
            let frame = decode_body(std::mem::take(payload))?;
            *payload = frame.payload;
            Ok(frame.message)
        }
    }
}

/// How many bytes of a frame [`read_frame`] reads before it tries to decode
/// the header; every header but one carrying a long text fits.
const HEAD_GUESS: usize = 128;

/// Splits a frame's body into its message and its payload.
pub(crate) fn decode_body(mut body: Vec<u8>) -> Result<Frame, WireError> {
    let (message, rest) = postcard::take_from_bytes::<Message>(&body)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let header_len = body.len() - rest.len();
    body.drain(..header_len);
    Ok(Frame {
        message,
        payload: body,
    })
}

/// Reads until `buf` is full or end of file; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Appends one argument to a Task payload (a bulk sequence: no length or
/// tag). On failure the payload is left as it was.
#[inline]
pub(crate) fn push_value<T: Serialize>(payload: &mut Vec<u8>, value: &T) -> Result<(), String> {
    let start = payload.len();
    // The writer is dropped, and the payload's length set, before the
    // result is looked at.
    let encoded = encode::encode(value, Append::new(payload)).map(drop);
    match encoded {
        Ok(()) => Ok(()),
        Err(e) => {
            payload.truncate(start);
            Err(crate::serde_message::encode_reason(&e, value, why))
        }
    }
}

/// `value` alone in the values' format (tests and fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut bytes = Vec::new();
    encode(value, Append::new(&mut bytes))?;
    Ok(bytes)
}

/// Why a value failed to encode or decode, in words a user can act on.
pub(crate) fn why(error: &postcard::Error) -> String {
    use postcard::Error as E;
    if matches!(error, E::SerdeSerCustom | E::SerdeDeCustom) {
        // A multiprocessing handle's refusal keeps its own words.
        if let Some(reason) = crate::multiprocessing::transfer::take_refusal() {
            return reason;
        }
    }
    let text = match error {
        E::SerdeSerCustom => {
            "its Serialize impl returned an error (the wire format \
             does not keep that error's message)"
        }
        E::SerdeDeCustom => {
            "its Deserialize impl returned an error (the wire format \
             does not keep that error's message)"
        }
        E::WontImplement => {
            "its serde impl needs a self-describing format (`deserialize_any`: \
             untagged or flattened enums, `serde_json::Value` and the like), \
             which the wire format is not"
        }
        other => return other.to_string(),
    };
    String::from(text)
}

/// The tags of failed outcomes.
pub(crate) mod outcome {
    /// The bytes are a postcard-encoded `PanicInfo`.
    pub(crate) const PANICKED: u8 = 1;
    /// The bytes are the UTF-8 reason the argument did not decode.
    pub(crate) const BAD_ARGUMENT: u8 = 2;
    /// The bytes are the UTF-8 reason the result did not encode.
    pub(crate) const BAD_RESULT: u8 = 3;
    /// Any error, as `remote` encodes it (an MPI rank's own worker failed).
    pub(crate) const ERROR: u8 = 4;
}

/// A panic in a worker, as it travels back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PanicInfo {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
}

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod tests;
