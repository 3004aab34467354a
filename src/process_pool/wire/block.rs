//! Runs of outcomes as the parent reads them: a slot of the shared region,
//! or the payload of a `Partial` frame (see the module docs of `wire`).

use super::{WireError, FAILED};

/// The ends of a block's outcomes: words in the shared region,
/// little-endian bytes in a `Partial` payload, or implied: values of
/// `size` bytes one after another from the slot's start, outcome `first`
/// of the slot being the block's first (see `wire`).
#[derive(Debug, Clone, Copy)]
enum Ends<'a> {
    Words(&'a [u32]),
    Bytes(&'a [u8]),
    Implied { size: u32, first: u32 },
}

/// One outcome of a [`Block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    /// A value's bytes (the values' format, `encode`).
    Value(&'a [u8]),
    /// A failure: its tag (from [`outcome`]) and detail.
    Failed(u8, &'a [u8]),
}

/// A run of outcomes: from a slot of the shared region, or from a `Partial`
/// payload. Every read is bounds-checked: the bytes came from another
/// process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block<'a> {
    ends: Ends<'a>,
    data: &'a [u8],
    len: usize,
    /// Where the first outcome starts in `data`.
    start: u32,
}

impl<'a> Block<'a> {
    /// The first `count` outcomes of a slot, its ends as written.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_slot(
        ends: &'a [u32],
        data: &'a [u8],
        count: usize,
    ) -> Result<Self, WireError> {
        let ends = ends.get(..count).ok_or_else(|| {
            WireError::Malformed(format!("{count} outcomes are more than a slot holds"))
        })?;
        Ok(Block {
            ends: Ends::Words(ends),
            data,
            len: count,
            start: 0,
        })
    }

    /// `count` outcomes of a slot from outcome `first` on.
    pub(crate) fn from_slot_at(
        ends: &'a [u32],
        data: &'a [u8],
        first: usize,
        count: usize,
    ) -> Result<Self, WireError> {
        let all = first
            .checked_add(count)
            .and_then(|end| ends.get(..end))
            .ok_or_else(|| {
                WireError::Malformed(format!(
                    "{first} + {count} outcomes are more than a slot holds"
                ))
            })?;
        let start = match first {
            0 => 0,
            n => all[n - 1] & !FAILED,
        };
        Ok(Block {
            ends: Ends::Words(&all[first..]),
            data,
            len: count,
            start,
        })
    }

    /// `count` outcomes of a slot from outcome `first` on, as the parent
    /// reads it: its ends as written, or implied by its implied word.
    pub(crate) fn from_view(
        view: crate::process_pool::sys::region::Slot<'a>,
        first: usize,
        count: usize,
    ) -> Result<Self, WireError> {
        if view.implied == 0 {
            return Self::from_slot_at(view.ends, view.data, first, count);
        }
        let malformed = || {
            WireError::Malformed(format!(
                "{first} + {count} values of {} bytes are more than a slot holds",
                view.implied
            ))
        };
        let outcomes = first.checked_add(count).ok_or_else(malformed)?;
        let (Ok(size), Ok(first32)) = (u32::try_from(view.implied), u32::try_from(first)) else {
            return Err(malformed());
        };
        // The last end lies within the data and under the failure bit, so
        // every end `end` computes does too; and no more outcomes than a
        // slot's ends could count.
        let fits = u32::try_from(outcomes)
            .ok()
            .and_then(|n| n.checked_mul(size))
            .is_some_and(|bytes| bytes & FAILED == 0 && (bytes as usize) <= view.data.len());
        if !fits || outcomes > view.ends.len() {
            return Err(malformed());
        }
        Ok(Block {
            ends: Ends::Implied {
                size,
                first: first32,
            },
            data: view.data,
            len: count,
            start: first32 * size,
        })
    }

    /// The `count` values of `size` bytes each of a `Values` payload,
    /// which holds exactly them.
    pub(crate) fn from_values(
        payload: &'a [u8],
        count: usize,
        size: u32,
    ) -> Result<Self, WireError> {
        let malformed = || {
            WireError::Malformed(format!(
                "a payload of {} bytes is not {count} values of {size} bytes",
                payload.len()
            ))
        };
        // As for implied ends in a slot (`from_view`): every end lies
        // within the data and under the failure bit.
        let fits = u32::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(size))
            .is_some_and(|bytes| bytes & FAILED == 0 && bytes as usize == payload.len());
        if size == 0 || !fits {
            return Err(malformed());
        }
        Ok(Block {
            ends: Ends::Implied { size, first: 0 },
            data: payload,
            len: count,
            start: 0,
        })
    }

    /// The `count` outcomes of a `Partial` payload.
    pub(crate) fn from_payload(payload: &'a [u8], count: usize) -> Result<Self, WireError> {
        let split = count
            .checked_mul(4)
            .filter(|&split| split <= payload.len())
            .ok_or_else(|| {
                WireError::Malformed(format!(
                    "a payload of {} bytes cannot hold {count} outcomes",
                    payload.len()
                ))
            })?;
        let (ends, data) = payload.split_at(split);
        Ok(Block {
            ends: Ends::Bytes(ends),
            data,
            len: count,
            start: 0,
        })
    }

    /// The number of outcomes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn end(&self, index: usize) -> u32 {
        match self.ends {
            Ends::Words(words) => words[index],
            Ends::Bytes(bytes) => {
                let at = index * 4;
                u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
            }
            // Checked at construction: within the data, under 2^31.
            Ends::Implied { size, first } => (first + index as u32 + 1) * size,
        }
    }

    /// Outcome `index` (below [`len`](Self::len)), or why it cannot be read.
    #[inline]
    pub(crate) fn entry(&self, index: usize) -> Result<Entry<'a>, WireError> {
        let start = if index == 0 {
            self.start as usize
        } else {
            (self.end(index - 1) & !FAILED) as usize
        };
        let raw = self.end(index);
        let end = (raw & !FAILED) as usize;
        let bytes = self.data.get(start..end).ok_or_else(|| {
            WireError::Malformed(format!(
                "outcome {index} claims bytes {start}..{end} of {}",
                self.data.len()
            ))
        })?;
        if raw & FAILED == 0 {
            return Ok(Entry::Value(bytes));
        }
        match bytes.split_first() {
            Some((&tag, detail)) => Ok(Entry::Failed(tag, detail)),
            None => Err(WireError::Malformed(format!(
                "failed outcome {index} has no tag"
            ))),
        }
    }

    /// Whether none of the first `count` outcomes is a failure: one pass
    /// over their ends, without an early exit (vectorised). A `Partial`
    /// frame does not count its failures; an MPI rank asks this before it
    /// copies a block whole (`append_value_ends`).
    pub(crate) fn none_failed(&self, count: usize) -> bool {
        let count = count.min(self.len);
        let all = match self.ends {
            Ends::Words(words) => words[..count].iter().fold(0, |all, &end| all | end),
            Ends::Bytes(bytes) => bytes[..count * 4].chunks_exact(4).fold(0, |all, end| {
                all | u32::from_le_bytes([end[0], end[1], end[2], end[3]])
            }),
            Ends::Implied { .. } => 0,
        };
        all & FAILED == 0
    }

    /// Whether the first `count` outcomes are values of exactly `size`
    /// bytes each, one after another from the block's start: what a run
    /// of plain numbers looks like (a failure's end, flagged, never
    /// matches). One pass without an early exit (vectorised).
    pub(crate) fn uniform_values(&self, count: usize, size: usize) -> bool {
        if count > self.len || count == 0 {
            return false;
        }
        let (Ok(size), Ok(count32)) = (u32::try_from(size), u32::try_from(count)) else {
            return false;
        };
        let Some(last) = count32
            .checked_mul(size)
            .and_then(|bytes| bytes.checked_add(self.start))
        else {
            return false;
        };
        if last as usize > self.data.len() {
            return false;
        }
        let differ = match self.ends {
            Ends::Words(words) => words[..count].iter().zip(1..).fold(0, |differ, (&end, i)| {
                differ | (end ^ (self.start + i * size))
            }),
            Ends::Bytes(bytes) => {
                bytes[..count * 4]
                    .chunks_exact(4)
                    .zip(1..)
                    .fold(0, |differ, (end, i)| {
                        differ
                            | (u32::from_le_bytes([end[0], end[1], end[2], end[3]])
                                ^ (self.start + i * size))
                    })
            }
            Ends::Implied { size: implied, .. } => implied ^ size,
        };
        differ == 0
    }

    /// The size the first `count` outcomes share, if they are all values
    /// of one size above zero (see [`uniform_values`](Self::uniform_values)).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn value_size(&self, count: usize) -> Option<u32> {
        if count == 0 || count > self.len {
            return None;
        }
        let size = match self.ends {
            Ends::Implied { size, .. } => size,
            _ => self.end(0).checked_sub(self.start)?,
        };
        (size > 0 && self.uniform_values(count, size as usize)).then_some(size)
    }

    /// Appends the ends of the first `count` outcomes, none of them a
    /// failure, to `out`, moved so that the first outcome starts at
    /// `base`: `false`, with nothing appended, if they do not rise from
    /// the block's start to within its data (a worker's bug; the caller
    /// then reads them one by one, which says which is wrong).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn append_value_ends(&self, count: usize, base: u32, out: &mut Vec<u32>) -> bool {
        if count > self.len || !self.none_failed(count) {
            return false;
        }
        let start = self.start;
        let limit = self.data.len().min(u32::MAX as usize) as u32;
        let before = out.len();
        let mut last = start;
        for index in 0..count {
            let end = self.end(index);
            let rises = end >= last && end <= limit;
            let Some(moved) = rises.then(|| base.checked_add(end - start)).flatten() else {
                out.truncate(before);
                return false;
            };
            last = end;
            out.push(moved);
        }
        true
    }

    /// The bytes of the first `count` outcomes, if none of them is a
    /// failure (checked by the caller, who knows: the worker counts them)
    /// and they lie within the block.
    pub(crate) fn values(&self, count: usize) -> Option<&'a [u8]> {
        if count == 0 || count > self.len {
            return None;
        }
        let end = self.end(count - 1);
        if end & FAILED != 0 {
            return None;
        }
        self.data.get(self.start as usize..end as usize)
    }

    /// Appends the block as a `Partial` payload.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn write_payload(&self, out: &mut Vec<u8>) {
        for index in 0..self.len {
            let raw = self.end(index);
            let rebased = ((raw & !FAILED).saturating_sub(self.start)) | (raw & FAILED);
            out.extend_from_slice(&rebased.to_le_bytes());
        }
        let used = if self.len == 0 {
            self.start as usize
        } else {
            ((self.end(self.len - 1) & !FAILED) as usize).min(self.data.len())
        };
        out.extend_from_slice(&self.data[(self.start as usize).min(used)..used]);
    }
}
