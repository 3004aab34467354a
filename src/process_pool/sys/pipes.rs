//! The pipes between parent and worker: made close-on-exec, enlarged,
//! written by lending pages (`vmsplice`), read without blocking, and the
//! buffers around them advised onto huge pages.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pipe whose two ends are close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` succeeded, so both are new descriptors that nothing
    // else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Asks for a pipe buffer of `bytes` (rounded up to pages by the kernel),
/// and returns the pipe's capacity in bytes, whatever it got. Best effort:
/// an unprivileged process may not go over `/proc/sys/fs/pipe-max-size`
/// (1 MiB by default), and a smaller buffer only costs speed.
pub(crate) fn enlarge_pipe(fd: &impl AsRawFd, bytes: usize) -> usize {
    #[cfg(target_os = "linux")]
    {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fcntl(F_SETPIPE_SZ)` and `fcntl(F_GETPIPE_SZ)` take and
        // return plain integers and change at most the buffer size of the
        // pipe `fd` refers to; failure is a plain error return.
        let capacity = unsafe {
            match libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) {
                -1 => libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ),
                got => got,
            }
        };
        // Linux's default, if even the question failed.
        usize::try_from(capacity).unwrap_or(64 * 1024)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, bytes);
        // The smallest buffer of the BSDs' and macOS's pipes.
        16 * 1024
    }
}

/// Writes all of `bytes` to `file`, a pipe, by lending their pages to the
/// pipe (`vmsplice`) rather than copying them into it: the reader's `read`
/// then copies straight from them, one copy instead of two, which a large
/// payload notices. The pages stay referenced by the pipe until they are
/// read, so the caller must leave `bytes` unchanged until the reader has
/// read them: the parent reuses a task's buffer only once the worker has
/// answered the task (so has read it all); the worker writes a buffer it
/// lent again only after [`wait_until_read`].
/// Anything but a pipe, or a kernel without `vmsplice`, gets plain writes.
pub(crate) fn write_lent(file: &mut File, mut bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    #[cfg(target_os = "linux")]
    while !bytes.is_empty() {
        let iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        // SAFETY: `iov` describes `bytes`, which lives through the call;
        // `vmsplice` without SPLICE_F_GIFT only reads the pages (taking
        // references to them for the pipe) and never writes to them.
        let sent = unsafe { libc::vmsplice(file.as_raw_fd(), &iov, 1, 0) };
        match usize::try_from(sent) {
            Ok(sent) => bytes = &bytes[sent.min(bytes.len())..],
            Err(_) => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EBADF) => {
                        return file.write_all(bytes)
                    }
                    _ => return Err(error),
                }
            }
        }
    }
    file.write_all(bytes)
}

/// Makes reads of `fd` return `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: `fcntl(F_GETFL/F_SETFL)` take and return plain integers and
    // change only the flags of `fd`'s open file description.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits until the reader of pipe `file` has read everything written to it
/// (`FIONREAD` says 0), so that pages lent to it by [`write_lent`] may be
/// written again. Gives up at once if the pipe cannot say.
///
/// It looks again after 20 µs, then less and less often, up to every
/// millisecond: a parent that reads at once is seen soon, and one whose
/// caller is slow to take the results does not cost this worker a spin.
pub(crate) fn wait_until_read(file: &File) {
    let mut pause = std::time::Duration::from_micros(20);
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: `FIONREAD` writes one `c_int` into `unread`.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FIONREAD, &mut unread) };
        if rc == -1 || unread == 0 {
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(1));
    }
}

/// The size from which a protocol buffer asks for transparent huge pages.
const HUGE_BUFFER: usize = 2 << 20;

/// Reserves room for `additional` more bytes in `buffer`. A buffer that
/// this makes large (a big argument or result on its way through a pipe)
/// is advised to use transparent huge pages: filling 64 MiB of fresh 4 KiB
/// pages costs 16 384 page faults, which otherwise take most of the time a
/// large payload spends in the pool.
#[inline]
pub(crate) fn reserve(buffer: &mut Vec<u8>, additional: usize) {
    if buffer.capacity() - buffer.len() < additional {
        reserve_more(buffer, additional);
    }
}

#[cold]
fn reserve_more(buffer: &mut Vec<u8>, additional: usize) {
    let (before, capacity) = (buffer.as_ptr(), buffer.capacity());
    buffer.reserve(additional);
    let moved = buffer.as_ptr() != before || buffer.capacity() != capacity;
    if moved && buffer.capacity() >= HUGE_BUFFER {
        let spare = buffer.spare_capacity_mut();
        advise_huge_pages(spare.as_ptr() as usize, spare.len());
    }
}

/// An empty vector with room for `len` items; a large one (from
/// [`HUGE_BUFFER`] bytes) asks for huge pages, whose faults cost about a
/// tenth of 4 KiB ones here per 4 KiB (see [`advise_huge_pages`]).
pub(crate) fn with_huge_capacity<T>(len: usize) -> Vec<T> {
    let fresh = Vec::with_capacity(len);
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    if bytes >= HUGE_BUFFER {
        advise_huge_pages(fresh.as_ptr() as usize, bytes);
    }
    fresh
}

/// `madvise(MADV_HUGEPAGE)` over the pages that `start..start+len` touches.
///
/// Rounded outwards, to the pages around the allocation: advice on a part
/// of a mapping splits it, and the part left without the advice keeps the
/// kernel from backing the edge with a huge page. Writing a fresh 2.6 MiB
/// vector took 9.1 µs a 4 KiB page with the advice rounded inwards, 2.4
/// with none, 0.2 rounded outwards (64 MiB: 0.61, 3.39 and 0.55).
fn advise_huge_pages(start: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let first = start & !(PAGE - 1);
        let end = (start + len).next_multiple_of(PAGE);
        if len > 0 {
            // SAFETY: `first..end` are the whole pages that hold the
            // caller's allocation (the spare capacity of a vector), all
            // mapped in this process. The advice changes how the kernel
            // backs those pages, never their contents or who may use them
            // (so it does no harm to another allocation sharing an edge
            // page); a refusal (no THP support) is an error return, which
            // we ignore.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}
