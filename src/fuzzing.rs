//! Entry points for the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Internal: compiled only with the `fuzzing` feature, hidden from the
//! docs, and free to change in any release. Each function takes the
//! fuzzer's bytes, runs the crate's own code on them — the frame reader,
//! the marker parser, the worker's side of the handshake, the trampoline
//! writing into a real shared region, and the parent's decoding of
//! outcome blocks through a real job — and panics when a property it
//! checks does not hold. Errors that the code returns for bad input are
//! expected; a panic, a hang or an oversized allocation is a finding.
//!
//! The parts: this file (frames, marker, handshake, round trips),
//! `encodings` (the `encodings` target: blocks and bulk arguments),
//! `parent` (a task's outcomes as the parent decodes them) and `worker`
//! (a task as the worker runs it).

use serde::Deserialize;

use crate::process_pool::entry::{self, Greeting, Marker};
use crate::process_pool::wire::{self, Block, Bounded, Entry, Message, WireError, FAILED};

mod encodings;
mod parent;
mod worker;

pub use encodings::{encodings, ALLOCATION_PER_BYTE, PREALLOCATION_CAP};

/// The largest frame limit the targets use (1 MiB), so that a run spends
/// its time decoding rather than zeroing the buffers that a length prefix
/// asks for.
pub const MAX_FRAME_LIMIT: u32 = 1 << 20;

/// The largest allocation that reading a frame may make beyond the length
/// the frame declares: room for error messages, never for a payload.
pub const ALLOCATION_SLACK: usize = 256;

/// The executable (device, inode) that the `handshake` target's worker
/// takes itself to run.
pub const HANDSHAKE_EXE: (u64, u64) = (0x801, 0x00c0_ffee);

/// The probe offset that the `handshake` target's worker takes itself to
/// have.
pub const HANDSHAKE_PROBE: u64 = 0x4_2000;

/// The argument of the function that the `handshake` target's tasks run.
type TaskArgument = (u64, String, Vec<u8>);

/// The result of that function, also the type the `frame` target decodes
/// results as.
type TaskResult = (u64, String);

/// The function that the `handshake` target's tasks run. It never panics
/// (the fuzzer's panic hook would abort on a caught panic too).
fn task_function((number, text, bytes): TaskArgument) -> TaskResult {
    let number = number.wrapping_mul(31).wrapping_add(bytes.len() as u64);
    (number, text.chars().rev().collect())
}

/// Splits a `frame` input into the frame limit (its first three bytes,
/// little-endian, below [`MAX_FRAME_LIMIT`]) and the byte stream.
pub fn frame_input(data: &[u8]) -> (u32, &[u8]) {
    let (head, stream) = data.split_at(data.len().min(3));
    let mut limit = [0u8; 4];
    limit[..head.len()].copy_from_slice(head);
    (u32::from_le_bytes(limit) % MAX_FRAME_LIMIT, stream)
}

/// Runs the `frame` target on `data` (see [`frame_input`]): reads frames
/// off the stream until the reader refuses the rest, checking each one
/// ([`read_frame`], [`check_frame`]), then decodes the whole stream as one
/// frame body. Each frame is read twice: into a fresh buffer, and, as the
/// worker reads its tasks, into one buffer reused from frame to frame; the
/// two must agree. `largest_allocation` returns the size of the largest
/// single allocation since it was last called (the target counts them in
/// its allocator; pass `|| 0` to skip that check).
///
/// # Panics
///
/// If a check fails, the two readers disagree, or a read allocated more at
/// once than the frame declared (within the limit) plus
/// [`ALLOCATION_SLACK`].
pub fn frames(data: &[u8], mut largest_allocation: impl FnMut() -> usize) {
    let (max, whole) = frame_input(data);
    let mut stream = whole;
    let mut reused = Vec::new();
    loop {
        let before = stream;
        let declared = match before.get(..4) {
            Some(prefix) => u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]),
            None => 0,
        };
        let bound = if declared <= max {
            declared as usize
        } else {
            0
        } + ALLOCATION_SLACK;
        let within = |reader: &str, largest: usize| {
            assert!(
                largest <= bound,
                "{reader} allocated {largest} bytes at once for a frame that declares \
                 {declared} bytes (limit {max})"
            );
        };
        largest_allocation();
        let frame = read_frame(&mut stream, max);
        within("read_frame", largest_allocation());
        let mut again = before;
        let message = wire::read_frame_into(&mut again, max, &mut reused);
        within("read_frame_into", largest_allocation());
        assert_eq!(
            again.len(),
            stream.len(),
            "the readers took different lengths"
        );
        match (frame, message) {
            (Some(frame), Ok(message)) => {
                assert_eq!(frame.0.message, message, "the readers disagree");
                assert_eq!(frame.0.payload, reused, "the readers disagree");
                check_frame(&frame, max);
            }
            (None, Err(_)) => break,
            (frame, message) => panic!("the readers disagree: {frame:?}, {message:?}"),
        }
    }
    if let Ok(frame) = wire::decode_body(whole.to_vec()) {
        check_frame(&Frame(frame), u32::MAX);
    }
}

/// A frame that was read.
#[derive(Debug)]
pub struct Frame(wire::Frame);

/// Reads the next frame off `stream` (advancing it) the way both sides read
/// their pipe, with the limit `max`. `None` when the reader refuses the
/// bytes.
///
/// # Panics
///
/// If the reader's answer does not fit the bytes: a frame of a length other
/// than its prefix's or over `max`, or an error that names the wrong cause
/// (closed with bytes left, too large under the limit, cut short when all
/// bytes were there).
pub fn read_frame(stream: &mut &[u8], max: u32) -> Option<Frame> {
    let before = *stream;
    let declared = before
        .get(..4)
        .map(|prefix| u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]));
    let whole = declared.map(|len| len as usize + 4);
    let read = wire::read_frame(stream, max);
    let consumed = before.len() - stream.len();
    match read {
        Ok(frame) => {
            let len = declared.expect("a frame was read without a length prefix");
            assert!(len <= max, "a frame of {len} bytes passed the limit {max}");
            assert_eq!(
                Some(consumed),
                whole,
                "the frame's length is not its prefix's"
            );
            Some(Frame(frame))
        }
        Err(WireError::Closed) => {
            assert!(before.is_empty(), "closed with {} bytes left", before.len());
            None
        }
        Err(WireError::TooLarge { len, max: limit }) => {
            assert_eq!(limit, max, "the error names another limit");
            assert_eq!(
                Some(len),
                declared.map(u64::from),
                "the error names another length"
            );
            assert!(
                len > u64::from(max),
                "{len} bytes refused under the limit {max}"
            );
            None
        }
        Err(WireError::Truncated { got, expected }) => {
            assert_eq!(got, before.len(), "the error names another count of bytes");
            match whole {
                None => assert_eq!(expected, 4, "a cut prefix expects its 4 bytes"),
                Some(whole) => assert_eq!(expected, whole, "a cut frame expects its length"),
            }
            assert!(got < expected, "cut short with every byte there");
            None
        }
        Err(WireError::Malformed(_)) => {
            assert!(
                whole.is_some_and(|whole| whole <= before.len()),
                "a frame whose bytes did not all arrive was called malformed"
            );
            None
        }
        Err(WireError::Io(e)) => panic!("reading from a slice failed: {e}"),
        Err(WireError::Unsendable(reason)) => {
            panic!("reading refused a frame as unsendable: {reason}")
        }
    }
}

/// Checks a frame that was read with the limit `max`: it encodes again
/// within that limit and reads back equal, and its payload decodes as a
/// task's arguments the way the worker reads them, and as a `Partial`
/// block the way the parent reads it (with the counts the message gives,
/// or counts the payload could hold).
///
/// # Panics
///
/// If one of those properties fails.
pub fn check_frame(frame: &Frame, max: u32) {
    let frame = &frame.0;
    let mut bytes = Vec::new();
    if let Err(e) = wire::encode_frame(&frame.message, &frame.payload, max, &mut bytes) {
        panic!("a frame read within the limit {max} does not encode again: {e}");
    }
    match wire::read_frame(&mut bytes.as_slice(), max) {
        Ok(again) => assert_eq!(&again, frame, "the frame changed in a round trip"),
        Err(e) => panic!("a frame encoded again does not read back: {e}"),
    }
    let (arguments, outcomes) = match frame.message {
        Message::Task { count, .. } => (count, frame.payload.len() / 8),
        Message::Partial { count, .. } => (u32::MAX, count as usize),
        _ => (u32::MAX, frame.payload.len() / 8),
    };
    encodings::check_arguments(&frame.payload, arguments);
    if let Ok(block) = Block::from_payload(&frame.payload, outcomes) {
        encodings::check_block(&block);
    }
}

/// Parses `data` (as lossy UTF-8, the way the worker reads its environment)
/// as the worker marker.
///
/// # Panics
///
/// If a marker that parses does not parse the same again from the form the
/// parent writes, or a refusal does not name the variable.
pub fn marker(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    match entry::parse_marker(&value) {
        Ok(marker) => {
            let canonical = canonical_marker(&marker);
            assert_eq!(entry::parse_marker(&canonical), Ok(marker));
        }
        Err(reason) => assert!(reason.contains(entry::MARKER), "{reason}"),
    }
}

/// A marker in the form the parent writes it (`spawn.rs`).
fn canonical_marker(marker: &Marker) -> String {
    format!(
        "v1:{}:{}:{:032x}",
        marker.task_fd, marker.result_fd, marker.token
    )
}

/// Runs a worker's start on `data`: a marker line, then the bytes of its
/// task pipe. The marker is parsed; its descriptors are not used (the
/// bytes after the line stand in for the task pipe and a buffer for the
/// result pipe). The greeting is checked against the marker's token,
/// [`HANDSHAKE_EXE`] and [`HANDSHAKE_PROBE`]; if it checks out, every task
/// frame that follows (read as the worker reads them, into one reused
/// buffer, until a frame that is not a `Task`) runs through the real
/// trampoline on a test function, its outcomes written into a real shared
/// region's slot (and `Partial` frames) and decoded as the parent decodes
/// them. The greeting's initializer and region descriptor are never used,
/// and the tasks' function offsets are ignored: calling arbitrary offsets
/// is what the handshake exists to prevent, not something a fuzzer can
/// check.
///
/// # Panics
///
/// If a refused greeting was answered, an accepted one was not answered
/// with exactly one matching `Ready`, or a task's outcomes are not, one
/// for one, what its arguments give.
pub fn handshake(data: &[u8]) {
    let (line, mut tasks) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(marker) = entry::parse_marker(&String::from_utf8_lossy(line)) else {
        return;
    };
    let mut results = Vec::new();
    let greeting = entry::greet(
        &mut tasks,
        &mut results,
        &mut Vec::new(),
        marker.token,
        || Ok(HANDSHAKE_EXE),
        HANDSHAKE_PROBE,
    );
    let Ok(Greeting { max_frame, .. }) = greeting else {
        assert!(
            results.is_empty(),
            "the worker answered a greeting it refused"
        );
        return;
    };
    let mut answer = results.as_slice();
    match wire::read_frame(&mut answer, max_frame) {
        Ok(ready) => assert!(
            matches!(ready.message, Message::Ready { version: wire::VERSION, token, .. } if token == marker.token),
            "the worker answered with {:?}",
            ready.message
        ),
        Err(e) => panic!("the worker's answer does not read back: {e}"),
    }
    assert!(answer.is_empty(), "the worker answered more than Ready");

    let max = max_frame.min(MAX_FRAME_LIMIT);
    let mut payload = Vec::new();
    while let Ok(message) = wire::read_frame_into(&mut tasks, max, &mut payload) {
        let Message::Task { count, slot, .. } = message else {
            break;
        };
        let _ = worker::run_task(&payload, count, slot, max);
    }
}

/// Builds a message, a payload, a limit and a marker from `data`, and
/// checks that each goes through its encoder and decoder unchanged.
///
/// # Panics
///
/// If a frame that was written does not read back equal, a cut frame does
/// not read as cut short, a frame over a limit was written, or an argument,
/// an outcome (written into a slot as the worker writes it, handed over as
/// a `Partial` payload, decoded as the parent decodes it) or a marker
/// changes on its way.
pub fn round_trip(data: &[u8]) {
    let mut input = Input(data);
    let message = input.message();
    let max = if input.flag() {
        wire::DEFAULT_MAX_FRAME
    } else {
        input.u32()
    };
    let big = input.flag();
    let cut = input.u32() as usize;
    let marker = Marker {
        task_fd: input.u32() as i32,
        result_fd: input.u32() as i32,
        token: input.u128(),
    };
    let rest = input.0;

    assert_eq!(entry::parse_marker(&canonical_marker(&marker)), Ok(marker));

    let mut payload = rest.to_vec();
    if big {
        // Over the size that `write_frame` copies behind the header.
        payload.resize(64 * 1024 + 1 + rest.len(), 0x5a);
    }
    let mut bytes = Vec::new();
    match wire::write_frame(&mut bytes, &message, &payload, max, &mut Vec::new()) {
        Ok(()) => {
            let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            assert!(
                len <= max,
                "a frame of {len} bytes was written under the limit {max}"
            );
            assert_eq!(
                len as usize + 4,
                bytes.len(),
                "the prefix is not the length"
            );
            let mut encoded = Vec::new();
            let encode = wire::encode_frame(&message, &payload, max, &mut encoded);
            assert!(
                encode.is_ok() && encoded == bytes,
                "encode_frame and write_frame differ"
            );
            let expected = wire::Frame { message, payload };
            match wire::read_frame(&mut bytes.as_slice(), max) {
                Ok(frame) => assert_eq!(frame, expected, "the frame changed in a round trip"),
                Err(e) => panic!("a frame that was written does not read back: {e}"),
            }
            let cut = cut % bytes.len();
            if cut > 0 {
                let read = wire::read_frame(&mut &bytes[..cut], max);
                assert!(matches!(read, Err(WireError::Truncated { .. })), "{read:?}");
            }
            if len > 0 {
                let read = wire::read_frame(&mut bytes.as_slice(), len - 1);
                assert!(matches!(read, Err(WireError::TooLarge { .. })), "{read:?}");
            }
        }
        Err(WireError::TooLarge { len, max: limit }) => {
            assert!(
                limit == max && len > u64::from(max),
                "{len} bytes refused under {max}"
            );
            assert!(
                bytes.is_empty(),
                "a frame over the limit was partly written"
            );
        }
        Err(e) => panic!("writing a frame to a buffer failed: {e}"),
    }

    round_trip_outcomes(rest);
}

/// Splits `rest` at its zero bytes; each piece is a value `(its length,
/// its text)`, encoded as an argument, and an outcome: a failure (its
/// first byte the tag, the rest the detail) when its first byte is odd,
/// the value otherwise. The arguments go through one decoder; the
/// outcomes are written as the worker fills a slot, handed over as a
/// `Partial` payload, and both blocks give them back, to the parent's
/// decoder too.
fn round_trip_outcomes(rest: &[u8]) {
    let pieces: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let value = |piece: &[u8]| -> TaskResult {
        (
            piece.len() as u64,
            String::from_utf8_lossy(piece).into_owned(),
        )
    };
    let failure = |piece: &[u8]| match piece.split_first() {
        Some((&tag, detail)) if tag & 1 == 1 => Some((tag, detail.to_vec())),
        _ => None,
    };

    let mut arguments = Vec::new();
    for piece in &pieces {
        if let Err(reason) = wire::push_value(&mut arguments, &value(piece)) {
            panic!("a small argument does not encode: {reason}");
        }
    }
    let mut de = wire::Deserializer::new(&arguments);
    for piece in &pieces {
        let back = TaskResult::deserialize(&mut de).ok();
        assert_eq!(back, Some(value(piece)), "an argument changed on its way");
    }
    assert!(
        de.rest().is_empty(),
        "the arguments do not end where the last one does"
    );

    // Room for every value: a varint, a length and text (lossy UTF-8 makes
    // a byte up to three).
    let mut data = vec![0u8; 3 * rest.len() + 16 * pieces.len()];
    let mut ends = Vec::new();
    let mut pos = 0;
    for piece in &pieces {
        match failure(piece) {
            Some((tag, detail)) => {
                data[pos] = tag;
                data[pos + 1..pos + 1 + detail.len()].copy_from_slice(&detail);
                pos += 1 + detail.len();
                ends.push(pos as u32 | FAILED);
            }
            None => {
                let area = Bounded {
                    area: &mut data,
                    pos,
                };
                pos = match wire::encode(&value(piece), area) {
                    Ok(area) => area.pos,
                    Err(e) => panic!("a value does not fit its room in the slot: {e}"),
                };
                ends.push(pos as u32);
            }
        }
    }
    let slot = match Block::from_slot(&ends, &data, pieces.len()) {
        Ok(block) => block,
        Err(e) => panic!("a slot refuses its own outcomes: {e}"),
    };
    let mut payload = Vec::new();
    slot.write_payload(&mut payload);
    assert_eq!(
        payload.len(),
        4 * pieces.len() + pos,
        "a payload of other bytes than the outcomes"
    );
    let sent = match Block::from_payload(&payload, pieces.len()) {
        Ok(block) => block,
        Err(e) => panic!("a Partial payload does not read back: {e}"),
    };
    let clean = pieces.iter().all(|piece| failure(piece).is_none());
    for block in [slot, sent] {
        for (index, piece) in pieces.iter().enumerate() {
            let entry = block.entry(index);
            match failure(piece) {
                Some((tag, detail)) => assert_eq!(
                    entry.ok(),
                    Some(Entry::Failed(tag, &detail)),
                    "failed outcome {index} changed on its way"
                ),
                None => {
                    let back = match entry {
                        Ok(Entry::Value(bytes)) => wire::from_bytes::<TaskResult>(bytes).ok(),
                        _ => None,
                    };
                    assert_eq!(back, Some(value(piece)), "outcome {index} changed");
                }
            }
        }
        let values = block.values(pieces.len());
        assert_eq!(
            values.is_some(),
            failure(pieces[pieces.len() - 1]).is_none(),
            "values of outcomes that end in a failure, or none for values"
        );
        if clean {
            assert_eq!(values, Some(&data[..pos]), "the values are other bytes");
        }
        let decoded = parent::decode::<TaskResult>(&[(block, clean)], pieces.len());
        for (index, result) in decoded.iter().enumerate() {
            parent::check_entry(block.entry(index), result);
        }
    }
}

/// The fuzzer's bytes, read as values; past the end every byte is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn flag(&mut self) -> bool {
        self.bytes::<1>()[0] & 1 == 1
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.bytes())
    }

    /// A string of up to 255 bytes (its length first).
    fn text(&mut self) -> String {
        let len = usize::from(self.bytes::<1>()[0]).min(self.0.len());
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }

    fn message(&mut self) -> Message {
        match self.bytes::<1>()[0] % 12 {
            0 => Message::Hello {
                version: self.u32(),
                token: self.u128(),
                exe: (self.u64(), self.u64()),
                probe: self.u64(),
                initializer: if self.flag() { Some(self.u64()) } else { None },
                max_frame: self.u32(),
                region_fd: self.u32() as i32,
                arena_fd: if self.flag() {
                    Some(self.u32() as i32)
                } else {
                    None
                },
            },
            1 => Message::Ready {
                version: self.u32(),
                token: self.u128(),
                pid: self.u32(),
            },
            2 => Message::Initialized,
            3 => Message::InitFailed {
                reason: self.text(),
            },
            4 => Message::Task {
                call: self.u64(),
                func: self.u64(),
                count: self.u32(),
                slot: self.bytes::<1>()[0],
            },
            5 => Message::Done {
                slot: self.bytes::<1>()[0],
                count: self.u32(),
                failed: self.u32(),
                elapsed_nanos: self.u64(),
            },
            6 => Message::Partial {
                slot: self.bytes::<1>()[0],
                count: self.u32(),
            },
            7 => Message::Skipped {
                slot: self.bytes::<1>()[0],
            },
            8 => Message::TaskShared {
                call: self.u64(),
                func: self.u64(),
                count: self.u32(),
                slot: self.bytes::<1>()[0],
                at: self.u64(),
                len: self.u64(),
            },
            10 => Message::PartialValues {
                slot: self.bytes::<1>()[0],
                count: self.u32(),
                size: self.u32(),
            },
            9 => Message::Values {
                slot: self.bytes::<1>()[0],
                count: self.u32(),
                size: self.u32(),
                elapsed_nanos: self.u64(),
            },
            _ => Message::Descriptors { count: self.u32() },
        }
    }
}

#[cfg(test)]
mod tests;
