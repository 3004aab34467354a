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
    /// Whether the wait after the last event spins ([`Backoff::busy`]) or
    /// takes short naps ([`Backoff::rested`]).
    spin: bool,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            busy_at: Instant::now(),
            nap: FIRST_NAP,
            spin: true,
        }
    }

    /// Something happened: spin again.
    pub(crate) fn busy(&mut self) {
        self.busy_at = Instant::now();
        self.nap = FIRST_NAP;
        self.spin = true;
    }

    /// A long task ended: poll again, but with [`FIRST_NAP`]s for as long
    /// as a spin would last, then naps that grow. What comes next (rank
    /// 0's next task) is a round trip away, and a worker rank that spun
    /// through it would hold its core while rank 0's driver, woken to send
    /// that task, waits for one: with every core busy (`mpirun -n 3` on 2
    /// cores) that wait took ~2 ms a task, a third of the time; a rank that
    /// naps leaves its core idle, where the driver runs at once.
    pub(crate) fn rested(&mut self) {
        self.busy();
        self.spin = false;
    }

    /// Nothing happened: how long to wait before polling again (zero while
    /// spinning).
    pub(crate) fn idle(&mut self) -> Duration {
        if self.busy_at.elapsed() < SPIN && !self.spin {
            return FIRST_NAP;
        }
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
        backoff.rested();
        assert_eq!(backoff.idle(), FIRST_NAP, "after a long task: short naps");
        assert_eq!(
            backoff.idle(),
            FIRST_NAP,
            "for as long as a spin would last"
        );
    }
}
