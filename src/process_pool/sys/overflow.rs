//! Telling a task's stack overflow from other crashes, in a worker.
//!
//! A worker is caught before `main` (see `entry`), before Rust's runtime
//! installs its own stack-overflow handler, so an overflow would end it as
//! a bare `SIGSEGV`. [`report_overflows`] installs a handler of its own for
//! the thread that runs tasks: on an alternate signal stack, it checks
//! whether the faulting address lies at the edge of that thread's stack;
//! if so it prints Rust's usual line and sets the shared region's death
//! word, for the parent to report [`Error::StackOverflow`](crate::Error).
//! Either way it then lets the signal take its default course (the
//! handler is one-shot), so the worker dies of the signal as before.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::OnceLock;

/// The death word's value for a stack overflow.
pub(crate) const OVERFLOWED: u32 = 1;

/// How far below the lowest byte of the stack a fault still counts as an
/// overflow (the guard and the kernel's gap below a growing stack).
const BELOW: usize = 2 << 20;

/// How large the alternate signal stack is.
const ALT_STACK: usize = 64 * 1024;

thread_local! {
    /// The task thread's stack, lowest and highest address (0, 0 on other
    /// threads: their faults are never taken for overflows).
    static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Where the handler records an overflow: the region's death word.
static DEATH: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());

/// The line the handler prints, made before any fault.
static MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();

/// Installs the report for the calling thread, which runs the tasks. The
/// death word must stay valid until [`stop_reporting`] (the region lives
/// as long as the worker serves).
pub(crate) fn report_overflows(death: &AtomicU32) {
    let name = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned();
    let _ = MESSAGE.set(
        format!(
            "\nthread '{name}' has overflowed its stack\nfatal runtime error: stack overflow\n"
        )
        .into_bytes(),
    );
    // ORDERING: Release: the handler on this thread reads it with Acquire;
    // the store happens before any fault it could report.
    DEATH.store(std::ptr::from_ref(death).cast_mut(), Ordering::Release);
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before it is
    // read and destroyed once; the out-parameters are locals.
    let (low, size) = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if got != 0 {
            return;
        }
        (addr as usize, size)
    };
    STACK.with(|stack| stack.set((low.saturating_sub(BELOW), low + size.min(64 * 1024))));
    // SAFETY: a fresh private anonymous mapping for the alternate stack,
    // handed to `sigaltstack` and never unmapped (it serves until the
    // worker exits); `action` is a local, zeroed then filled, whose mask is
    // initialised by `sigemptyset`; the handler is an `extern "C"` function
    // of the signature `SA_SIGINFO` asks for.
    unsafe {
        let alt = libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if alt == libc::MAP_FAILED {
            return;
        }
        let stack = libc::stack_t {
            ss_sp: alt,
            ss_flags: 0,
            ss_size: ALT_STACK,
        };
        if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
            return;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_fault as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Stops reporting: the death word is about to go.
pub(crate) fn stop_reporting() {
    // ORDERING: Release, paired with the handler's Acquire.
    DEATH.store(std::ptr::null_mut(), Ordering::Release);
}

/// The handler. Only async-signal-safe work: a thread-local read, atomic
/// loads and stores, one `write`.
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid `siginfo_t` for SA_SIGINFO; for
    // SIGSEGV and SIGBUS `si_addr` is the faulting address.
    let address = unsafe { (*info).si_addr() } as usize;
    let (low, high) = STACK.with(Cell::get);
    if low <= address && address < high {
        if let Some(message) = MESSAGE.get() {
            // SAFETY: `write` is async-signal-safe; the bytes are a live
            // static buffer.
            unsafe {
                libc::write(2, message.as_ptr().cast(), message.len());
            }
        }
        // ORDERING: Acquire pairs with the Release that set it.
        let death = DEATH.load(Ordering::Acquire);
        if !death.is_null() {
            // SAFETY: a non-null pointer is the region's death word, valid
            // until `stop_reporting`, which runs only after the last task.
            // ORDERING: Release: the parent reads it after the worker died.
            unsafe { (*death).store(OVERFLOWED, Ordering::Release) };
        }
    }
    // SA_RESETHAND put the default action back. A fault would happen again
    // on return; a signal sent (`raise`, `kill`) would not, so it is sent
    // again: pending while this handler runs, it ends the worker on return.
    // SAFETY: `raise` is async-signal-safe.
    unsafe {
        libc::raise(signal);
    }
}
