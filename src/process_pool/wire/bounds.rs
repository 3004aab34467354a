//! [`Bounds`]: where each argument of a task ends in its payload.
//!
//! The worker never needs them (it decodes the arguments one after
//! another); the parent does when a worker stops part-way through a task
//! (it died, or was killed for a time limit): the items it had not started
//! are sent again, from the end of the last one it resolved.
//!
//! Most chunks hold arguments of one size (numbers, tuples and arrays of
//! them, plain structs of numbers: the format's numbers are fixed-width).
//! For those no list is written at all: the first item's size is kept
//! and each later item only compared with it, which costs a comparison
//! where a list costs a store, the memory and its page faults (four bytes
//! an item beside a `u64`'s eight). The first item of another size turns
//! the bounds into a list, written out once for the items before it.

/// Where each of some items' arguments ends, as a link sends them along
/// with a task (an MPI rank's local pool needs them to send the rest of a
/// task again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemEnds {
    /// Every item takes this many bytes.
    Uniform(u32),
    /// Each item's end, from the first item's start.
    Listed(Vec<u32>),
}

/// Where each of a task's arguments ends in its payload.
#[derive(Debug, Default)]
pub(crate) struct Bounds {
    /// The number of items.
    len: usize,
    /// Where the first item starts.
    base: u32,
    /// How many bytes each item takes, while `listed` is false.
    stride: u32,
    /// Whether `ends` lists every item's end (items of different sizes);
    /// otherwise item `i` ends at `base + (i + 1) * stride`.
    listed: bool,
    /// The ends, when listed; otherwise a kept buffer, empty.
    ends: Vec<u32>,
}

impl Bounds {
    /// No items yet, with `buffer` (a kept one) for the list if one is
    /// needed.
    pub(crate) fn with_buffer(mut buffer: Vec<u32>) -> Self {
        buffer.clear();
        Bounds {
            ends: buffer,
            ..Bounds::default()
        }
    }

    /// One item, from the start of the payload to `end`.
    pub(crate) fn one(end: u32) -> Self {
        let mut bounds = Bounds::default();
        bounds.push(0, end);
        bounds
    }

    /// `len` items that take no bytes (for the fuzz targets' jobs).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn zero_sized(len: usize) -> Self {
        let mut bounds = Bounds::default();
        bounds.push_run(0, 0, len);
        bounds
    }

    /// The items that end at `ends`, in order (a list received whole: an
    /// MPI rank's task).
    #[cfg(feature = "mpi")]
    pub(crate) fn listed(ends: Vec<u32>) -> Self {
        Bounds {
            len: ends.len(),
            listed: true,
            ends,
            ..Bounds::default()
        }
    }

    /// `count` items of `size` bytes each from the payload's start (a
    /// rank's task whose items share a size).
    #[cfg(feature = "mpi")]
    pub(crate) fn uniform(size: u32, count: usize) -> Self {
        let mut bounds = Bounds::default();
        bounds.push_run(0, size, count);
        bounds
    }

    /// Adds an item that takes the payload's bytes `start..end` (right
    /// after the last item's).
    #[inline]
    pub(crate) fn push(&mut self, start: u32, end: u32) {
        debug_assert!(start <= end, "an item ends after it starts");
        if !self.listed {
            if self.len == 0 {
                self.base = start;
                self.stride = end - start;
                self.len = 1;
                return;
            }
            if end - start == self.stride {
                self.len += 1;
                return;
            }
            self.list();
        }
        self.ends.push(end);
        self.len += 1;
    }

    /// Adds `count` items of `size` bytes each, the first from `start`.
    pub(crate) fn push_run(&mut self, start: u32, size: u32, count: usize) {
        if count > 0 {
            self.push(start, start + size);
            if self.stride() == Some(size) {
                self.extend_uniform(count - 1);
            } else {
                for k in 1..count as u32 {
                    self.push(start + k * size, start + (k + 1) * size);
                }
            }
        }
    }

    /// The size of every item so far, if there is one and they share it.
    #[inline]
    pub(crate) fn stride(&self) -> Option<u32> {
        (!self.listed && self.len > 0).then_some(self.stride)
    }

    /// Adds `count` items of [`stride`](Self::stride) bytes each.
    #[inline]
    pub(crate) fn extend_uniform(&mut self, count: usize) {
        debug_assert!(count == 0 || self.stride().is_some(), "items of one size");
        self.len += count;
    }

    /// Writes out the ends of the items so far, which all had one size.
    #[cold]
    #[inline(never)]
    fn list(&mut self) {
        let (base, stride) = (self.base, self.stride);
        self.ends.clear();
        self.ends.reserve(self.len + 1);
        self.ends
            .extend((1..=self.len as u32).map(|k| base + k * stride));
        self.listed = true;
    }

    /// The number of items.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where item `index` (below `len`) ends.
    pub(crate) fn end(&self, index: usize) -> u32 {
        if self.listed {
            self.ends[index]
        } else {
            // Within the payload, so below 4 GiB (frames are).
            self.base + (index as u32 + 1) * self.stride
        }
    }

    /// Where the arguments after the first `resolved` items start in a
    /// payload of `len` bytes.
    pub(crate) fn offset_after(&self, resolved: usize, len: usize) -> usize {
        match resolved {
            0 => 0,
            n if n <= self.len => self.end(n - 1) as usize,
            _ => len,
        }
    }

    /// Where each item from `resolved` on ends, counted from `offset` (the
    /// end of the items before it).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn ends_from(&self, resolved: usize, offset: usize) -> ItemEnds {
        let first = resolved.min(self.len);
        let first_start = self.base + first as u32 * self.stride;
        if !self.listed && offset == first_start as usize {
            return ItemEnds::Uniform(self.stride);
        }
        let start = offset as u32;
        ItemEnds::Listed(
            (first..self.len)
                .map(|index| self.end(index) - start)
                .collect(),
        )
    }

    /// The list's buffer, for the pool to keep.
    pub(crate) fn into_buffer(self) -> Vec<u32> {
        self.ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sizes, every end reads back as pushed, and so do
        /// the offsets and the ends counted from one.
        #[test]
        fn ends_read_back_as_pushed(
            base in 0u32..100,
            sizes in proptest::collection::vec(
                prop_oneof![Just(8u32), 0u32..20],
                0..60,
            ),
        ) {
            let mut bounds = Bounds::with_buffer(vec![7; 3]);
            let mut ends = Vec::new();
            let mut at = base;
            for size in &sizes {
                bounds.push(at, at + size);
                at += size;
                ends.push(at);
            }
            prop_assert_eq!(bounds.len(), sizes.len());
            for (index, end) in ends.iter().enumerate() {
                prop_assert_eq!(bounds.end(index), *end);
                prop_assert_eq!(bounds.offset_after(index + 1, 9999), *end as usize);
            }
            prop_assert_eq!(bounds.offset_after(0, 9999), 0);
            prop_assert_eq!(bounds.offset_after(sizes.len() + 1, 9999), 9999);
            let resolved = sizes.len() / 2;
            let offset = bounds.offset_after(resolved, at as usize);
            let expected: Vec<u32> = ends[resolved..].iter().map(|end| end - offset as u32).collect();
            let listed = match bounds.ends_from(resolved, offset) {
                ItemEnds::Uniform(size) => {
                    prop_assert!(sizes[resolved..].iter().all(|&s| s == size), "{:?}", sizes);
                    (1..=(sizes.len() - resolved) as u32).map(|k| k * size).collect()
                }
                ItemEnds::Listed(ends) => ends,
            };
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn items_of_one_size_write_no_list() {
        let mut bounds = Bounds::with_buffer(Vec::new());
        for k in 0..1000 {
            bounds.push(8 * k, 8 * k + 8);
        }
        assert_eq!(bounds.end(999), 8000);
        assert_eq!(bounds.into_buffer().capacity(), 0, "nothing listed");
    }

    #[test]
    fn a_run_of_one_size_extends_the_stride_or_the_list() {
        let mut uniform = Bounds::with_buffer(Vec::new());
        uniform.push_run(4, 8, 3);
        assert_eq!((uniform.len(), uniform.end(2)), (3, 28));
        let mut mixed = Bounds::with_buffer(Vec::new());
        mixed.push(0, 3);
        mixed.push(3, 5);
        mixed.push_run(5, 8, 2);
        let ends: Vec<u32> = (0..mixed.len()).map(|i| mixed.end(i)).collect();
        assert_eq!(ends, [3, 5, 13, 21]);
        mixed.push_run(21, 8, 0);
        assert_eq!(mixed.len(), 4);
    }

    #[test]
    fn one_item_ends_where_it_says() {
        let bounds = Bounds::one(42);
        assert_eq!((bounds.len(), bounds.end(0)), (1, 42));
        assert_eq!(bounds.offset_after(1, 42), 42);
    }
}
