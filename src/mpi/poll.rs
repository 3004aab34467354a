//! How the MPI threads wait: a bounded spin, then sleeps that grow.
//!
//! MPI here is polled (`MPI_Improbe`), and the thread that polls also waits
//! on a channel of its own work. Waking a sleeping thread costs tens of
//! microseconds to milliseconds on these machines, so a thread that just
//! did something spins a little before it sleeps; one that has been idle
//! a while sleeps up to [`MAX_NAP`] between polls, so that idle ranks leave
//! their cores to the ranks that work (`mpirun -n 3` on 2 cores).

use std::time::{Duration, Instant};

/// How long a thread that did something polls without sleeping (FIELD-NOTES:
/// with 50 µs of spin a no-op round trip took 0.4–3 ms here, threads being
/// slow to wake; 1 ms covers the gap between a reply and the next task).
const SPIN: Duration = Duration::from_millis(1);
/// The first sleep after the spin.
const FIRST_NAP: Duration = Duration::from_micros(20);
/// The longest sleep between polls.
pub(crate) const MAX_NAP: Duration = Duration::from_millis(1);

/// A poller's idleness.
#[derive(Debug)]
pub(crate) struct Backoff {
    busy_at: Instant,
    nap: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            busy_at: Instant::now(),
            nap: FIRST_NAP,
        }
    }

    /// Something happened: spin again.
    pub(crate) fn busy(&mut self) {
        self.busy_at = Instant::now();
        self.nap = FIRST_NAP;
    }

    /// Nothing happened: how long to wait before polling again (zero while
    /// spinning).
    pub(crate) fn idle(&mut self) -> Duration {
        if self.busy_at.elapsed() < SPIN {
            // A yield, not a pause: a thread woken on this core (the driver
            // a reply was handed to) runs at once, rather than after the
            // scheduler's wake-up granularity (~1 ms) when every core spins.
            std::thread::yield_now();
            return Duration::ZERO;
        }
        self.nap()
    }

    /// The next sleep of a poller that never spins (rank 0's MPI thread,
    /// which polls only while no driver does): [`FIRST_NAP`] after
    /// something happened, doubling up to [`MAX_NAP`].
    pub(crate) fn nap(&mut self) -> Duration {
        let nap = self.nap;
        self.nap = (self.nap * 2).min(MAX_NAP);
        nap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_poller_spins_then_naps_longer_and_longer_up_to_the_cap() {
        let mut backoff = Backoff::new();
        assert_eq!(backoff.idle(), Duration::ZERO, "it spins at first");
        backoff.busy_at -= SPIN;
        let naps: Vec<Duration> = (0..12).map(|_| backoff.idle()).collect();
        assert_eq!(naps[0], FIRST_NAP);
        assert!(naps.windows(2).all(|w| w[0] <= w[1]), "{naps:?}");
        assert_eq!(*naps.last().unwrap(), MAX_NAP);
        backoff.busy();
        assert_eq!(backoff.idle(), Duration::ZERO, "busy again: it spins");
    }
}
