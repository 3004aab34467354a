//! The pool's argument arena: one anonymous `memfd`, mapped read-write by
//! the parent and read-only by every worker, that a `map` of plain numbers
//! gathers its chunks' arguments into, so that they reach the workers with
//! no copy at all (no `vmsplice`, no pipe read): a task names where its
//! arguments lie (`Message::TaskShared`) and the worker reads them there.
//!
//! Like the region, the memfd is sealed against shrinking and growing, so
//! that no process can truncate it under another's mapping. Where the
//! kernel allows it, it is also sealed against new writable mappings
//! (`F_SEAL_FUTURE_WRITE`, after the parent mapped it), so that a worker,
//! which maps it read-only, cannot scribble on other tasks' arguments.
//! This file only makes the memory safe to reach; which bytes belong to
//! whom is the allocator's business (`process_pool::arena`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::region::{is_sealed_at, seal_seals, sealed_memfd};

/// The arena's size: room for a window of chunks of the largest automatic
/// size (65 536 items of 16 bytes are 1 MiB). Only the pages used are
/// ever backed.
pub(crate) const LEN: usize = 16 << 20;

/// A mapped arena; unmapped on drop (the memfd closes with it).
#[derive(Debug)]
pub(crate) struct ArenaMap {
    base: *mut u8,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory, valid for the arena's life
// wherever it is used. Bytes are written only through `ptr_at` by the one
// owner of each block (the allocator hands each out once) and read through
// `bytes` only where nobody writes them (a block sent to a worker is not
// written again until its job is done).
unsafe impl Send for ArenaMap {}
// SAFETY: as above.
unsafe impl Sync for ArenaMap {}

impl ArenaMap {
    /// Creates a fresh arena (parent side), zeroed and writable.
    pub(crate) fn create() -> io::Result<ArenaMap> {
        let fd = sealed_memfd(c"concurrent-futures-arguments", LEN)?;
        let arena = Self::map(fd, libc::PROT_READ | libc::PROT_WRITE)?;
        // Workers may then map it read-only only. A kernel without the
        // seal (before 5.1) leaves them able to map it writable, which
        // only a task that goes looking for the descriptor would do.
        if seal_seals(&arena.fd, libc::F_SEAL_FUTURE_WRITE).is_err() {
            seal_seals(&arena.fd, 0)?;
        }
        Ok(arena)
    }

    /// Maps the arena the parent created (worker side), read-only, after
    /// checking that it is a sealed memfd of the expected size.
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<ArenaMap> {
        if !is_sealed_at(&fd, LEN) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the argument arena is not a sealed memfd of {LEN} bytes"),
            ));
        }
        Self::map(fd, libc::PROT_READ)
    }

    fn map(fd: OwnedFd, protection: libc::c_int) -> io::Result<ArenaMap> {
        // SAFETY: a fresh shared mapping of the whole descriptor, which is
        // sealed at exactly `LEN` bytes, so every byte of the mapping stays
        // backed for as long as it is mapped.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                protection,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ArenaMap {
            base: base.cast(),
            fd,
        })
    }

    /// The descriptor, for the workers to inherit.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The bytes `at..at + len`, if they lie within the arena. Only for
    /// bytes nobody writes while the slice lives (a block whose writer
    /// is done with it: see the type's safety note).
    pub(crate) fn bytes(&self, at: u64, len: u64) -> Option<&[u8]> {
        let at = usize::try_from(at).ok()?;
        let len = usize::try_from(len).ok()?;
        if at.checked_add(len)? > LEN {
            return None;
        }
        // SAFETY: `at..at + len` lies within the mapping, which lives as
        // long as `&self`; nobody writes those bytes while they are read
        // (the protocol: see the type's safety note).
        Some(unsafe { std::slice::from_raw_parts(self.base.add(at), len) })
    }

    /// Where byte `at` lies, for the owner of a block to write through.
    /// `None` past the end.
    pub(crate) fn ptr_at(&self, at: usize) -> Option<*mut u8> {
        // SAFETY: `at` is within the mapping (checked), so the pointer is
        // in bounds of one allocated object.
        (at < LEN).then(|| unsafe { self.base.add(at) })
    }
}

impl Drop for ArenaMap {
    fn drop(&mut self) {
        // SAFETY: `base` is a mapping of `LEN` bytes made in `map`; every
        // borrow of it ends with `&self`'s.
        unsafe {
            libc::munmap(self.base.cast(), LEN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_writes_what_a_read_only_adopter_reads() {
        let arena = ArenaMap::create().expect("an arena");
        let at = 3 * 4096 + 8;
        let ptr = arena.ptr_at(at).expect("within");
        // SAFETY: eight bytes within the mapping, written by this test only.
        unsafe { ptr.cast::<u64>().write_unaligned(0x0102_0304_0506_0708) };
        // SAFETY: the arena's own descriptor, duplicated for the adopter.
        let dup = unsafe { libc::dup(arena.fd()) };
        assert!(dup >= 0);
        // SAFETY: `dup` returned a fresh descriptor that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        let reader = ArenaMap::adopt(fd).expect("the arena adopts");
        assert_eq!(
            reader.bytes(at as u64, 8),
            Some(&0x0102_0304_0506_0708u64.to_le_bytes()[..])
        );
        assert_eq!(reader.bytes(LEN as u64 - 4, 8), None, "past the end");
        assert_eq!(reader.bytes(u64::MAX, 1), None);
        assert!(arena.ptr_at(LEN).is_none());
        // Where the kernel has the seal, nobody else may map it writable.
        // SAFETY: `fcntl(F_GET_SEALS)` only reads the descriptor's seals.
        let seals = unsafe { libc::fcntl(arena.fd(), libc::F_GET_SEALS) };
        assert!(
            seals != -1 && seals & libc::F_SEAL_SEAL != 0,
            "sealed: {seals}"
        );
        if seals & libc::F_SEAL_FUTURE_WRITE != 0 {
            // SAFETY: a request for a new mapping, which must fail; one that
            // did not would be unmapped at once.
            let writable = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    arena.fd(),
                    0,
                )
            };
            assert_eq!(writable, libc::MAP_FAILED, "a writable mapping was allowed");
        }
    }

    #[test]
    fn a_memfd_of_another_size_is_refused() {
        let fd = sealed_memfd(c"not-an-arena", 4096).expect("a memfd");
        assert!(ArenaMap::adopt(fd).is_err());
    }
}
