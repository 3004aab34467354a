//! Which bytes of the pool's argument arena (`sys::arena`) belong to which
//! chunk.
//!
//! A `map` of plain numbers asks for a block as large as its next chunk's
//! arguments and gathers them straight into it; the block travels with the
//! chunk's job (`Payload::Shared`) and is freed when the job is done, so a
//! part of the chunk sent again to a replacement worker after a death is
//! read from the same block. The arena is cut into units of [`UNIT`]
//! bytes; a block is the first run of free units long enough (the lowest
//! units are reused first, so a map touches as few pages as it needs).
//! When no run is free (a window of huge fixed chunks), the map gathers
//! into a vector instead and its chunk goes through the pipe as before.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use parking_lot::Mutex;

use super::sys::arena::{ArenaMap, LEN};

/// The arena's unit of allocation.
const UNIT: usize = 64 << 10;
const UNITS: usize = LEN / UNIT;

/// The pool's argument arena and which of its units are taken.
pub(crate) struct Arena {
    map: ArenaMap,
    taken: Mutex<Vec<bool>>,
}

impl Arena {
    /// A fresh arena, for a pool's workers to inherit.
    pub(crate) fn create() -> io::Result<Arc<Arena>> {
        Ok(Arc::new(Arena {
            map: ArenaMap::create()?,
            taken: Mutex::new(vec![false; UNITS]),
        }))
    }

    /// The descriptor, for the workers to inherit.
    pub(crate) fn fd(&self) -> RawFd {
        self.map.fd()
    }

    /// A block of room for `len` bytes, if a run of free units that long
    /// is free.
    pub(crate) fn block(self: &Arc<Self>, len: usize) -> Option<ArenaBlock> {
        let units = len.div_ceil(UNIT).max(1);
        let mut taken = self.taken.lock();
        let mut first = 0;
        while first + units <= UNITS {
            match taken[first..first + units].iter().rposition(|&t| t) {
                // Taken at `first + used`: no run can start before it.
                Some(used) => first += used + 1,
                None => {
                    taken[first..first + units].fill(true);
                    return Some(ArenaBlock {
                        arena: Arc::clone(self),
                        first,
                        units,
                        len: 0,
                    });
                }
            }
        }
        None
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `try_lock`: a `Debug` must never wait (nor deadlock, if it is
        // asked for while the allocator holds the lock).
        let taken = self
            .taken
            .try_lock()
            .map(|taken| taken.iter().filter(|&&t| t).count());
        f.debug_struct("Arena")
            .field("fd", &self.fd())
            .field("units_taken", &taken)
            .field("units", &UNITS)
            .finish()
    }
}

/// Units of the arena owned by one chunk; freed on drop.
pub(crate) struct ArenaBlock {
    arena: Arc<Arena>,
    first: usize,
    units: usize,
    /// The bytes in use, from the start.
    len: usize,
}

impl ArenaBlock {
    /// Where the block starts in the arena.
    pub(crate) fn offset(&self) -> u64 {
        (self.first * UNIT) as u64
    }

    /// The bytes it holds room for.
    pub(crate) fn capacity(&self) -> usize {
        self.units * UNIT
    }

    /// Sets the bytes in use, at most its capacity.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity());
    }

    /// Where its first byte lies, for its owner to write through:
    /// page-aligned (the mapping is, and units are whole pages), with
    /// [`capacity`](Self::capacity) bytes of room.
    pub(crate) fn start(&self) -> *mut u8 {
        self.arena
            .map
            .ptr_at(self.first * UNIT)
            .expect("a block lies within its arena")
    }

    /// The bytes in use.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.arena
            .map
            .bytes(self.offset(), self.len as u64)
            .expect("a block lies within its arena")
    }
}

impl std::fmt::Debug for ArenaBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArenaBlock")
            .field("offset", &self.offset())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Drop for ArenaBlock {
    fn drop(&mut self) {
        self.arena.taken.lock()[self.first..self.first + self.units].fill(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_do_not_overlap_and_come_back_when_dropped() {
        let arena = Arena::create().expect("an arena");
        let a = arena.block(1).expect("room");
        let b = arena.block(UNIT + 1).expect("room");
        let c = arena.block(UNIT).expect("room");
        assert_eq!((a.offset(), a.capacity()), (0, UNIT));
        assert_eq!((b.offset(), b.capacity()), (UNIT as u64, 2 * UNIT));
        assert_eq!(c.offset(), 3 * UNIT as u64);
        drop(b);
        // The lowest free run that fits: the two units `b` had.
        let d = arena.block(2 * UNIT).expect("room");
        assert_eq!(d.offset(), UNIT as u64);
        // Nothing larger than the arena, nor what no free run can hold.
        assert!(arena.block(LEN + 1).is_none());
        assert!(arena.block(LEN - UNIT).is_none());
        drop((a, c, d));
        let whole = arena.block(LEN).expect("all of it, once free");
        assert_eq!(whole.offset(), 0);
    }

    #[test]
    fn a_block_reads_back_what_its_owner_wrote() {
        let arena = Arena::create().expect("an arena");
        let _before = arena.block(10).expect("room");
        let mut block = arena.block(16).expect("room");
        let start = block.start();
        assert_eq!(start as usize % 4096, 0, "page-aligned");
        for i in 0..16u8 {
            // SAFETY: 16 bytes of this block's own room.
            unsafe { start.add(usize::from(i)).write(i) };
        }
        block.set_len(16);
        assert_eq!(block.bytes(), (0..16).collect::<Vec<u8>>());
        block.set_len(usize::MAX);
        assert_eq!(block.bytes().len(), UNIT, "at most its capacity");
    }
}
