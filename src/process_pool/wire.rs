//! Frames and messages between the parent and a worker process.
//!
//! # Framing
//!
//! ```text
//! frame   = length:u32 (little-endian) ‖ header ‖ payload
//! header  = one `Message`, postcard-encoded
//! payload = the rest of the frame (raw bytes; only Task and Done have one)
//! ```
//!
//! `length` counts header and payload. A frame longer than the pool's limit
//! is refused before anything is allocated for it; a frame cut short by end
//! of file, a header that does not decode, or a message the reader does not
//! expect is a [`WireError`], never a panic.
//!
//! # Payloads
//!
//! A task's payload is its items, each `len:u32 ‖ postcard(item)`; a Done
//! payload is one outcome per item, each `tag:u8 ‖ len:u32 ‖ bytes`. Every
//! item carries its own length so that one value that fails to decode costs
//! that item alone, not the rest of the chunk.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::sys;

/// The protocol version; both sides must agree exactly.
pub(crate) const VERSION: u32 = 1;

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
    /// of the `count` items in the payload.
    Task {
        /// Offset of the monomorphised trampoline.
        call: u64,
        /// Offset of the user's function.
        func: u64,
        /// The number of items in the payload.
        count: u32,
    },
    /// Worker → parent: the outcomes of the last task, in the payload.
    Done {
        /// The number of outcomes in the payload.
        count: u32,
        /// Nanoseconds the worker spent on the items.
        elapsed_nanos: u64,
    },
    /// Parent → worker, right before a `Task` whose arguments hold
    /// multiprocessing handles: `count` descriptors follow on the worker's
    /// socket (`SCM_RIGHTS`), for that task's handles to take.
    Descriptors {
        /// How many.
        count: u32,
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
    out.extend_from_slice(&[0; 4]);
    let out = postcard::to_io(message, out).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = (out.len() - 4) as u64 + payload.len() as u64;
    if len > u64::from(max) {
        return Err(WireError::TooLarge { len, max });
    }
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
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
    // limit), and copy bytes nobody needs.
    if payload.capacity() < len || payload.capacity() > 2 * len.max(64 * 1024) {
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

/// Appends one length-prefixed item to a payload. On failure the payload is
/// left as it was.
pub(crate) fn push_item<T: Serialize>(payload: &mut Vec<u8>, value: &T) -> Result<(), String> {
    push_sized(payload, &[], value)
}

/// Appends the outcome of an item that succeeded: its tag, length and
/// value. On failure the payload is left as it was.
pub(crate) fn push_ok<T: Serialize>(payload: &mut Vec<u8>, value: &T) -> Result<(), String> {
    push_sized(payload, &[outcome::OK], value)
}

/// Appends `tag` (empty or one byte), a 4-byte length and `value`.
#[inline]
fn push_sized<T: Serialize>(payload: &mut Vec<u8>, tag: &[u8], value: &T) -> Result<(), String> {
    let start = payload.len();
    let head = tag.len() + 4;
    sys::reserve(payload, head);
    payload.extend_from_slice(tag);
    payload.extend_from_slice(&[0; 4]);
    let outcome = match postcard::serialize_with_flavor(value, Append(payload)) {
        Ok(()) => {
            let len = payload.len() - start - head;
            u32::try_from(len)
                .map_err(|_| format!("{len} bytes is over the 4 GiB an item may have"))
        }
        Err(e) => Err(why(&e)),
    };
    match outcome {
        Ok(len) => {
            payload[start + tag.len()..start + head].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(reason) => {
            payload.truncate(start);
            Err(reason)
        }
    }
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
            "its Serialize impl returned an error (postcard, the wire format, \
             does not keep that error's message)"
        }
        E::SerdeDeCustom => {
            "its Deserialize impl returned an error (postcard, the wire format, \
             does not keep that error's message)"
        }
        E::WontImplement => {
            "its serde impl needs a self-describing format (`deserialize_any`: \
             untagged or flattened enums, `serde_json::Value` and the like), \
             which postcard, the wire format, is not"
        }
        other => return other.to_string(),
    };
    String::from(text)
}

/// A postcard output that appends to an existing buffer, a byte or a slice
/// at a time, with no allocation of its own.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.0.len() == self.0.capacity() {
            grow(self.0);
        }
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        // Varints come through here, a few bytes each: pushed one by one
        // rather than through a call to `memcpy`, which costs more than
        // the copy at that size.
        if bytes.len() <= 16 {
            for &byte in bytes {
                self.try_push(byte)?;
            }
            return Ok(());
        }
        sys::reserve(self.0, bytes.len());
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Doubles a full buffer (out of line: the byte-at-a-time path stays small).
#[cold]
fn grow(buffer: &mut Vec<u8>) {
    sys::reserve(buffer, buffer.capacity().max(64));
}

/// Reads the payload's items back one by one.
#[derive(Debug)]
pub(crate) struct Items<'a> {
    rest: &'a [u8],
}

impl<'a> Items<'a> {
    pub(crate) fn new(payload: &'a [u8]) -> Self {
        Items { rest: payload }
    }

    /// The next item's bytes; `Err` if the payload ends in the middle of
    /// one, `Ok(None)` at its end.
    pub(crate) fn next_item(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        self.take_sized(0).map(|item| item.map(|(_, bytes)| bytes))
    }

    /// The next outcome: its tag and bytes.
    pub(crate) fn next_outcome(&mut self) -> Result<Option<(u8, &'a [u8])>, WireError> {
        self.take_sized(1)
    }

    /// The next item's bytes if it is whole: the common case, returned in
    /// registers. At the end or at a bad entry nothing is taken, for
    /// [`next_item`](Self::next_item) to say which.
    #[inline]
    pub(crate) fn next_whole_item(&mut self) -> Option<&'a [u8]> {
        self.take_if(0, 0)
    }

    /// The next outcome's bytes if it is a whole [`outcome::OK`]: the common
    /// case. Anything else is left for [`next_outcome`](Self::next_outcome).
    #[inline]
    pub(crate) fn next_ok(&mut self) -> Option<&'a [u8]> {
        self.take_if(1, outcome::OK)
    }

    /// Takes the next entry (with a tag of `tag_len` bytes, which must be
    /// `tag`) if it is whole.
    #[inline]
    fn take_if(&mut self, tag_len: usize, tag: u8) -> Option<&'a [u8]> {
        let head = tag_len + 4;
        let (prefix, rest) = self.rest.split_at_checked(head)?;
        if tag_len == 1 && prefix[0] != tag {
            return None;
        }
        let len = u32::from_le_bytes(prefix[tag_len..head].try_into().ok()?) as usize;
        let (bytes, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some(bytes)
    }

    fn take_sized(&mut self, tag_len: usize) -> Result<Option<(u8, &'a [u8])>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let head = tag_len + 4;
        if self.rest.len() < head {
            return Err(self.cut(head));
        }
        let tag = if tag_len == 1 { self.rest[0] } else { 0 };
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&self.rest[tag_len..head]);
        let len = u32::from_le_bytes(len_bytes) as usize;
        let Some(end) = head.checked_add(len).filter(|&end| end <= self.rest.len()) else {
            return Err(self.cut(head.saturating_add(len)));
        };
        let bytes = &self.rest[head..end];
        self.rest = &self.rest[end..];
        Ok(Some((tag, bytes)))
    }

    fn cut(&self, expected: usize) -> WireError {
        WireError::Truncated {
            got: self.rest.len(),
            expected,
        }
    }
}

/// The tags of a Done payload's outcomes.
pub(crate) mod outcome {
    /// The bytes are the postcard-encoded result.
    pub(crate) const OK: u8 = 0;
    /// The bytes are a postcard-encoded `PanicInfo`.
    pub(crate) const PANICKED: u8 = 1;
    /// The bytes are the UTF-8 reason the argument did not decode.
    pub(crate) const BAD_ARGUMENT: u8 = 2;
    /// The bytes are the UTF-8 reason the result did not encode.
    pub(crate) const BAD_RESULT: u8 = 3;
}

/// A panic in a worker, as it travels back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PanicInfo {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
}

/// The bytes an outcome takes besides its own: a tag and a length.
pub(crate) const OUTCOME_OVERHEAD: usize = 5;

/// Appends one outcome to a Done payload.
pub(crate) fn push_outcome(payload: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    payload.push(tag);
    // A result over 4 GiB cannot be in a frame anyway; the frame limit
    // refuses it when the frame is written.
    payload.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    payload.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u128>(),
                any::<(u64, u64)>(),
                any::<u64>(),
                any::<Option<u64>>(),
                any::<u32>()
            )
                .prop_map(|(version, token, exe, probe, initializer, max_frame)| {
                    Message::Hello {
                        version,
                        token,
                        exe,
                        probe,
                        initializer,
                        max_frame,
                    }
                }),
            (any::<u32>(), any::<u128>(), any::<u32>()).prop_map(|(version, token, pid)| {
                Message::Ready {
                    version,
                    token,
                    pid,
                }
            }),
            ".*".prop_map(|reason| Message::InitFailed { reason }),
            Just(Message::Initialized),
            (any::<u64>(), any::<u64>(), any::<u32>())
                .prop_map(|(call, func, count)| Message::Task { call, func, count }),
            (any::<u32>(), any::<u64>()).prop_map(|(count, elapsed_nanos)| Message::Done {
                count,
                elapsed_nanos
            }),
            any::<u32>().prop_map(|count| Message::Descriptors { count }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(message in message(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut wire = Vec::new();
            write_frame(&mut wire, &message, &payload, DEFAULT_MAX_FRAME, &mut Vec::new()).unwrap();
            let frame = read_frame(&mut wire.as_slice(), DEFAULT_MAX_FRAME).unwrap();
            prop_assert_eq!(frame, Frame { message, payload });
        }

        #[test]
        fn random_bytes_give_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_frame(&mut bytes.as_slice(), 1024);
            let mut items = Items::new(&bytes);
            while let Ok(Some(_)) = items.next_outcome() {}
        }

        #[test]
        fn every_truncation_is_an_error(message in message(), cut in 1usize..64) {
            let mut wire = Vec::new();
            write_frame(&mut wire, &message, b"payload", DEFAULT_MAX_FRAME, &mut Vec::new()).unwrap();
            let cut = cut.min(wire.len() - 1);
            let short = &wire[..wire.len() - cut];
            let is_truncated = matches!(read_frame(&mut &short[..], DEFAULT_MAX_FRAME), Err(WireError::Truncated { .. }));
            prop_assert!(is_truncated);
        }

        #[test]
        fn items_round_trip(values in proptest::collection::vec(any::<(u64, String)>(), 0..20)) {
            let mut payload = Vec::new();
            for value in &values {
                push_item(&mut payload, value).unwrap();
            }
            let mut items = Items::new(&payload);
            let mut back = Vec::new();
            while let Some(bytes) = items.next_item().unwrap() {
                back.push(postcard::from_bytes::<(u64, String)>(bytes).unwrap());
            }
            prop_assert_eq!(back, values);
        }
    }

    #[test]
    fn a_huge_length_prefix_is_refused_before_allocating() {
        let wire = u32::MAX.to_le_bytes();
        assert!(matches!(
            read_frame(&mut &wire[..], 1024),
            Err(WireError::TooLarge { .. })
        ));
    }

    /// Found by the `frame` fuzz target (`fuzz/seeds/frame/
    /// crash-reused-buffer-grew-past-frame`): a buffer left by a smaller
    /// frame was grown by doubling, past what the next frame declares and
    /// past the limit.
    #[test]
    fn a_reused_buffer_never_grows_past_the_frame() {
        let task = Message::Task {
            call: 1,
            func: 2,
            count: 1,
        };
        let mut wire = Vec::new();
        for len in [600, 900] {
            write_frame(&mut wire, &task, &vec![7; len], 1000, &mut Vec::new()).unwrap();
        }
        let mut reader = wire.as_slice();
        let mut payload = Vec::new();
        for len in [600, 900] {
            read_frame_into(&mut reader, 1000, &mut payload).unwrap();
            assert_eq!(payload.len(), len);
            assert!(payload.capacity() <= 1000, "{} bytes", payload.capacity());
        }
    }

    #[test]
    fn end_of_file_between_frames_is_closed() {
        assert!(matches!(
            read_frame(&mut &[][..], 1024),
            Err(WireError::Closed)
        ));
    }
}
