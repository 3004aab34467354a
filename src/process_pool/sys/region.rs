//! The per-worker shared-memory region: an anonymous `memfd`, mapped by the
//! parent and by its worker, that holds what must outlive the worker.
//!
//! The layout is fixed (the same constants on both sides, since both run
//! the same executable), with [`SLOTS`] slots, one per task in flight:
//!
//! ```text
//! header  one 64-byte line per slot: gate:u32 @0, progress:u64 @8,
//!         base:u64 @16, implied:u64 @24;
//!         then a line with the worker's death word (u32)
//! ends    per slot, MAX_ITEMS × u32: where each finished item's outcome ends
//! data    per slot, DATA bytes: the outcomes, one after another
//! ```
//!
//! What the words mean is the protocol's business (see `wire`); this file
//! only makes the memory safe to reach. The memfd is sealed against
//! shrinking and growing, so no process (a task that found the descriptor,
//! say) can truncate it under the other's mapping and turn its next access
//! into `SIGBUS`. Nothing is named: the region vanishes with the last
//! process that maps it, whoever is killed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Tasks in flight per worker: the one it runs and the one it has next.
pub(crate) const SLOTS: usize = 2;

/// The most items of one task whose ends fit in a slot; a worker with more
/// items (or more bytes) than fit hands the slot's outcomes over and starts
/// it again (a `Partial` frame).
pub(crate) const MAX_ITEMS: usize = 1 << 16;

/// The bytes of outcomes a slot holds.
pub(crate) const DATA: usize = 8 << 20;

const HEADER: usize = 4096;
const LINE: usize = 64;
const ENDS: usize = MAX_ITEMS * 4;
const LEN: usize = HEADER + SLOTS * (ENDS + DATA);

/// One slot's outcome area, as the worker fills it.
#[derive(Debug)]
pub(crate) struct SlotMut<'a> {
    pub(crate) ends: &'a mut [u32],
    pub(crate) data: &'a mut [u8],
}

/// One slot's outcome area, as the parent reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    pub(crate) ends: &'a [u32],
    pub(crate) data: &'a [u8],
    /// The slot's implied word as read (see `wire`): non-zero, every
    /// outcome the slot holds is a value of that many bytes, and its end
    /// was not written.
    pub(crate) implied: u64,
}

/// A mapped region; unmapped on drop (the memfd closes with it).
#[derive(Debug)]
pub(crate) struct Region {
    base: *mut u8,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory, valid for the region's life
// wherever it is used; the words other threads touch are atomics, and the
// byte areas are reached through `&mut self` (one writer) or read-only
// slices.
unsafe impl Send for Region {}
// SAFETY: as above: `&Region` hands out only atomics and read-only slices.
unsafe impl Sync for Region {}

impl Region {
    /// Creates a fresh region (parent side), zeroed.
    pub(crate) fn create() -> io::Result<Region> {
        let fd = sealed_memfd(c"concurrent-futures-worker", LEN)?;
        seal_seals(&fd, 0)?;
        Self::map(fd)
    }

    /// Maps the region the parent created (worker side), after checking
    /// that it is a sealed memfd of the expected size.
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Region> {
        if !is_sealed_at(&fd, LEN) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the shared region is not a sealed memfd of {LEN} bytes"),
            ));
        }
        Self::map(fd)
    }

    fn map(fd: OwnedFd) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of the whole descriptor, which is
        // sealed at exactly `LEN` bytes, so every byte of the mapping stays
        // backed for as long as it is mapped.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region {
            base: base.cast(),
            fd,
        })
    }

    /// The descriptor, for the worker to inherit.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn line(&self, slot: usize) -> *mut u8 {
        assert!(slot < SLOTS, "slot {slot} of {SLOTS}");
        // SAFETY: within the header, which lies within the mapping.
        unsafe { self.base.add(slot * LINE) }
    }

    /// The slot's gate word (see `wire`: queued, started, withdrawn).
    pub(crate) fn gate(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: offset 0 of the slot's line: 4-aligned (the mapping is
        // page-aligned), inside the mapping, and only ever used as an
        // atomic by either process.
        unsafe { &*self.line(slot).cast::<AtomicU32>() }
    }

    /// The slot's progress word (see `wire`).
    pub(crate) fn progress(&self, slot: usize) -> &AtomicU64 {
        // SAFETY: offset 8 of the slot's line: 8-aligned, inside the
        // mapping, only ever used as an atomic.
        unsafe { &*self.line(slot).add(8).cast::<AtomicU64>() }
    }

    /// The slot's base word (see `wire`): how many of the task's outcomes
    /// were handed over before the ones the slot holds now.
    pub(crate) fn base(&self, slot: usize) -> &AtomicU64 {
        // SAFETY: offset 16 of the slot's line: 8-aligned, inside the
        // mapping, only ever used as an atomic.
        unsafe { &*self.line(slot).add(16).cast::<AtomicU64>() }
    }

    fn areas(&self, slot: usize) -> (*mut u32, *mut u8) {
        assert!(slot < SLOTS, "slot {slot} of {SLOTS}");
        // SAFETY: both offsets lie within the mapping (see `LEN`); the ends
        // start 4-aligned.
        unsafe {
            let ends = self.base.add(HEADER + slot * ENDS).cast::<u32>();
            let data = self.base.add(HEADER + SLOTS * ENDS + slot * DATA);
            (ends, data)
        }
    }

    /// The worker's death word: why it died, when it could say
    /// (`overflow::OVERFLOWED`), 0 otherwise.
    pub(crate) fn death(&self) -> &AtomicU32 {
        // SAFETY: offset 0 of the header line after the slots' lines:
        // 4-aligned, inside the header, only ever used as an atomic.
        unsafe { &*self.base.add(SLOTS * LINE).cast::<AtomicU32>() }
    }

    /// The slot's areas for the worker to write. `&mut self`: the worker
    /// owns its mapping and writes one slot at a time.
    pub(crate) fn slot_mut(&mut self, slot: usize) -> SlotMut<'_> {
        let (ends, data) = self.areas(slot);
        // SAFETY: disjoint areas of the mapping, valid for its life, which
        // `&mut self` borrows; no other reference into them exists in this
        // process while the borrow lasts. The parent reads them only once
        // the worker has published them (protocol in `wire`).
        unsafe {
            SlotMut {
                ends: std::slice::from_raw_parts_mut(ends, MAX_ITEMS),
                data: std::slice::from_raw_parts_mut(data, DATA),
            }
        }
    }

    /// The slot's areas for the worker to write, and its progress and base
    /// words, at once (they are disjoint: the areas are plain bytes, the
    /// words atomics the parent reads).
    pub(crate) fn slot_and_words(&mut self, slot: usize) -> (SlotMut<'_>, SlotWords<'_>) {
        let progress: *const AtomicU64 = self.progress(slot);
        let base: *const AtomicU64 = self.base(slot);
        let implied: *const AtomicU64 = self.implied(slot);
        let areas = self.slot_mut(slot);
        // SAFETY: the words lie in the header, outside both areas, and are
        // only ever used as atomics, through shared references.
        let words = unsafe {
            SlotWords {
                progress: &*progress,
                base: &*base,
                implied: &*implied,
            }
        };
        (areas, words)
    }

    /// The slot's implied word (see `wire`): the size of every value the
    /// slot holds when their ends are not written, 0 when they are.
    pub(crate) fn implied(&self, slot: usize) -> &AtomicU64 {
        // SAFETY: offset 24 of the slot's line: 8-aligned, inside the
        // mapping, only ever used as an atomic.
        unsafe { &*self.line(slot).add(24).cast::<AtomicU64>() }
    }

    /// The slot's areas for the parent to read, once the worker has
    /// published them (its reply, or its progress word after it died).
    pub(crate) fn slot(&self, slot: usize) -> Slot<'_> {
        let (ends, data) = self.areas(slot);
        // ORDERING: Acquire: the worker stored it before the outcomes it
        // covers were published; see `wire`.
        let implied = self.implied(slot).load(Ordering::Acquire);
        // SAFETY: valid for the region's life, which `&self` borrows; this
        // process never writes them. The worker wrote them before it
        // published them, and does not write the slot again until the
        // parent hands it a new task, by which time the parent is done with
        // this view. A task that scribbles on the region behind the
        // protocol's back can only make these bytes garbage, which the
        // decoder treats as untrusted input (every read is bounds-checked).
        unsafe {
            Slot {
                ends: std::slice::from_raw_parts(ends, MAX_ITEMS),
                data: std::slice::from_raw_parts(data, DATA),
                implied,
            }
        }
    }
}

/// A slot's words, as the worker writes them beside its areas.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotWords<'a> {
    pub(crate) progress: &'a AtomicU64,
    pub(crate) base: &'a AtomicU64,
    pub(crate) implied: &'a AtomicU64,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base` is the start of a mapping of `LEN` bytes made by
        // `map`, unmapped once, here; no reference into it outlives `self`.
        unsafe {
            libc::munmap(self.base.cast(), LEN);
        }
    }
}

/// A descriptor that signals (becomes readable) when process `pid` exits,
/// so that a death is seen at once even while another process (a child the
/// task forked) keeps the worker's pipes open. `None` where the kernel has
/// no `pidfd_open` (Linux < 5.3): end of file on the pipe is then the only
/// sign.
pub(crate) fn pidfd(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: `pidfd_open` takes a pid and flags and returns a new
    // descriptor or -1; the pid is our own unreaped child, so it cannot
    // name another process.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return None;
    }
    let raw = RawFd::try_from(raw).ok()?;
    // SAFETY: a fresh descriptor that nothing else owns. pidfds are
    // close-on-exec from birth.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Waits until one of `fds` is readable (or closed), or `timeout` passes;
/// returns which were (as a bit set, bit `i` for `fds[i]`), 0 on time-out.
/// `None` waits without a limit.
pub(crate) fn poll_readable(
    fds: &[RawFd],
    timeout: Option<std::time::Duration>,
) -> io::Result<u32> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let millis = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            }
        };
        // SAFETY: `polls` holds `polls.len()` valid `pollfd`s.
        let rc = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, millis) };
        match rc {
            -1 => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            0 => {
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(0);
                }
            }
            _ => {
                let mut ready = 0;
                for (i, poll) in polls.iter().enumerate() {
                    if poll.revents != 0 {
                        ready |= 1 << i;
                    }
                }
                return Ok(ready);
            }
        }
    }
}

/// A fresh anonymous memfd of `len` bytes, zeroed, sealed against
/// shrinking and growing (and against further seals).
pub(super) fn sealed_memfd(name: &std::ffi::CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: the name is NUL-terminated; the flags are valid.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `memfd_create` returned a fresh descriptor that nothing
    // else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `ftruncate` and `fcntl(F_ADD_SEALS)` take plain integers
    // and act on our own descriptor.
    unsafe {
        if libc::ftruncate(fd.as_raw_fd(), len) == -1 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(
            fd.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
        ) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Adds the seals `extra` to `fd`, and seals it against any further seal.
pub(super) fn seal_seals(fd: &OwnedFd, extra: libc::c_int) -> io::Result<()> {
    // SAFETY: `fcntl(F_ADD_SEALS)` takes plain integers and acts on our
    // own descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, extra | libc::F_SEAL_SEAL) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is a memfd of exactly `len` bytes sealed against
/// shrinking and growing: what a worker checks before it maps one.
pub(super) fn is_sealed_at(fd: &OwnedFd, len: usize) -> bool {
    // SAFETY: `stat` is a local, filled by `fstat` on our descriptor.
    let size = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut stat) == -1 {
            return false;
        }
        stat.st_size
    };
    // SAFETY: `fcntl(F_GET_SEALS)` only reads the descriptor's seals.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    usize::try_from(size).is_ok_and(|size| size == len) && seals != -1 && seals & needed == needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_region_is_shared_through_its_descriptor() {
        let parent = Region::create().unwrap();
        // SAFETY: `dup` of an open descriptor gives a new one that nothing
        // else owns (a second descriptor for the same memfd).
        let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(parent.fd())) };
        let mut worker = Region::adopt(dup).unwrap();
        worker.slot_mut(1).data[5] = 42;
        worker.slot_mut(1).ends[3] = 7;
        worker.progress(1).store(9, Ordering::Release);
        assert_eq!(parent.progress(1).load(Ordering::Acquire), 9);
        assert_eq!(parent.slot(1).data[5], 42);
        assert_eq!(parent.slot(1).ends[3], 7);
        assert_eq!(parent.slot(0).data[5], 0);
    }

    #[test]
    fn an_unsealed_or_wrong_sized_descriptor_is_refused() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(Region::adopt(OwnedFd::from(file)).is_err());
    }
}
