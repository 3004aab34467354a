//! Waiting for a condition that another process makes true: a futex word
//! with a count of sleepers beside it, never a pthread condition variable
//! (a waiter killed inside `pthread_cond_wait` leaves one broken for every
//! other process).
//!
//! The protocol, for one condition ("the queue is not empty", say):
//!
//! * A waiter, holding the region's mutex, finds the condition false. It
//!   reads the word (`seq`), counts itself in `sleepers`, unlocks, and
//!   sleeps on the word while it still holds `seq` (`FUTEX_WAIT`, shared).
//! * A waker changes the state under the mutex, unlocks, and — only if
//!   `sleepers` is not zero — bumps the word and wakes one sleeper.
//!
//! Both the sleeper count and the state change happen under the mutex, so
//! a waker that unlocks after a waiter counted itself sees the count; a
//! wake that comes before the waiter sleeps has changed the word, and the
//! futex does not sleep. Before it sleeps, a waiter spins for a moment
//! (with more than one CPU) watching the state itself: a hand-off between
//! two running processes then costs no system call at all.
//!
//! A waker can die between its change and its wake (killed right after it
//! unlocked). No sleep is therefore longer than [`SLICE`]: a sleeper then
//! looks again by itself, so a dead process delays the others by that
//! much at most, and never wedges them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::sys;

/// The longest single sleep; see the module docs.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// How long a waiter watches the state before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

/// One condition's futex word and sleeper count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Condition<'a> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) sleepers: &'a AtomicU32,
}

impl Condition<'_> {
    /// Called with the region's mutex held, the condition found false:
    /// the word to sleep on, and this waiter counted as a sleeper. The
    /// caller unlocks, then calls [`sleep`](Self::sleep).
    pub(crate) fn prepare(&self) -> u32 {
        // ORDERING: both under the region's mutex, whose unlock publishes
        // them to the waker (which takes the mutex for its change).
        let seq = self.word.load(Ordering::Relaxed);
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        seq
    }

    /// Sleeps while the word holds `seq`, at most until `deadline` and at
    /// most [`SLICE`]; then uncounts this sleeper. The caller looks at
    /// the state again whatever happened.
    pub(crate) fn sleep(&self, seq: u32, deadline: Option<Instant>) {
        let mut slice = SLICE;
        if let Some(deadline) = deadline {
            slice = slice.min(deadline.saturating_duration_since(Instant::now()));
        }
        if !slice.is_zero() {
            sys::futex_wait(self.word, seq, slice);
        }
        // ORDERING: a count only; the state is read under the mutex.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Called after the state changed (and the mutex was unlocked): wakes
    /// one sleeper, if there is one.
    pub(crate) fn notify(&self) {
        // ORDERING: SeqCst pairs with the waiter's count, which the
        // mutex's unlock/lock already orders before this load when the
        // waiter counted itself first; a waiter that counts itself later
        // sees the new state under the mutex and does not sleep.
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // ORDERING: the bump only has to differ from what a waiter
            // read; the futex call itself orders it.
            self.word.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake(self.word, 1);
        }
    }
}

/// Spins for a moment (with more than one CPU) until `ready` says yes;
/// `true` if it did. `ready` reads atomics only, without the mutex.
pub(crate) fn spin_until(deadline: Option<Instant>, ready: impl Fn() -> bool) -> bool {
    if !crate::future::spinning_helps() {
        return false;
    }
    let start = Instant::now();
    let until = match deadline {
        Some(deadline) => deadline.min(start + SPIN),
        None => start + SPIN,
    };
    loop {
        for _ in 0..32 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= until {
            return false;
        }
    }
}
