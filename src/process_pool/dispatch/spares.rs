//! Buffers kept for reuse: the payloads and item bounds of jobs whose
//! workers have answered (and so have read every byte of them), for the
//! next `submit` or `map` chunk to encode into.
//!
//! Fresh memory is faulted in (and, on a virtual machine, often backed by
//! the host) page by page: that cost a 64 MiB argument more than copying
//! it, and a fine-grained `map`, which encodes a chunk of tens of
//! thousands of items every few milliseconds, about a nanosecond an
//! item (glibc gives the freed chunks back to the system, so each new one
//! faults again).

/// The buffers kept: at most [`KEPT`] of each kind.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    payloads: Vec<Vec<u8>>,
    bounds: Vec<Vec<u32>>,
}

/// At most this many buffers of each kind are kept: a map keeps a few
/// chunks in flight per worker, and the buffers of the ones answered come
/// back before the next are encoded.
const KEPT: usize = 4;

/// A payload over this size is kept only if it was at least half used: a
/// large buffer is kept only while large arguments keep coming.
const SMALL: usize = 64 * 1024;

/// Large payloads are kept together only while their capacities add up to
/// at most this much; past it, one at a time. A `map` of small items
/// encodes chunks of a few hundred KiB (four of them fit), and a pool
/// passing 64 MiB arguments keeps one such buffer, not four (a quarter of
/// a GiB held for nothing).
const LARGE_TOGETHER: usize = 8 << 20;

impl Spares {
    /// A payload buffer, empty, a kept one if there is one.
    pub(crate) fn payload(&mut self) -> Vec<u8> {
        self.payloads.pop().unwrap_or_default()
    }

    /// A bounds buffer, a kept one if there is one, with the old bounds
    /// still in it (whoever takes it writes every bound it uses, and
    /// zeroing it again would cost a pass over it).
    pub(crate) fn bounds(&mut self) -> Vec<u32> {
        self.bounds.pop().unwrap_or_default()
    }

    /// Keeps `payload` and `bounds` for later, unless there is nothing to
    /// keep (a job that keeps its buffers gives empty ones), enough are
    /// kept already, or the payload is large and was less than half used.
    pub(crate) fn keep(&mut self, mut payload: Vec<u8>, bounds: Vec<u32>) {
        let large = payload.capacity() > SMALL;
        let kept_large: usize = self
            .payloads
            .iter()
            .map(Vec::capacity)
            .filter(|&capacity| capacity > SMALL)
            .sum();
        let oversized = large
            && (payload.len() < payload.capacity() / 2
                || (kept_large > 0 && kept_large + payload.capacity() > LARGE_TOGETHER));
        if payload.capacity() > 0 && !oversized && self.payloads.len() < KEPT {
            payload.clear();
            self.payloads.push(payload);
        }
        if bounds.capacity() > 0 && self.bounds.len() < KEPT {
            self.bounds.push(bounds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_room() {
        let mut spares = Spares::default();
        spares.keep(vec![1; 100], vec![7; 10]);
        let payload = spares.payload();
        assert!(payload.is_empty() && payload.capacity() >= 100);
        let bounds = spares.bounds();
        assert!(bounds.capacity() >= 10);
        assert_eq!(spares.payload().capacity(), 0, "only one was kept");
    }

    #[test]
    fn a_large_payload_mostly_unused_is_not_kept_and_the_count_is_bounded() {
        let mut spares = Spares::default();
        let mut large = Vec::with_capacity(4 * SMALL);
        large.push(0u8);
        spares.keep(large, Vec::new());
        assert_eq!(spares.payload().capacity(), 0);
        // Large ones, well used, are kept together while they fit in
        // LARGE_TOGETHER; one past it is not.
        let half = LARGE_TOGETHER / 2;
        spares.keep(vec![1; half], Vec::new());
        spares.keep(vec![2; half], Vec::new());
        spares.keep(vec![3; 2 * SMALL], Vec::new());
        assert_eq!(spares.payloads.len(), 2);
        assert_eq!(spares.payload().capacity(), half);
        assert_eq!(spares.payload().capacity(), half);
        // One larger than all of it is kept alone, and nothing joins it.
        spares.keep(vec![4; 2 * LARGE_TOGETHER], Vec::new());
        spares.keep(vec![5; 2 * SMALL], Vec::new());
        assert_eq!(spares.payloads.len(), 1);
        assert_eq!(spares.payload().capacity(), 2 * LARGE_TOGETHER);
        for _ in 0..2 * KEPT {
            spares.keep(vec![0; 8], vec![0; 8]);
        }
        assert_eq!(spares.payloads.len(), KEPT);
        assert_eq!(spares.bounds.len(), KEPT);
    }
}
