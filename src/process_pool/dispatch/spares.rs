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
/// chunks in flight per worker (five for two workers), and the buffers of
/// the ones answered come back before the next are encoded; the next map
/// finds them all.
const KEPT: usize = 8;

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
    /// A payload buffer for an argument of unknown size (a `submit`):
    /// the last one kept, as large as the last arguments were.
    pub(crate) fn last_payload(&mut self) -> Vec<u8> {
        self.payloads.pop().unwrap_or_default()
    }

    /// A payload buffer for about `want` bytes, empty: the smallest kept
    /// one with room for them, else the largest kept one to grow, else a
    /// new one. A small request never takes a large buffer (a map's first
    /// chunks are small, and would leave the large ones its next chunks
    /// need to be grown from small ones again).
    pub(crate) fn payload(&mut self, want: usize) -> Vec<u8> {
        let fits = |capacity: usize| want > SMALL || capacity <= SMALL;
        let roomy = (0..self.payloads.len())
            .filter(|&i| self.payloads[i].capacity() >= want && fits(self.payloads[i].capacity()))
            .min_by_key(|&i| self.payloads[i].capacity());
        let pick = roomy.or_else(|| {
            (0..self.payloads.len())
                .filter(|&i| fits(self.payloads[i].capacity()))
                .max_by_key(|&i| self.payloads[i].capacity())
        });
        pick.map(|i| self.payloads.swap_remove(i))
            .unwrap_or_default()
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
        // A buffer over LARGE_TOGETHER (a one-off huge argument) is kept
        // alone, and only while well used; the chunk-sized ones below it
        // together up to LARGE_TOGETHER, however full (a map's last chunk
        // is partly, and the next map's first chunks fill them again).
        let oversized = large
            && ((payload.capacity() > LARGE_TOGETHER && payload.len() < payload.capacity() / 2)
                || (kept_large > 0 && kept_large + payload.capacity() > LARGE_TOGETHER));
        if payload.capacity() > 0 && !oversized {
            payload.clear();
            if self.payloads.len() < KEPT {
                self.payloads.push(payload);
            } else if let Some(smallest) = self.payloads.iter_mut().min_by_key(|p| p.capacity()) {
                // Full: the largest are the ones worth keeping (a map's
                // last chunks are small, its next map's first are large).
                if smallest.capacity() < payload.capacity() {
                    *smallest = payload;
                }
            }
        }
        if bounds.capacity() > 0 && self.bounds.len() < KEPT {
            self.bounds.push(bounds);
        }
    }
}

/// The vectors of a map's decoded values, of any result type, kept when
/// the map ends for the next map with the same result type: a program
/// that maps batch after batch would otherwise fault a few MiB of fresh
/// memory in for every batch (about 1 400 page faults, some 4 ms, for a
/// map of `u64`s on the development machine).
#[derive(Debug, Default)]
pub(crate) struct ValueSpares {
    /// Each a `Vec<R>`, empty, with its capacity in bytes.
    kept: Vec<(usize, Box<dyn std::any::Any + Send>)>,
}

impl ValueSpares {
    /// The kept vectors for values of type `R`, at most `most`, largest
    /// first.
    pub(crate) fn take<R: Send + 'static>(&mut self, most: usize) -> Vec<Vec<R>> {
        let mut taken = Vec::new();
        let mut i = 0;
        while i < self.kept.len() && taken.len() < most {
            if self.kept[i].1.is::<Vec<R>>() {
                let (_, kept) = self.kept.swap_remove(i);
                if let Ok(values) = kept.downcast::<Vec<R>>() {
                    taken.push(*values);
                }
            } else {
                i += 1;
            }
        }
        taken.sort_by_key(|values| std::cmp::Reverse(values.capacity()));
        taken
    }

    /// The kept vector for values of type `R` that best fits `want` of
    /// them: the smallest with room for them, or else the largest.
    pub(crate) fn take_one<R: Send + 'static>(&mut self, want: usize) -> Option<Vec<R>> {
        let capacity = |kept: &(usize, Box<dyn std::any::Any + Send>)| {
            kept.1.downcast_ref::<Vec<R>>().map(Vec::capacity)
        };
        let roomy = (0..self.kept.len())
            .filter(|&i| capacity(&self.kept[i]).is_some_and(|c| c >= want))
            .min_by_key(|&i| capacity(&self.kept[i]));
        let pick = roomy.or_else(|| {
            (0..self.kept.len())
                .filter(|&i| capacity(&self.kept[i]).is_some())
                .max_by_key(|&i| capacity(&self.kept[i]))
        })?;
        self.kept
            .swap_remove(pick)
            .1
            .downcast::<Vec<R>>()
            .ok()
            .map(|v| *v)
    }

    /// Keeps `values`, emptied, unless it has no room or the kept ones
    /// already count [`KEPT`] or [`LARGE_TOGETHER`] bytes (then it takes
    /// the place of a smaller one, if there is one).
    pub(crate) fn keep<R: Send + 'static>(&mut self, mut values: Vec<R>) {
        let bytes = values.capacity().saturating_mul(std::mem::size_of::<R>());
        values.clear();
        self.keep_boxed(bytes, Box::new(values));
    }

    /// Keeps `values`, an empty `Vec` of `bytes` bytes of capacity, as
    /// [`keep`](Self::keep) does.
    pub(crate) fn keep_boxed(&mut self, bytes: usize, values: Box<dyn std::any::Any + Send>) {
        if bytes == 0 || bytes > LARGE_TOGETHER {
            return;
        }
        let total: usize = self.kept.iter().map(|(bytes, _)| bytes).sum();
        if self.kept.len() < KEPT && total + bytes <= LARGE_TOGETHER {
            self.kept.push((bytes, values));
        } else if let Some(smallest) = self.kept.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            if smallest.0 < bytes && total - smallest.0 + bytes <= LARGE_TOGETHER {
                *smallest = (bytes, values);
            }
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
        let payload = spares.payload(0);
        assert!(payload.is_empty() && payload.capacity() >= 100);
        let bounds = spares.bounds();
        assert!(bounds.capacity() >= 10);
        assert_eq!(spares.payload(0).capacity(), 0, "only one was kept");
    }

    #[test]
    fn a_huge_payload_mostly_unused_is_not_kept_and_the_count_is_bounded() {
        let mut spares = Spares::default();
        let mut huge = Vec::with_capacity(2 * LARGE_TOGETHER);
        huge.push(0u8);
        spares.keep(huge, Vec::new());
        assert_eq!(spares.payload(3 * SMALL).capacity(), 0);
        // Large ones, well used, are kept together while they fit in
        // LARGE_TOGETHER; one past it is not.
        let half = LARGE_TOGETHER / 2;
        spares.keep(vec![1; half], Vec::new());
        spares.keep(vec![2; half], Vec::new());
        spares.keep(vec![3; 2 * SMALL], Vec::new());
        assert_eq!(spares.payloads.len(), 2);
        assert_eq!(spares.payload(3 * SMALL).capacity(), half);
        assert_eq!(spares.payload(3 * SMALL).capacity(), half);
        // One larger than all of it is kept alone, and nothing joins it.
        spares.keep(vec![4; 2 * LARGE_TOGETHER], Vec::new());
        spares.keep(vec![5; 2 * SMALL], Vec::new());
        assert_eq!(spares.payloads.len(), 1);
        assert_eq!(spares.payload(3 * SMALL).capacity(), 2 * LARGE_TOGETHER);
        for _ in 0..2 * KEPT {
            spares.keep(vec![0; 8], vec![0; 8]);
        }
        assert_eq!(spares.payloads.len(), KEPT);
        assert_eq!(spares.bounds.len(), KEPT);
    }

    #[test]
    fn a_small_request_leaves_the_large_buffers_to_large_ones() {
        let mut spares = Spares::default();
        spares.keep(vec![1; 4 * SMALL], Vec::new());
        spares.keep(vec![2; 100], Vec::new());
        // A map's last chunk, a few items in a large buffer, keeps it.
        let mut tail = Vec::with_capacity(2 * SMALL);
        tail.push(3u8);
        spares.keep(tail, Vec::new());
        assert_eq!(spares.payload(8).capacity(), 100);
        assert_eq!(spares.payload(8).capacity(), 0, "small asks get new ones");
        assert_eq!(spares.payload(3 * SMALL).capacity(), 4 * SMALL);
        assert_eq!(
            spares.payload(3 * SMALL).capacity(),
            2 * SMALL,
            "the largest, to grow"
        );
    }

    #[test]
    fn values_come_back_by_type_largest_first_within_bounds() {
        let mut spares = ValueSpares::default();
        spares.keep(Vec::<u64>::with_capacity(10));
        spares.keep(vec![1u64; 100]);
        spares.keep(vec![String::new(); 3]);
        spares.keep(Vec::<u64>::new());
        let taken = spares.take::<u64>(4);
        assert_eq!(
            taken.iter().map(Vec::capacity).collect::<Vec<_>>(),
            [100, 10]
        );
        assert!(taken.iter().all(Vec::is_empty));
        assert!(spares.take::<u64>(4).is_empty());
        assert_eq!(spares.take::<String>(4).len(), 1);
        // Bounded in number (the smallest give way) and in bytes.
        for n in 1..=2 * KEPT {
            spares.keep(Vec::<u8>::with_capacity(n));
        }
        let kept: Vec<usize> = spares
            .take::<u8>(usize::MAX)
            .iter()
            .map(Vec::capacity)
            .collect();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[KEPT - 1], KEPT + 1);
        spares.keep(Vec::<u8>::with_capacity(LARGE_TOGETHER + 1));
        spares.keep(Vec::<u8>::with_capacity(LARGE_TOGETHER / 2 + 1));
        spares.keep(Vec::<u8>::with_capacity(LARGE_TOGETHER / 2 + 1));
        assert_eq!(spares.take::<u8>(usize::MAX).len(), 1);
    }
}
