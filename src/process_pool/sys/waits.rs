//! [`RunQueueWait`]: how long this thread has waited for a CPU while it
//! could have run, from the kernel's scheduler statistics
//! (`/proc/thread-self/schedstat`, its second number, in nanoseconds).
//!
//! A worker reports how long a chunk took, and `map` sizes the next chunks
//! from it. Wall time alone counts the time the worker sat preempted by
//! other processes (on a loaded or oversubscribed machine, most of it),
//! which made chunks several times smaller than the target, and their
//! per-chunk costs several times larger. Taking out the run-queue wait
//! leaves what the chunk costs with a CPU to itself: its running time plus
//! any time it chose to sleep (an item that waits for I/O still counts).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// Reads this thread's run-queue wait; `None` where the kernel does not
/// keep it (then chunks are timed by the wall clock alone).
#[derive(Debug)]
pub(crate) struct RunQueueWait {
    file: Option<File>,
}

impl RunQueueWait {
    /// Opens the statistics of the calling thread (the one that will read
    /// them).
    pub(crate) fn of_this_thread() -> Self {
        RunQueueWait {
            file: File::open("/proc/thread-self/schedstat").ok(),
        }
    }

    /// The total time this thread has waited to run, so far.
    pub(crate) fn total(&self) -> Option<Duration> {
        let file = self.file.as_ref()?;
        let mut buffer = [0u8; 96];
        let len = file.read_at(&mut buffer, 0).ok()?;
        let text = std::str::from_utf8(buffer.get(..len)?).ok()?;
        let nanos: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_never_goes_down() {
        if !std::path::Path::new("/proc/thread-self/schedstat").exists() {
            // A kernel without scheduler statistics: nothing to check.
            return;
        }
        // Where the kernel keeps them, they must read: a parsing mistake
        // would otherwise time every chunk by the wall clock unnoticed.
        let waits = RunQueueWait::of_this_thread();
        let first = waits.total().expect("the statistics the kernel keeps read");
        // Yield a few times, to give the scheduler a chance to count.
        for _ in 0..100 {
            std::thread::yield_now();
        }
        assert!(waits.total().expect("read once, readable again") >= first);
    }
}
