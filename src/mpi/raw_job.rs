//! A task from rank 0, as a worker rank's local pool runs it: a
//! [`ProcessJob`] whose types are erased. It never decodes a value; it
//! copies each outcome's bytes as they come from the local worker, turns
//! every failure (a panic, a local worker that died or timed out) into an
//! [`Error`] carried whole to rank 0 (`wire::remote`), and when every item
//! has an outcome sends them all back as one reply.
//!
//! A local worker that dies in the middle of the task resolves the items it
//! finished and fails the one it ran, as on any local pool; the rest goes
//! to another local worker from where it starts in the payload, which is
//! why rank 0 sends each item's end with the task (or, for items of one
//! size, that size).
//!
//! A chunk of plain numbers' results (values of one size, none failed) goes
//! back as a `Values` frame of the values alone, their ends never written.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::future::{Canceller, Claim};
use crate::process_pool::job::{failed_outcome, ProcessJob};
use crate::process_pool::payload::Payload;
use crate::process_pool::sys;
use crate::process_pool::wire::{self, outcome, remote, Block, Entry, Message, FAILED};
use crate::process_pool::wire::{Bounds, ItemEnds};
use crate::queue::Abandon;
use crate::Error;

/// A reply for rank 0: the lane it answers, the slot rank 0 named for its
/// task, and its frames.
pub(crate) type Reply = (usize, u8, Vec<u8>);

/// What a finished task hands the rank's MPI thread: its reply, and the
/// buffers it is done with (its arguments, its results), for the next
/// messages (`sys::Mpi::keep`).
pub(crate) type Finished = (Reply, [Vec<u8>; 2]);

/// One task of rank 0, on a worker rank.
#[derive(Debug)]
pub(crate) struct RawJob {
    pub(crate) lane: usize,
    /// The slot rank 0 named, for the reply's frames.
    pub(crate) slot: u8,
    pub(crate) call: u64,
    pub(crate) func: u64,
    pub(crate) payload: Vec<u8>,
    /// Where each item's argument ends in `payload`.
    pub(crate) bounds: Bounds,
    pub(crate) max_frame: u32,
    pub(crate) replies: Sender<Finished>,
    offset: usize,
    resolved: usize,
    message_start: usize,
    /// The outcomes so far: ends (with [`FAILED`]) into `data`.
    ends: Vec<u32>,
    data: Vec<u8>,
    /// Non-zero while every outcome so far is a value of this many bytes
    /// and `ends` is left empty: what a chunk of plain numbers gives, which
    /// goes back to rank 0 as a `Values` frame of the values alone.
    implied: u32,
    elapsed: Duration,
}

impl RawJob {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        lane: usize,
        slot: u8,
        call: u64,
        func: u64,
        payload: Vec<u8>,
        bounds: Bounds,
        max_frame: u32,
        replies: Sender<Finished>,
    ) -> Self {
        RawJob {
            lane,
            slot,
            call,
            func,
            payload,
            bounds,
            max_frame,
            replies,
            offset: 0,
            resolved: 0,
            message_start: 0,
            ends: Vec::new(),
            data: Vec::new(),
            implied: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn sent(&self) -> usize {
        self.bounds.len()
    }

    /// Writes out the ends of the values left implied, before an outcome
    /// of another kind.
    fn list_implied(&mut self) {
        if self.implied != 0 {
            let size = self.implied;
            self.ends
                .extend((1..=self.resolved as u32).map(|k| k * size));
            self.implied = 0;
        }
    }

    /// Takes the first `take` outcomes of `block` as values of the size
    /// of those before, with no ends: `false`, with nothing taken, unless
    /// they are such values (and so are all outcomes before them).
    fn take_implied(&mut self, block: &Block<'_>, take: usize) -> bool {
        let first = self.resolved == 0;
        if !(first || self.implied != 0) {
            return false;
        }
        let (Some(size), Some(bytes)) = (block.value_size(take), block.values(take)) else {
            return false;
        };
        if first {
            // Room for all of them, but no more than one reply frame holds
            // (the count comes from rank 0, the size from a local worker).
            let room = self.sent().saturating_mul(size as usize);
            self.data = sys::with_huge_capacity(room.min(self.max_frame as usize));
        } else if size != self.implied {
            return false;
        }
        self.data.extend_from_slice(bytes);
        self.implied = size;
        self.resolved += take;
        true
    }

    fn push_value(&mut self, bytes: &[u8]) {
        self.list_implied();
        self.data.extend_from_slice(bytes);
        self.ends.push(self.data.len() as u32);
        self.resolved += 1;
    }

    fn push_error(&mut self, error: &Error) {
        self.list_implied();
        self.data.push(outcome::ERROR);
        self.data.extend_from_slice(&remote::encode(error));
        self.ends.push(self.data.len() as u32 | FAILED);
        self.resolved += 1;
    }

    /// Sends every outcome back to rank 0.
    fn reply(mut self) {
        while self.resolved < self.sent() {
            let reason = String::from("the local worker sent fewer outcomes than items");
            self.push_error(&Error::Protocol { pid: 0, reason });
        }
        let elapsed = u64::try_from(self.elapsed.as_nanos()).unwrap_or(u64::MAX);
        if self.implied != 0 {
            let values = Message::Values {
                slot: self.slot,
                count: self.resolved as u32,
                size: self.implied,
                elapsed_nanos: elapsed,
            };
            let mut frame = sys::with_huge_capacity(self.data.len() + 32);
            if wire::append_frame(&values, &self.data, self.max_frame, &mut frame).is_ok() {
                return self.send(frame);
            }
            // Over the frame limit: in `Partial`s and a `Done`, with ends.
            self.list_implied();
        }
        let frames = encode_reply(&self.ends, &self.data, self.slot, self.max_frame, elapsed);
        self.send(frames);
    }

    /// Sends the reply of `frames`, with the buffers this job is done with.
    fn send(mut self, frames: Vec<u8>) {
        let spent = [
            std::mem::take(&mut self.payload),
            std::mem::take(&mut self.data),
        ];
        let _ = self.replies.send(((self.lane, self.slot, frames), spent));
    }
}

/// The frames of a reply: as many outcomes to a `Partial` as fit in a
/// frame of at most `max` bytes, the last of them in a `Done`.
pub(crate) fn encode_reply(ends: &[u32], data: &[u8], slot: u8, max: u32, elapsed: u64) -> Vec<u8> {
    let room = (max as usize).saturating_sub(64).max(8);
    let end_of = |raw: u32| (raw & !FAILED) as usize;
    let mut out = Vec::new();
    let mut frame = Vec::new();
    let mut payload = Vec::new();
    let (mut first, mut first_byte) = (0, 0);
    loop {
        let mut last = first;
        while last < ends.len() && 4 * (last + 1 - first) + end_of(ends[last]) - first_byte <= room
        {
            last += 1;
        }
        // At least one (each outcome fits a frame alone: the local worker
        // refused larger ones), unless none is left.
        if last == first && last < ends.len() {
            last += 1;
        }
        payload.clear();
        for &raw in &ends[first..last] {
            let rebased = (end_of(raw) - first_byte) as u32 | (raw & FAILED);
            payload.extend_from_slice(&rebased.to_le_bytes());
        }
        let data_end = ends[..last].last().map_or(first_byte, |&raw| end_of(raw));
        payload.extend_from_slice(&data[first_byte..data_end]);
        let count = (last - first) as u32;
        let message = if last == ends.len() {
            let failed = ends[first..last]
                .iter()
                .filter(|&&e| e & FAILED != 0)
                .count();
            Message::Done {
                slot,
                count,
                failed: failed as u32,
                elapsed_nanos: elapsed,
            }
        } else {
            Message::Partial { slot, count }
        };
        // A frame over the limit is still sent: rank 0 refuses it with
        // the limit's error, which is what the caller should see.
        if wire::encode_frame(&message, &payload, u32::MAX, &mut frame).is_ok() {
            out.extend_from_slice(&frame);
        }
        if last == ends.len() {
            return out;
        }
        first = last;
        first_byte = data_end;
    }
}

impl ProcessJob for RawJob {
    fn begin(&mut self, _claim: Option<Arc<dyn Claim>>) -> bool {
        self.message_start = self.resolved;
        true
    }

    fn canceller(&self) -> Canceller {
        // Nobody on a worker rank cancels: rank 0 owns the future.
        Arc::new(|| {})
    }

    fn start(&mut self) -> bool {
        true
    }

    fn unhand(&mut self) -> bool {
        true
    }

    fn message(&self, slot: u8) -> (Message, &[u8]) {
        let count = u32::try_from(self.sent() - self.resolved).unwrap_or(u32::MAX);
        let message = Message::Task {
            call: self.call,
            func: self.func,
            count,
            slot,
        };
        (
            message,
            &self.payload[self.offset.min(self.payload.len())..],
        )
    }

    fn accept(&mut self, block: &Block<'_>, pid: u32, _clean: bool) {
        let take = block.len().min(self.sent() - self.resolved);
        if take == 0 || self.take_implied(block, take) {
            return;
        }
        self.list_implied();
        // No failure among them: their ends and bytes in one go.
        if let Some(bytes) = block.values(take) {
            let base = self.data.len() as u32;
            if block.append_value_ends(take, base, &mut self.ends) {
                self.data.extend_from_slice(bytes);
                self.resolved += take;
                return;
            }
        }
        for index in 0..take {
            match block.entry(index) {
                Ok(Entry::Value(bytes)) => self.push_value(bytes),
                Ok(Entry::Failed(tag, detail)) => {
                    self.push_error(&failed_outcome(pid, tag, detail));
                }
                Err(e) => {
                    let reason = format!("a result block is malformed: {e}");
                    self.push_error(&Error::Protocol { pid, reason });
                }
            }
        }
    }

    fn unresolved(&self) -> usize {
        self.sent() - self.resolved
    }

    fn resolved_in_message(&self) -> usize {
        self.resolved - self.message_start
    }

    fn fail_next(&mut self, error: Option<Error>) {
        if let Some(error) = error {
            self.fail_next_only(error);
        }
        self.offset = self.bounds.offset_after(self.resolved, self.payload.len());
        self.message_start = self.resolved;
    }

    fn fail_next_only(&mut self, error: Error) {
        if self.resolved < self.sent() {
            self.push_error(&error);
        }
    }

    fn add_elapsed(&mut self, elapsed: Duration) {
        self.elapsed += elapsed;
    }

    fn finish(self: Box<Self>) {
        self.reply();
    }

    fn fail_rest(mut self: Box<Self>, error: Error) {
        while self.resolved < self.sent() {
            self.push_error(&error);
        }
        self.reply();
    }

    fn take_payload(&mut self) -> Payload {
        // Kept: it goes back to the rank's MPI thread with the reply, for
        // the next task's arguments (see `send`).
        Payload::Bytes(Vec::new())
    }

    fn descriptors(&self) -> &[std::os::fd::OwnedFd] {
        &[]
    }

    fn item_ends(&self) -> ItemEnds {
        self.bounds.ends_from(self.resolved, self.offset)
    }
}

impl Abandon for RawJob {
    fn abandon(self: Box<Self>, error: Error) {
        self.fail_rest(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outcome as bytes: a value's, or a failure's tag and detail.
    type Raw = Result<Vec<u8>, (u8, Vec<u8>)>;

    /// Decodes the frames of a reply back into outcomes.
    fn outcomes_of(mut frames: &[u8], max: u32) -> Vec<Raw> {
        let mut out = Vec::new();
        let mut payload = Vec::new();
        loop {
            let message = wire::read_frame_into(&mut frames, max, &mut payload).expect("a frame");
            let (count, done, size) = match message {
                Message::Partial { count, .. } => (count, false, None),
                Message::Done { count, .. } => (count, true, None),
                Message::Values { count, size, .. } => (count, true, Some(size)),
                other => panic!("unexpected {other:?}"),
            };
            let block = match size {
                Some(size) => Block::from_values(&payload, count as usize, size),
                None => Block::from_payload(&payload, count as usize),
            }
            .expect("a block");
            for i in 0..block.len() {
                out.push(match block.entry(i).expect("an entry") {
                    Entry::Value(b) => Ok(b.to_vec()),
                    Entry::Failed(tag, d) => Err((tag, d.to_vec())),
                });
            }
            if done {
                assert!(frames.is_empty(), "the Done is the last frame");
                return out;
            }
        }
    }

    /// A `Partial` payload of `values`, each its little-endian bytes.
    fn block_of(values: &[u32]) -> Vec<u8> {
        let mut payload: Vec<u8> = (1..=values.len() as u32)
            .flat_map(|k| (4 * k).to_le_bytes())
            .collect();
        payload.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        payload
    }

    /// The message of a reply's first frame.
    fn first_message(frames: &[u8], max: u32) -> Message {
        wire::read_frame_into(&mut &frames[..], max, &mut Vec::new()).expect("a frame")
    }

    #[test]
    fn values_of_one_size_go_back_without_ends_and_a_failure_writes_them_out() {
        let value = |i: usize| Ok((i as u32 * 3).to_le_bytes().to_vec());
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut job = RawJob::new(0, 2, 0, 0, vec![0; 40], Bounds::uniform(8, 5), 1024, tx);
        for values in [&[0, 3][..], &[6, 9, 12]] {
            let payload = block_of(values);
            job.accept(
                &Block::from_payload(&payload, values.len()).unwrap(),
                1,
                true,
            );
        }
        Box::new(job).finish();
        let ((lane, slot, frames), [arguments, _]) = rx.recv().unwrap();
        assert_eq!(arguments.len(), 40, "the arguments' buffer comes back");
        assert_eq!((lane, slot), (0, 2));
        assert!(
            matches!(
                first_message(&frames, 1024),
                Message::Values {
                    count: 5,
                    size: 4,
                    ..
                }
            ),
            "{:?}",
            first_message(&frames, 1024)
        );
        let expected: Vec<Raw> = (0..5).map(value).collect();
        assert_eq!(outcomes_of(&frames, 1024), expected);

        // Values, then a failure (a local worker died), then values again.
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut job = RawJob::new(1, 0, 0, 0, vec![0; 40], Bounds::uniform(8, 5), 1024, tx);
        let payload = block_of(&[0, 3]);
        job.accept(&Block::from_payload(&payload, 2).unwrap(), 1, true);
        job.fail_next_only(Error::Cancelled);
        let payload = block_of(&[9, 12]);
        job.accept(&Block::from_payload(&payload, 2).unwrap(), 1, true);
        Box::new(job).finish();
        let ((_, _, frames), _) = rx.recv().unwrap();
        assert!(matches!(
            first_message(&frames, 1024),
            Message::Done {
                count: 5,
                failed: 1,
                ..
            }
        ));
        let got = outcomes_of(&frames, 1024);
        assert_eq!(got.len(), 5);
        for (i, outcome) in got.into_iter().enumerate() {
            match i {
                2 => {
                    let (tag, detail) = outcome.unwrap_err();
                    assert_eq!(tag, outcome::ERROR);
                    assert_eq!(remote::decode(&detail), Some(Error::Cancelled));
                }
                _ => assert_eq!(outcome, value(i)),
            }
        }
    }

    #[test]
    fn values_over_the_frame_limit_go_back_in_frames_with_ends() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let values: Vec<u32> = (0..100).collect();
        let mut job = RawJob::new(0, 0, 0, 0, vec![0; 800], Bounds::uniform(8, 100), 256, tx);
        let payload = block_of(&values);
        job.accept(&Block::from_payload(&payload, 100).unwrap(), 1, true);
        Box::new(job).finish();
        let ((_, _, frames), _) = rx.recv().unwrap();
        assert!(matches!(
            first_message(&frames, 256),
            Message::Partial { .. }
        ));
        let expected: Vec<Raw> = values
            .iter()
            .map(|v| Ok(v.to_le_bytes().to_vec()))
            .collect();
        assert_eq!(outcomes_of(&frames, 256), expected);
    }

    #[test]
    fn a_reply_splits_into_frames_under_the_limit_and_keeps_every_outcome_in_order() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let bounds = Bounds::listed((1..=300).collect());
        let mut job = RawJob::new(0, 1, 0, 0, vec![0; 300], bounds, 1024, tx);
        for i in 0..300u32 {
            if i % 7 == 3 {
                job.push_error(&Error::Cancelled);
            } else {
                job.push_value(&i.to_le_bytes()[..(i % 4) as usize]);
            }
        }
        let frames = encode_reply(&job.ends, &job.data, 1, 1024, 5);
        let got = outcomes_of(&frames, 1024);
        assert_eq!(got.len(), 300);
        for (i, outcome) in got.iter().enumerate() {
            let i = i as u32;
            match outcome {
                Ok(bytes) => assert_eq!(bytes[..], i.to_le_bytes()[..(i % 4) as usize]),
                Err((tag, detail)) => {
                    assert_eq!(i % 7, 3);
                    assert_eq!(*tag, outcome::ERROR);
                    assert_eq!(remote::decode(detail), Some(Error::Cancelled));
                }
            }
        }
        assert!(
            !encode_reply(&[], &[], 0, 1024, 0).is_empty(),
            "a Done even for nothing"
        );
    }
}
