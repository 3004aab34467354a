//! Message buffers kept for the next messages.
//!
//! A map's chunks go to the ranks as messages of up to a few MiB, and their
//! replies come back as others. A buffer allocated afresh for each is
//! mapped afresh, and every 4 KiB page of it faults in when it is first
//! written: about 2 µs a page on these machines, ~0.5 ns per byte, more
//! than copying the byte. So the buffers of sends that completed and of
//! replies that were read are kept here and handed out again, best fit
//! first; a few, and no more than [`KEPT_BYTES`] in all, so that one huge
//! message does not stay in memory for the rest of the run. A large new
//! one asks for transparent huge pages (`sys::with_huge_capacity`).

use crate::process_pool::sys::with_huge_capacity as fresh;

/// The most buffers kept.
const KEPT: usize = 8;
/// The most bytes (of capacity) kept in all.
const KEPT_BYTES: usize = 64 << 20;

/// Buffers for the next messages.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    kept: Vec<Vec<u8>>,
}

impl Spares {
    /// An empty buffer with room for `len` bytes: the smallest kept one
    /// that has it, or a new one.
    pub(crate) fn take(&mut self, len: usize) -> Vec<u8> {
        let best = self
            .kept
            .iter()
            .enumerate()
            .filter(|(_, buffer)| buffer.capacity() >= len)
            .min_by_key(|(_, buffer)| buffer.capacity())
            .map(|(at, _)| at);
        match best {
            Some(at) => {
                let mut buffer = self.kept.swap_remove(at);
                buffer.clear();
                buffer
            }
            None => fresh(len),
        }
    }

    /// Keeps `buffer` for a later message, then drops the smallest kept
    /// ones (`buffer` too, if it is one of them) until no more than
    /// [`KEPT`] buffers and [`KEPT_BYTES`] remain.
    pub(crate) fn keep(&mut self, buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity == 0 || capacity > KEPT_BYTES {
            return;
        }
        self.kept.push(buffer);
        while self.kept.len() > KEPT || self.bytes() > KEPT_BYTES {
            let smallest = (0..self.kept.len()).min_by_key(|&at| self.kept[at].capacity());
            if let Some(at) = smallest {
                self.kept.swap_remove(at);
            }
        }
    }

    fn bytes(&self) -> usize {
        self.kept.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_buffer_that_fits_is_handed_out_emptied() {
        let mut spares = Spares::default();
        for capacity in [100, 10, 1000] {
            let mut buffer = Vec::with_capacity(capacity);
            buffer.push(7);
            spares.keep(buffer);
        }
        let fit = spares.take(50);
        assert!(fit.is_empty());
        assert!(
            fit.capacity() >= 100 && fit.capacity() < 1000,
            "{}",
            fit.capacity()
        );
        assert!(spares.take(5000).capacity() >= 5000, "none fits: a new one");
        assert!(spares.take(1000).capacity() >= 1000);
        assert!(spares.take(10).capacity() >= 10);
        assert!(spares.kept.is_empty());
    }

    #[test]
    fn no_more_than_the_bound_is_kept_and_the_largest_stay() {
        let mut spares = Spares::default();
        for capacity in 1..=20 {
            spares.keep(Vec::with_capacity(capacity * 1000));
        }
        assert_eq!(spares.kept.len(), KEPT);
        let smallest = spares.kept.iter().map(Vec::capacity).min().unwrap();
        assert!(smallest >= 13_000, "the largest are kept: {smallest}");
        spares.keep(Vec::with_capacity(KEPT_BYTES + 1));
        assert!(spares.bytes() <= KEPT_BYTES, "a huge buffer is not kept");
        for _ in 0..KEPT {
            spares.keep(Vec::with_capacity(KEPT_BYTES / 2));
        }
        assert!(spares.bytes() <= KEPT_BYTES, "{}", spares.bytes());
        assert!(!spares.kept.is_empty());
    }
}
