//! Where a worker puts a task's outcomes: its slot of the shared region,
//! handed to the parent in `Partial` frames whenever it is full (the
//! protocol is in `wire`'s module docs).
//!
//! [`Outcomes`] fills the slot (and [`Quick`], its loop for the common
//! case, the same slot with its fill held in registers); `sink` writes
//! the frames, to the result pipe or to an MPI rank's reply.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::sys::{self, region::Region};
use super::wire::{self, bulk, outcome, Bounded, Message, FAILED};

mod sink;
use sink::write_partial;
pub(crate) use sink::{lost_pipe, send_or_exit, Sink};

/// The exit status of a worker that lost its pipe to the parent after it
/// had started serving (a task closed or broke it): it cannot report
/// anything any more, so it exits.
pub(crate) const LOST_PIPE: i32 = 87;

/// Where a task's outcomes go: the task's slot of the shared region, handed
/// to the parent in a `Partial` frame whenever it is full (see `wire`).
pub(crate) struct Outcomes<'a> {
    /// The slot's outcome ends and bytes.
    ends: &'a mut [u32],
    data: &'a mut [u8],
    /// The slot's progress word.
    progress: &'a std::sync::atomic::AtomicU64,
    /// The slot's base word, and its value: the task's outcomes handed
    /// over in `Partial` frames, before those the slot holds now.
    base: &'a std::sync::atomic::AtomicU64,
    /// The slot's implied word, and its value: non-zero while every
    /// outcome in the slot is a value of that many bytes whose end was
    /// not written (`Quick::run_plain`); see [`Outcomes::materialize`].
    implied_word: &'a std::sync::atomic::AtomicU64,
    implied: usize,
    handed: usize,
    slot: usize,
    results: Sink<'a>,
    max_frame: u32,
    scratch: &'a mut Vec<u8>,
    /// A buffer for a value too large for the slot, or for a `Partial`.
    spill: &'a mut Vec<u8>,
    /// Whether pages of `spill` may still be lent to the pipe, unread.
    lent: bool,
    /// Outcomes in the slot now.
    held: usize,
    /// Bytes of them.
    pos: usize,
    /// Failures among them.
    failed: u32,
}

impl std::fmt::Debug for Outcomes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcomes")
            .field("slot", &self.slot)
            .field("held", &self.held)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl Outcomes<'_> {
    /// Item `index`'s outcome is in place.
    #[inline]
    pub(crate) fn end(&self, index: usize) {
        // ORDERING: Release: the outcome and its end, written before, are
        // visible to whoever reads this progress with Acquire.
        self.progress.store(2 * index as u64 + 2, Ordering::Release);
    }

    /// Records a value's outcome.
    #[inline]
    pub(crate) fn value<R: Serialize>(&mut self, value: &R) {
        // The last value to start a slot was too large for one: this one
        // likely is too, and trying the slot first would write a slot's
        // worth of bytes for nothing (a `Vec<u8>` goes a byte at a time).
        // ORDERING: Relaxed: this worker's own hint, one thread.
        if self.held == 0 && LARGE_VALUES.load(Ordering::Relaxed) {
            return self.value_slow(value);
        }
        if self.held < sys::region::MAX_ITEMS {
            let area = Bounded {
                area: self.data,
                pos: self.pos,
            };
            match wire::encode(value, area).map(|area| area.pos) {
                Ok(end) if end - self.pos <= self.item_limit() => {
                    self.push_end(end as u32);
                    return;
                }
                Ok(end) => {
                    let reason = format!(
                        "the result takes {} bytes, over the pool's limit of {} (max_message_size)",
                        end - self.pos,
                        self.max_frame
                    );
                    return self.failure(outcome::BAD_RESULT, reason.as_bytes());
                }
                Err(postcard::Error::SerializeBufferFull) => {}
                Err(e) => {
                    let reason = crate::serde_message::encode_reason(&e, value, wire::why);
                    return self.failure(outcome::BAD_RESULT, reason.as_bytes());
                }
            }
        }
        self.value_slow(value);
    }

    /// The most bytes one result may take: what fits in a frame.
    #[inline]
    fn item_limit(&self) -> usize {
        (self.max_frame as usize).saturating_sub(64)
    }

    #[inline]
    fn push_end(&mut self, end: u32) {
        if self.implied != 0 {
            self.materialize();
        }
        self.ends[self.held] = end;
        self.held += 1;
        self.pos = (end & !FAILED) as usize;
    }

    /// A value that did not fit: hand the slot over and try again; one too
    /// large for an empty slot goes out in a frame of its own.
    #[cold]
    fn value_slow<R: Serialize>(&mut self, value: &R) {
        if self.held > 0 {
            self.flush();
            return self.value(value);
        }
        self.reclaim_spill();
        self.spill.clear();
        match wire::push_value(self.spill, value) {
            Ok(()) => {
                let len = self.spill.len();
                if len > self.item_limit() {
                    let reason = format!(
                        "the result takes {len} bytes, over the pool's limit of {} (max_message_size)",
                        self.max_frame
                    );
                    return self.failure(outcome::BAD_RESULT, reason.as_bytes());
                }
                if len <= sys::region::DATA / 2 {
                    // It fits in the (empty) slot after all.
                    LARGE_VALUES.store(false, Ordering::Relaxed);
                    self.data[..len].copy_from_slice(self.spill);
                    return self.push_end(len as u32);
                }
                LARGE_VALUES.store(true, Ordering::Relaxed);
                let mut payload = std::mem::take(self.scratch);
                payload.clear();
                payload.extend_from_slice(&(len as u32).to_le_bytes());
                let partial = Message::Partial {
                    slot: self.slot as u8,
                    count: 1,
                };
                let mut header = Vec::new();
                // The value is lent to the pipe after the one end.
                if let Err(e) = write_partial(
                    &mut self.results,
                    &partial,
                    &payload,
                    self.spill,
                    self.max_frame,
                    &mut header,
                ) {
                    lost_pipe(&e);
                }
                *self.scratch = payload;
                self.lent = self.results.lends();
                self.handed_over(1);
            }
            Err(reason) => self.failure(outcome::BAD_RESULT, reason.as_bytes()),
        }
    }

    /// Records a failure's outcome: its tag and detail (cut to fit a slot).
    pub(crate) fn failure(&mut self, tag: u8, detail: &[u8]) {
        let detail = &detail[..detail.len().min(4096)];
        if self.held >= sys::region::MAX_ITEMS || self.pos + 1 + detail.len() > sys::region::DATA {
            self.flush();
        }
        let data = &mut *self.data;
        data[self.pos] = tag;
        data[self.pos + 1..self.pos + 1 + detail.len()].copy_from_slice(detail);
        let end = (self.pos + 1 + detail.len()) as u32 | FAILED;
        self.push_end(end);
        self.failed += 1;
    }

    /// Hands the slot's outcomes to the parent in `Partial` frames, as
    /// many as the frame limit asks for, and starts the slot over. Until
    /// the last frame is written whole, the slot and its base word still
    /// say what it holds (a worker that dies in between leaves the parent
    /// the frames it sent and the rest in the slot).
    #[cold]
    fn flush(&mut self) {
        if self.implied != 0 && self.flush_values() {
            return;
        }
        self.materialize();
        // Room for a frame's payload: the limit less a header, generously.
        let room = (self.max_frame as usize).saturating_sub(64).max(8);
        self.reclaim_spill();
        let mut payload = std::mem::take(self.spill);
        let end_of = |raw: u32| (raw & !FAILED) as usize;
        let mut first = 0;
        let mut first_byte = 0;
        while first < self.held {
            // As many outcomes as fit, and at least one (each fits alone:
            // `value` refuses larger ones).
            let mut last = first + 1;
            while last < self.held
                && 4 * (last + 1 - first) + end_of(self.ends[last]) - first_byte <= room
            {
                last += 1;
            }
            let data_end = end_of(self.ends[last - 1]).min(self.data.len());
            // Pages of the last part were lent to the pipe: the buffer is
            // written again only once the parent has read them.
            if self.lent {
                self.results.wait_until_read();
            }
            payload.clear();
            for &raw in &self.ends[first..last] {
                let rebased = (end_of(raw).saturating_sub(first_byte) as u32) | (raw & FAILED);
                payload.extend_from_slice(&rebased.to_le_bytes());
            }
            payload.extend_from_slice(&self.data[first_byte.min(data_end)..data_end]);
            let partial = Message::Partial {
                slot: self.slot as u8,
                count: (last - first) as u32,
            };
            send_or_exit(
                &mut self.results,
                &partial,
                &payload,
                self.max_frame,
                self.scratch,
            );
            self.lent = self.results.lends();
            first = last;
            first_byte = data_end;
        }
        *self.spill = payload;
        self.handed_over(self.held);
        self.held = 0;
        self.pos = 0;
        self.failed = 0;
    }

    /// Hands the slot's values, their ends left implied, to the parent in
    /// one `PartialValues` frame, the values alone, and starts the slot
    /// over: the implied word stays, as the slot's next outcomes are
    /// values of the same size from its start. `false`, with nothing sent,
    /// if the frame would pass the limit.
    fn flush_values(&mut self) -> bool {
        let size = self.implied;
        let bytes = self.held * size;
        if bytes as u64 + 32 > u64::from(self.max_frame) {
            return false;
        }
        self.reclaim_spill();
        let mut payload = std::mem::take(self.spill);
        payload.clear();
        payload.extend_from_slice(&self.data[..bytes]);
        let message = Message::PartialValues {
            slot: self.slot as u8,
            count: self.held as u32,
            size: size as u32,
        };
        send_or_exit(
            &mut self.results,
            &message,
            &payload,
            self.max_frame,
            self.scratch,
        );
        self.lent = self.results.lends();
        *self.spill = payload;
        self.handed_over(self.held);
        self.held = 0;
        self.pos = 0;
        self.failed = 0;
        true
    }

    /// Writes the ends the slot's values left implied (each value `implied`
    /// bytes after the last, from the slot's start), then clears the
    /// implied word: before any outcome that is not such a value, and
    /// before the slot is handed over. A parent that finds the worker dead
    /// in between sees either the word (and implies the ends itself) or,
    /// once it is cleared, the ends written before it.
    #[cold]
    pub(crate) fn materialize(&mut self) {
        if self.implied == 0 {
            return;
        }
        let size = self.implied;
        for (i, end) in self.ends[..self.held].iter_mut().enumerate() {
            // Slots are far under 2 GiB: the end fits its 31 bits.
            *end = ((i + 1) * size) as u32;
        }
        // ORDERING: Release: the ends written above are visible to a
        // parent that reads the cleared word with Acquire.
        self.implied_word.store(0, Ordering::Release);
        self.implied = 0;
    }

    /// Makes `spill` safe to write again: if its pages were lent to the
    /// pipe (`sys::write_lent`), waits until the parent has read them.
    pub(crate) fn reclaim_spill(&mut self) {
        if self.lent {
            self.results.wait_until_read();
            self.lent = false;
        }
    }

    /// Records that `count` more outcomes are with the parent.
    fn handed_over(&mut self, count: usize) {
        self.handed += count;
        // ORDERING: Release: a parent that finds this worker dead reads it
        // with Acquire, after the frames it names.
        self.base.store(self.handed as u64, Ordering::Release);
    }
}

impl Outcomes<'_> {
    /// The common case, held apart for a loop over a task's items: see
    /// [`Quick`].
    #[inline]
    pub(crate) fn quick(&mut self) -> Quick<'_> {
        Quick {
            limit: self.item_limit(),
            held: self.held,
            pos: self.pos,
            implied: self.implied,
            data: &mut *self.data,
            ends: &mut *self.ends,
            progress: self.progress,
            implied_word: self.implied_word,
            held_at: &mut self.held,
            pos_at: &mut self.pos,
            implied_at: &mut self.implied,
        }
    }
}

/// The common case of [`Outcomes`]: progress, and values that fit the
/// slot, with the slot's fill held in the struct itself (registers, in a
/// loop) rather than in `Outcomes`, whose fields the compiler must load
/// and store again around every byte written into the slot (a byte store
/// may alias them). Anything else (a failure, a value that does not fit,
/// a full slot) goes to `Outcomes` after this is dropped, which writes the
/// fill back (also when a panic unwinds through it).
pub(crate) struct Quick<'o> {
    data: &'o mut [u8],
    ends: &'o mut [u32],
    progress: &'o std::sync::atomic::AtomicU64,
    implied_word: &'o std::sync::atomic::AtomicU64,
    held: usize,
    pos: usize,
    /// See `Outcomes::implied`.
    implied: usize,
    /// The most bytes one result may take.
    limit: usize,
    held_at: &'o mut usize,
    pos_at: &'o mut usize,
    implied_at: &'o mut usize,
}

impl Quick<'_> {
    /// Item `index` of the task starts.
    #[inline]
    pub(crate) fn begin(&self, index: usize) {
        // ORDERING: Release: published progress; see `wire`.
        self.progress.store(2 * index as u64 + 1, Ordering::Release);
    }

    /// Item `index`'s outcome is in place.
    #[inline]
    pub(crate) fn end(&self, index: usize) {
        // ORDERING: Release: the outcome and its end, written before, are
        // visible to whoever reads this progress with Acquire.
        self.progress.store(2 * index as u64 + 2, Ordering::Release);
    }

    /// Records `value` if it fits the slot as it is: `false`, with nothing
    /// recorded, if it does not (or may not: see `Outcomes::value`), for
    /// `Outcomes::value` to handle.
    #[inline]
    pub(crate) fn value<R: Serialize>(&mut self, value: &R) -> bool {
        // Ends left implied are written first, by `Outcomes::value`.
        // ORDERING: Relaxed: this worker's own hint, one thread.
        if self.implied != 0
            || self.held >= self.ends.len()
            || (self.held == 0 && LARGE_VALUES.load(Ordering::Relaxed))
        {
            return false;
        }
        let area = Bounded {
            area: &mut *self.data,
            pos: self.pos,
        };
        match wire::encode(value, area) {
            Ok(area) if area.pos - self.pos <= self.limit => {
                // Slots are far under 2 GiB: the end fits its 31 bits.
                self.ends[self.held] = area.pos as u32;
                self.held += 1;
                self.pos = area.pos;
                true
            }
            _ => false,
        }
    }
}

impl Quick<'_> {
    /// Runs `f` on items `item..count` of a payload of plain numbers that
    /// `bulk::plain_payload::<A>` accepted (argument `i` is its `i`th
    /// encoding), while their results, plain numbers too, fit the slot:
    /// the next item to run. Item `item` has begun; each item's progress
    /// and outcome are published exactly as the per-item loop publishes
    /// them, so that after a panic the progress word names the item that
    /// panicked ([`Outcomes::running`]; nothing else is stored per item).
    ///
    /// No serde call, no check per item but the function's own work: the
    /// room is reckoned once.
    ///
    /// # Safety
    ///
    /// `bulk::plain_payload::<A>(arguments, count)` returned `Some`: the
    /// arguments are read without a check.
    #[inline]
    pub(crate) unsafe fn run_plain<A: 'static, R: 'static>(
        &mut self,
        f: fn(A) -> R,
        arguments: &[u8],
        mut item: usize,
        count: usize,
    ) -> usize {
        let Some(size) = bulk::plain_size::<R>() else {
            return item;
        };
        let by_bytes = self.data.len().saturating_sub(self.pos) / size;
        let room = if size <= self.limit {
            by_bytes.min(self.ends.len().saturating_sub(self.held))
        } else {
            0
        };
        let end = count.min(item.saturating_add(room));
        // A slot that starts with plain values leaves their ends implied
        // (see `wire`): one store fewer an item, and the ends' pages never
        // touched. The word is stored before the first value's progress
        // (Release) publishes it.
        if self.held == 0 && self.implied == 0 {
            self.implied = size;
            // ORDERING: Relaxed: published by the progress store below.
            self.implied_word.store(size as u64, Ordering::Relaxed);
        }
        let write_ends = self.implied != size;
        let (mut held, mut pos) = (self.held, self.pos);
        while item < end {
            // SAFETY: `arguments` was accepted by `plain_payload::<A>` for
            // `count` items (this function's contract), and
            // `item < end <= count`.
            let argument = unsafe { bulk::read_plain::<A>(arguments, item) };
            let result = f(argument);
            // SAFETY: `R` is a plain number (`plain_size`), and `room`
            // counts the results of `size` bytes that fit `data` from `pos`.
            unsafe { bulk::write_plain(result, self.data, pos) };
            pos += size;
            // Slots are far under 2 GiB: the end fits its 31 bits.
            if write_ends {
                // SAFETY: `room` counts at most the ends left from `held`,
                // and this loop runs at most `room` times.
                unsafe { *self.ends.get_unchecked_mut(held) = pos as u32 };
            }
            held += 1;
            self.held = held;
            self.pos = pos;
            item += 1;
            if item < count {
                self.begin(item);
            } else {
                self.end(item - 1);
            }
        }
        item
    }
}

impl Drop for Quick<'_> {
    fn drop(&mut self) {
        *self.held_at = self.held;
        *self.pos_at = self.pos;
        *self.implied_at = self.implied;
    }
}

impl std::fmt::Debug for Quick<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quick")
            .field("held", &self.held)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<'a> Outcomes<'a> {
    /// Outcomes into `slot` of `region`, handed over as `Partial` frames
    /// written to `results` (the worker's loop builds one per task; so do
    /// the fuzz targets, `crate::fuzzing`).
    pub(crate) fn new(
        region: &'a mut Region,
        slot: usize,
        results: Sink<'a>,
        max_frame: u32,
        scratch: &'a mut Vec<u8>,
        spill: &'a mut Vec<u8>,
    ) -> Self {
        let (areas, words) = region.slot_and_words(slot);
        // ORDERING: Relaxed: the slot starts with its ends written; the
        // first outcome's progress store (Release) publishes this.
        words.implied.store(0, Ordering::Relaxed);
        Outcomes {
            ends: areas.ends,
            data: areas.data,
            progress: words.progress,
            base: words.base,
            implied_word: words.implied,
            implied: 0,
            handed: 0,
            lent: false,
            slot,
            results,
            max_frame,
            scratch,
            spill,
            held: 0,
            pos: 0,
            failed: 0,
        }
    }

    /// The item that has begun and not ended, by the progress word: the
    /// one that was running when a panic unwound out of the loop.
    pub(crate) fn running(&self) -> Option<usize> {
        // ORDERING: Relaxed: this thread's own last store.
        let progress = self.progress.load(Ordering::Relaxed);
        (progress % 2 == 1).then(|| ((progress - 1) / 2) as usize)
    }

    /// Non-zero while every outcome the slot holds is a value of that many
    /// bytes whose end was left implied (see [`materialize`](Self::materialize)).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn implied_size(&self) -> usize {
        self.implied
    }

    /// What the task's `Done` says: the outcomes in the slot now, and how
    /// many of them are failures.
    pub(crate) fn done_counts(&self) -> (u32, u32) {
        (self.held as u32, self.failed)
    }
}

/// Whether the last value that started a slot was too large for one (see
/// `Outcomes::value`).
static LARGE_VALUES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
