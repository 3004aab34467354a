//! Every `unsafe` operation of `multiprocessing`, each small and explained.
//!
//! * [`Mapping`]: a sealed anonymous `memfd` mapped `MAP_SHARED`. Its
//!   bytes may change under us at any time (another process maps them
//!   too), so the safe views it hands out are only of types for which any
//!   bit pattern is valid and every access is atomic ([`Mapping::atomic_u32`],
//!   [`Mapping::atomic_u64`]), or raw bytes behind the region's robust
//!   mutex ([`Locked::bytes`]).
//! * [`Mapping::lock`] and friends: a robust, process-shared pthread mutex
//!   in the mapping. A holder that dies is reported to the next locker
//!   (`EOWNERDEAD`), which marks the mutex consistent at once.
//! * [`futex_wait`] / [`futex_wake`]: shared (not `FUTEX_PRIVATE`) futex
//!   operations on a word of the mapping, which every process that maps
//!   the memfd can wait on.
//! * [`cpus_online`] asks `sysconf`.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// The size of the robust mutex every region starts with, rounded up so
/// that what follows is 64-byte aligned.
pub(crate) const MUTEX_SPACE: usize = {
    let size = std::mem::size_of::<libc::pthread_mutex_t>();
    size.div_ceil(64) * 64
};

/// The seals every region carries: its size can never change, so no
/// process can truncate it under another's mapping (which would raise
/// `SIGBUS` there).
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

fn os_error<T>(rc: libc::c_int) -> io::Result<T> {
    Err(io::Error::from_raw_os_error(rc))
}

/// A new anonymous memfd of `len` bytes (zero-filled), sealed against
/// resizing. Nothing is named: the memory goes when its last descriptor
/// and mapping go.
pub(crate) fn sealed_memfd(len: usize) -> io::Result<OwnedFd> {
    let len_off = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
    // SAFETY: the name is a NUL-terminated string literal; the flags are
    // plain integers.
    let fd = unsafe {
        libc::memfd_create(
            c"concurrent-futures".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `memfd_create` returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ftruncate` and `fcntl(F_ADD_SEALS)` take a descriptor we
    // own and integers; failure is an error return.
    unsafe {
        if libc::ftruncate(fd.as_raw_fd(), len_off) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// The size of a received region, after checking that it is a memfd
/// sealed against shrinking (else another process could truncate it and
/// crash us with `SIGBUS`).
pub(crate) fn sealed_size(fd: &OwnedFd) -> io::Result<usize> {
    // SAFETY: `fcntl(F_GET_SEALS)` takes a descriptor and returns flags or -1.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the descriptor is not a region sealed against shrinking",
        ));
    }
    // SAFETY: `st` is a valid place for `fstat` to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is open.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(st.st_size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// A shared mapping of a whole sealed memfd. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with other processes anyway;
// every view of it this type hands out is either atomic or behind the
// region's process-shared mutex, so threads may share and send it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps all `len` bytes of `fd` (read and write, shared).
    pub(crate) fn new(fd: &impl AsFd, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty region"));
        }
        // SAFETY: a fresh mapping chosen by the kernel (null hint) over an
        // open descriptor; it overlaps nothing of ours. The result is
        // checked against MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { base, len })
    }

    /// The address of `offset`, after checking that `size` bytes from it
    /// lie in the mapping and that it is aligned to `align`.
    fn at(&self, offset: usize, size: usize, align: usize) -> *mut u8 {
        let fits = offset.checked_add(size).is_some_and(|end| end <= self.len);
        assert!(
            fits && offset % align == 0,
            "region offset {offset}+{size} out of bounds or misaligned (a bug in concurrent-futures)"
        );
        // SAFETY: `offset` is inside the mapping (checked above).
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// The 32-bit atomic word at `offset`.
    ///
    /// # Panics
    ///
    /// If `offset` is out of bounds or misaligned (offsets are the crate's
    /// own constants, checked against the length when a region is opened).
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let ptr = self.at(offset, 4, 4);
        // SAFETY: 4 aligned bytes inside a mapping that lives as long as
        // `&self`; any bit pattern is a valid `AtomicU32`, and other
        // processes touch the word only with atomic operations too.
        unsafe { &*ptr.cast::<AtomicU32>() }
    }

    /// The 64-bit atomic word at `offset`; see [`atomic_u32`](Self::atomic_u32).
    pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let ptr = self.at(offset, 8, 8);
        // SAFETY: as for `atomic_u32`, with 8 aligned bytes.
        unsafe { &*ptr.cast::<AtomicU64>() }
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.at(0, MUTEX_SPACE, 64).cast()
    }

    /// Initialises the robust, process-shared mutex at the start of a
    /// region. `&mut`: only the creator calls it, before any other handle
    /// (in this or another process) exists.
    pub(crate) fn init_mutex(&mut self) -> io::Result<()> {
        let mutex = self.mutex();
        // SAFETY: `attr` is initialised by `pthread_mutexattr_init` before
        // use and destroyed once; the mutex memory is ours alone (`&mut
        // self`, nothing shared yet) and large enough (MUTEX_SPACE).
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            let rc = libc::pthread_mutexattr_init(&mut attr);
            if rc != 0 {
                return os_error(rc);
            }
            let mut rc =
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                // Error-checking: locking it again from the thread that
                // holds it fails with EDEADLK instead of hanging.
                rc = libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(mutex, &attr);
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc != 0 {
                return os_error(rc);
            }
        }
        Ok(())
    }

    /// Takes the region's mutex, waiting as `how` says.
    pub(crate) fn lock(&self, how: Wait) -> Result<Locked<'_>, LockFailure> {
        let mutex = self.mutex();
        // SAFETY: `mutex` points to the mutex `init_mutex` set up in this
        // region (every region is created through it before it is shared);
        // the mapping outlives the call. `timespec` is a local.
        let rc = unsafe {
            match how {
                Wait::Block => libc::pthread_mutex_lock(mutex),
                Wait::Try => libc::pthread_mutex_trylock(mutex),
                Wait::Until(deadline) => {
                    let deadline = realtime_deadline(deadline);
                    libc::pthread_mutex_timedlock(mutex, &deadline)
                }
            }
        };
        match rc {
            0 => Ok(Locked {
                mapping: self,
                holder_died: false,
                not_send: PhantomData,
            }),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD hands it over);
                // marking it consistent is what lets later lockers use it.
                unsafe {
                    libc::pthread_mutex_consistent(mutex);
                }
                Ok(Locked {
                    mapping: self,
                    holder_died: true,
                    not_send: PhantomData,
                })
            }
            libc::EBUSY => Err(LockFailure::WouldBlock),
            libc::ETIMEDOUT => Err(LockFailure::TimedOut),
            libc::EDEADLK => Err(LockFailure::Deadlock),
            rc => Err(LockFailure::Os(io::Error::from_raw_os_error(rc))),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is the mapping `mmap` gave us; every
        // reference into it borrows `self`, so none outlives this.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// How [`Mapping::lock`] waits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Until the mutex is free.
    Block,
    /// Not at all.
    Try,
    /// Until the mutex is free or the (monotonic) instant passes.
    Until(std::time::Instant),
}

/// Why [`Mapping::lock`] did not take the mutex.
#[derive(Debug)]
pub(crate) enum LockFailure {
    WouldBlock,
    TimedOut,
    Deadlock,
    Os(io::Error),
}

/// `deadline` (monotonic) as an absolute `CLOCK_REALTIME` time, which
/// `pthread_mutex_timedlock` takes.
fn realtime_deadline(deadline: std::time::Instant) -> libc::timespec {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let at = now.saturating_add(left);
    libc::timespec {
        tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(at.subsec_nanos() as i32),
    }
}

/// The region's mutex, held. Unlocked on drop.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    mapping: &'a Mapping,
    /// The previous holder died holding it.
    pub(crate) holder_died: bool,
    /// A pthread mutex must be unlocked by the thread that locked it.
    not_send: PhantomData<*const ()>,
}

impl Locked<'_> {
    /// The bytes `offset..offset + len` of the region, which the crate only
    /// ever touches while it holds the region's mutex.
    ///
    /// # Panics
    ///
    /// If the range is out of bounds or inside the mutex itself (the
    /// crate's own offsets, checked when the region is opened).
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        let ptr = self.data(offset, len);
        // SAFETY: the range is inside the mapping (checked by `data`),
        // which outlives `&self`. Every process touches these bytes only
        // while it holds the region's mutex, which we hold while `self`
        // lives, so no one writes them meanwhile: this thread could only
        // through `bytes_mut`, which needs `&mut self`. Any bit pattern is
        // a valid `u8`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// The bytes `offset..offset + len`, writable; see [`bytes`](Self::bytes).
    pub(crate) fn bytes_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        let ptr = self.data(offset, len);
        // SAFETY: as for `bytes`; `&mut self` makes this the only view of
        // the region's data in this thread, and no other thread or process
        // may touch it while we hold the mutex.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    fn data(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(
            offset >= MUTEX_SPACE,
            "bytes inside the mutex (a bug in concurrent-futures)"
        );
        self.mapping.at(offset, len, 1)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread holds the mutex (a `Locked` exists only after
        // a successful lock, and is not `Send`: see `not_send`).
        unsafe {
            libc::pthread_mutex_unlock(self.mapping.mutex());
        }
    }
}

/// A shared-futex wait on `word` while it holds `expected`, for at most
/// `timeout`. Returns when woken, when the word differs, on a signal or
/// on timeout; the caller checks its condition again in every case.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned 32-bit word (in shared memory,
    // hence the shared FUTEX_WAIT, not FUTEX_WAIT_PRIVATE); `ts` is a
    // relative timeout on the stack. The kernel only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes up to `count` waiters on `word`, in any process.
pub(crate) fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: as for `futex_wait`; FUTEX_WAKE only reads the address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count);
    }
}

/// The number of CPUs online in the system, as Python's `os.cpu_count()`
/// computes it on Linux (`sysconf(_SC_NPROCESSORS_ONLN)`); `None` if the
/// system does not say.
pub(crate) fn cpus_online() -> Option<usize> {
    // SAFETY: `sysconf` takes a constant and returns a number or -1.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}
