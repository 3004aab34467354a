//! Every `unsafe` operation of the process pool, each small and explained
//! (the shared region and process descriptors in [`region`]).
//!
//! * Functions travel by their offset from [`anchor`], a function of this
//!   crate. Parent and worker run the same executable (the handshake checks
//!   its device and inode, the protocol version, a per-pool token and the
//!   offset of a probe function), so an offset names the same function on
//!   both sides even though address randomisation loads them at different
//!   bases. Before an address is sent, the pool checks that it lies in an
//!   executable segment of the same loaded object as the anchor (see
//!   [`anchor_object_ranges`]): a function from a library loaded at run
//!   time is refused at `submit`.
//! * The worker's protocol descriptors are inherited across `exec`: they
//!   are created close-on-exec, and only the child's file actions in
//!   `posix_spawn` clear that flag on its own copies; the worker sets it
//!   again at once, so that programs its tasks start do not inherit them.
//! * A worker sets `PR_SET_PDEATHSIG` so that it dies with the parent's
//!   thread that started it (its driver, which lives as long as it does).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) use append::Appender;

mod append;
pub(crate) mod arena;
pub(crate) mod overflow;
mod pipes;
mod waits;
pub(crate) use pipes::{
    enlarge_pipe, pipe, reserve, set_nonblocking, wait_until_read, with_huge_capacity, write_lent,
};
pub(crate) use waits::RunQueueWait;
mod process;
pub(crate) mod region;

pub(crate) use process::{spawn_process, Process};

/// The reference point for function offsets. Never called.
#[inline(never)]
pub(crate) fn anchor() {
    // Distinct body, so that identical-code folding cannot merge it with
    // the probe (it would still be correct, but the probe would tell less).
    std::hint::black_box(0x5eed_u32);
}

/// A second known function whose offset from [`anchor`] both sides compare
/// in the handshake.
#[inline(never)]
pub(crate) fn probe() {
    std::hint::black_box(0x0b5e_u32);
}

/// `addr` relative to [`anchor`].
pub(crate) fn offset_of(addr: usize) -> u64 {
    addr.wrapping_sub(anchor as fn() as usize) as u64
}

/// The address at `offset` from [`anchor`] in this process.
pub(crate) fn address_at(offset: u64) -> usize {
    (anchor as fn() as usize).wrapping_add(offset as usize)
}

/// The signature every trampoline has once its types are erased: run the
/// user's function (at address `func`) on each of the `count` arguments in
/// `payload`, recording the outcomes.
pub(crate) type Trampoline =
    fn(func: usize, payload: &[u8], count: u32, outcomes: &mut super::outcomes::Outcomes<'_>);

/// Turns the address of a trampoline back into a callable pointer.
///
/// # Safety
///
/// `addr` must be the address, in this process, of a function whose type is
/// [`Trampoline`]. The worker only calls this with an address the parent
/// computed from such a function, in the same executable (checked by the
/// handshake), translated by [`address_at`].
pub(crate) unsafe fn trampoline_at(addr: usize) -> Trampoline {
    // SAFETY: the caller guarantees `addr` is a `Trampoline`; fn pointers
    // and `usize` have the same size on every platform this crate supports.
    unsafe { std::mem::transmute::<usize, Trampoline>(addr) }
}

/// Turns the address of the user's function back into a callable pointer.
///
/// # Safety
///
/// `addr` must be the address, in this process, of a function of type
/// `fn(A) -> R`. Trampolines only call this with the address the parent
/// sent next to the trampoline for exactly `A` and `R`.
pub(crate) unsafe fn function_at<A, R>(addr: usize) -> fn(A) -> R {
    // SAFETY: guaranteed by the caller, as above.
    unsafe { std::mem::transmute::<usize, fn(A) -> R>(addr) }
}

/// The type of a process pool's initializer.
pub(crate) type InitFn = fn() -> Result<(), String>;

/// Turns the address of the initializer back into a callable pointer.
///
/// # Safety
///
/// `addr` must be the address, in this process, of an [`InitFn`].
pub(crate) unsafe fn initializer_at(addr: usize) -> InitFn {
    // SAFETY: guaranteed by the caller.
    unsafe { std::mem::transmute::<usize, InitFn>(addr) }
}

/// The executable address ranges of the object that holds [`anchor`].
pub(crate) fn anchor_object_ranges() -> Vec<(usize, usize)> {
    struct Search {
        anchor: usize,
        ranges: Vec<(usize, usize)>,
    }

    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `&mut Search` passed to `dl_iterate_phdr`
        // below, alive for the whole call; `info` is valid for this
        // callback, and its `dlpi_phdr` points to `dlpi_phnum` headers.
        let (search, info) = unsafe { (&mut *(data as *mut Search), &*info) };
        // SAFETY: as above: `dlpi_phdr` has `dlpi_phnum` entries.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        let ranges: Vec<(usize, usize)> = headers
            .iter()
            .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0)
            .map(|h| {
                let start = base.wrapping_add(h.p_vaddr as usize);
                (start, start.wrapping_add(h.p_memsz as usize))
            })
            .collect();
        if ranges
            .iter()
            .any(|&(start, end)| (start..end).contains(&search.anchor))
        {
            search.ranges = ranges;
            return 1; // found: stop iterating
        }
        0
    }

    let mut search = Search {
        anchor: anchor as fn() as usize,
        ranges: Vec::new(),
    };
    // SAFETY: `visit` matches the callback type and only uses `data` as the
    // `Search` we pass, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(visit), &mut search as *mut Search as *mut libc::c_void);
    }
    search.ranges
}

/// Asks the kernel to kill this process when the parent thread that started
/// it exits (its driver, which lives as long as its worker does).
///
/// A parent that died before this call cannot be noticed by the signal, but
/// it closed the worker's task pipe, so the worker reads end of file and
/// exits all the same.
pub(crate) fn die_with_parent() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `prctl(PR_SET_PDEATHSIG)` takes a signal number and
        // changes only this process's own attribute.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes this worker process keep the memory it frees for its next
/// allocations rather than give it back to the system at once (glibc
/// only; elsewhere nothing changes).
///
/// glibc maps every allocation over 32 MiB on its own and unmaps it when
/// freed, so each large argument a worker decodes (64 MiB, say) was
/// faulted in and zeroed page by page, task after task. Served from the
/// heap instead, and the heap trimmed only past 256 MiB (`KEPT`), a run of
/// large tasks reuses the same warm memory. The cost: a worker keeps up to
/// 256 MiB of freed memory (`max_tasks_per_child` bounds a worker's
/// life, if that matters).
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// How much freed memory a worker may keep.
        const KEPT: libc::c_int = 256 << 20;
        // SAFETY: `mallopt` only changes glibc's allocation policy for
        // this process (under the allocator's own lock); it is called
        // before the worker runs any task, and fails harmlessly (returning
        // 0) on a value it does not take.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT);
            // One arena for the whole worker: the thread that runs tasks
            // would otherwise get an arena of its own, whose heaps are at
            // most 64 MiB, so a large allocation there is mapped and
            // unmapped every time whatever the settings above say.
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Waits until `fd` is readable (or closed) or `timeout` passes; `true` if
/// it is readable. `None` waits without a limit.
pub(crate) fn wait_readable(
    fd: &impl AsRawFd,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    region::poll_readable(&[fd.as_raw_fd()], timeout).map(|ready| ready != 0)
}

/// How large the main thread's stack may grow (`RLIMIT_STACK`), for the
/// worker's task thread: 8 MiB where it is unlimited, at most 1 GiB.
pub(crate) fn main_stack_size() -> usize {
    const DEFAULT: usize = 8 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` into the one we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return DEFAULT;
    }
    usize::try_from(limit.rlim_cur).map_or(DEFAULT, |size| size.clamp(1 << 20, 1 << 30))
}

/// Blocks `SIGPIPE` for the calling thread, so that writing to a pipe
/// whose reader died fails with `EPIPE` instead of killing the process.
pub(crate) fn block_sigpipe() {
    // SAFETY: `set` is a local signal set, initialised by `sigemptyset`
    // before use; `pthread_sigmask` only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// 16 random bytes from the kernel, as the per-pool token.
pub(crate) fn random_token() -> io::Result<u128> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled rest of
        // `bytes`.
        let rc = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        } else {
            filled += rc as usize;
        }
    }
    Ok(u128::from_le_bytes(bytes))
}

/// Sends `signal` to process `pid`. A process that is already gone is not
/// an error.
pub(crate) fn kill(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: `kill` takes plain integers; a wrong pid is an error return,
    // never undefined behaviour. Callers only pass pids of their own
    // children that they have not reaped, so the pid cannot be reused.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Takes ownership of descriptor `fd`, inherited from the parent, as a file.
/// `None` if it is not an open descriptor.
pub(crate) fn inherited_file(fd: RawFd) -> Option<File> {
    inherited_fd(fd).map(File::from)
}

/// Takes ownership of descriptor `fd`, inherited from the parent. `None` if
/// it is not an open descriptor.
pub(crate) fn inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // Descriptors 0–2 are the user's standard streams, never ours.
    if fd < 3 {
        return None;
    }
    // Close-on-exec again, so that a task that starts a program does not
    // hand it the protocol's pipes: the parent must see end of file when
    // this worker dies, whatever its children do. Fails if `fd` is not open.
    // SAFETY: `fcntl(F_SETFD)` only changes the flags of descriptor `fd`.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return None;
    }
    // SAFETY: the descriptor is open, and this worker's start-up code is the
    // only thing that knows it: it came from the environment marker (or the
    // parent's greeting), which is read once, so nothing else owns or
    // closes it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs the worker check before `main`, so that test binaries, benches and
/// doctests (which have no `main` of their own that could call
/// [`init`](crate::init)) serve as workers too. In a process that is not a
/// worker it only reads one environment variable.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static RUN_WORKER_BEFORE_MAIN: extern "C" fn() = {
    extern "C" fn before_main() {
        super::entry::run_if_worker();
    }
    before_main
};

/// The most descriptors one `SCM_RIGHTS` message may carry (Linux's
/// `SCM_MAX_FD`).
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 253;

/// A connected pair of Unix `SOCK_SEQPACKET` sockets, both close-on-exec:
/// messages keep their boundaries, and can carry descriptors.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors `socketpair` writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `socketpair` succeeded: two new descriptors nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether `fd` is a Unix `SOCK_SEQPACKET` socket.
pub(crate) fn is_seqpacket(fd: &impl AsRawFd) -> bool {
    let option = |name: libc::c_int| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid places for an int option.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    };
    option(libc::SO_TYPE) == Some(libc::SOCK_SEQPACKET)
        && option(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
}

/// Room for the control message of [`MAX_FDS_PER_MESSAGE`] descriptors,
/// aligned as `cmsghdr` needs.
#[repr(C, align(8))]
struct ControlBuffer([u8; 2048]);

fn control_space(fds: usize) -> usize {
    // SAFETY: `CMSG_SPACE` is arithmetic on its argument.
    unsafe { libc::CMSG_SPACE((fds * std::mem::size_of::<RawFd>()) as libc::c_uint) as usize }
}

/// Sends `bytes` as one message on the socket `socket`, with `fds` (at
/// most [`MAX_FDS_PER_MESSAGE`]) attached. `MSG_NOSIGNAL`: a closed peer is
/// `EPIPE`, never `SIGPIPE`.
pub(crate) fn send_with_fds(
    socket: &impl AsRawFd,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors",
        ));
    }
    let mut control = ControlBuffer([0; 2048]);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed `msghdr` is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let space = control_space(fds.len());
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `msg_control` points to `space` bytes (≤ 2048 for 253
        // descriptors) of an 8-aligned buffer that outlives the call, so
        // `CMSG_FIRSTHDR` is non-null and `CMSG_DATA` has room for
        // `fds.len()` descriptors, written unaligned.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len =
                libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as libc::c_uint) as _;
            let data = libc::CMSG_DATA(header).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` describes `bytes` and the control buffer, both
        // alive through the call; the kernel only reads them.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Receives one message from `socket` into `buffer`; the descriptors it
/// carried are appended to `fds` (close-on-exec). Returns the message's
/// length: 0 means the peer closed (the crate never sends empty
/// messages). A message longer than `buffer`, or with more descriptors
/// than fit, is an `InvalidData` error (its excess descriptors closed by
/// the kernel).
pub(crate) fn recv_with_fds(
    socket: &impl AsRawFd,
    buffer: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut control = ControlBuffer([0; 2048]);
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: a zeroed `msghdr` is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control_space(MAX_FDS_PER_MESSAGE) as _;
    let got = loop {
        // SAFETY: `msg` describes `buffer` and the control buffer, both
        // writable and alive through the call.
        let got = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if got >= 0 {
            break got as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    // SAFETY: the kernel filled `msg_controllen` bytes of the control
    // buffer with well-formed headers; `CMSG_FIRSTHDR`/`CMSG_NXTHDR` walk
    // them within that length, and an SCM_RIGHTS header's data holds
    // `(cmsg_len - CMSG_LEN(0)) / 4` descriptors, new in this process and
    // owned by nobody else, read unaligned.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                for i in 0..data_len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message or its descriptors were cut short",
        ));
    }
    Ok(got)
}
