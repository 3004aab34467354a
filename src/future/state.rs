//! The state a [`Future`] and its [`Promise`](super::Promise) share: one
//! phase behind a mutex, the waiters to tell when it is done, and the one
//! way a pending future is cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Callback, Future};
use crate::wait::DoneQueue;
use crate::Error;

/// The state a [`Future`] and its [`Promise`] share.
///
/// `X` is what else the allocation carries: the thread pool's task itself
/// (see [`Task`](super::Task)), or nothing (`()`). A [`Future`] sees it as
/// `dyn Send` (the default), which it never looks at: only dropped.
pub(super) struct Inner<T, X: ?Sized = dyn Send> {
    /// Signalled once, when the future becomes done.
    pub(super) done: Condvar,
    /// Set (under the lock) when the future becomes done, so that a waiter
    /// can spin on it for a moment without taking the lock.
    pub(super) is_done: AtomicBool,
    pub(super) state: Mutex<State<T, X>>,
}

/// How long a waiter spins before it sleeps on the condvar. Waking a
/// sleeping thread costs tens of microseconds on a virtual machine whose
/// other CPU is idle; most results of short tasks arrive sooner than that.
/// Spinning is bounded; on a single CPU it yields instead (see [`pause`]).
pub(super) const SPIN: Duration = Duration::from_micros(30);

/// Whether spinning can help: more than one CPU.
pub(crate) fn spinning_helps() -> bool {
    static MANY_CPUS: OnceLock<bool> = OnceLock::new();
    *MANY_CPUS.get_or_init(|| num_cpus::get() > 1)
}

/// One round of a bounded spin-wait: a few pause instructions with more
/// than one CPU; on one CPU (a process bound to a core, as MPI binds its
/// ranks) a yield, which hands the CPU to the thread waited for, if it is
/// runnable there, with no futex wake on either side: a sleep and its
/// wake-up cost two system calls and two switches, ~4 µs here against a
/// yield's ~2 (MPI no-op round trip with rank 0 bound to a core, same
/// run: 15.5 → 13.3 µs).
pub(crate) fn pause() {
    if spinning_helps() {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    } else {
        std::thread::yield_now();
    }
}

pub(super) struct State<T, X: ?Sized = dyn Send> {
    pub(super) phase: Phase<T>,
    /// Who wants to hear when the future is done; boxed on the first
    /// registration, so that a future nobody registers with stays small
    /// (a thread pool's task is one allocation of this state).
    pub(super) waiters: Option<Box<Waiters<T>>>,
    /// The task the allocation carries, if any (see [`Inner`]).
    pub(super) task: X,
}

pub(super) enum Phase<T> {
    Pending,
    /// Handed to a worker that may not have started it yet (the process
    /// pool's next task for a busy worker): pending for every purpose, but
    /// cancelling it must first take it back from the worker.
    Handed(Arc<dyn Claim>),
    Running,
    /// `None` once the value has been taken out.
    Finished(Option<T>),
    /// Boxed: an error is rare and larger than most values.
    Failed(Box<Error>),
    Cancelled,
}

impl<T> Phase<T> {
    pub(super) fn is_done(&self) -> bool {
        matches!(
            self,
            Phase::Finished(_) | Phase::Failed(_) | Phase::Cancelled
        )
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Pending | Phase::Handed(_) => "pending",
            Phase::Running => "running",
            Phase::Finished(Some(_)) => "finished",
            Phase::Finished(None) => "finished (result taken)",
            Phase::Failed(_) => "failed",
            Phase::Cancelled => "cancelled",
        }
    }

    /// The done phase for a task's outcome.
    pub(super) fn from_outcome(outcome: Result<T, Error>) -> Self {
        match outcome {
            Ok(value) => Phase::Finished(Some(value)),
            Err(Error::Cancelled) => Phase::Cancelled,
            Err(error) => Phase::Failed(Box::new(error)),
        }
    }

    /// A copy of the outcome of a done phase; the value stays.
    pub(super) fn peek(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        match self {
            Phase::Finished(Some(value)) => Ok(value.clone()),
            Phase::Finished(None) => Err(Error::AlreadyRetrieved),
            Phase::Failed(error) => Err((**error).clone()),
            Phase::Cancelled => Err(Error::Cancelled),
            Phase::Pending | Phase::Handed(_) | Phase::Running => {
                unreachable!("peek() on a future that is not done")
            }
        }
    }

    /// Takes the outcome out of a done phase. The value leaves once; an error
    /// or a cancellation can be read any number of times.
    pub(super) fn take(&mut self) -> Result<T, Error> {
        match self {
            Phase::Finished(value) => value.take().ok_or(Error::AlreadyRetrieved),
            Phase::Failed(error) => Err((**error).clone()),
            Phase::Cancelled => Err(Error::Cancelled),
            Phase::Pending | Phase::Handed(_) | Phase::Running => {
                unreachable!("take() on a future that is not done")
            }
        }
    }
}

/// Cancels a future if its task has not started (see
/// [`Promise::canceller`]).
pub(crate) type Canceller = Arc<dyn Fn() + Send + Sync>;

/// A task handed to a worker that may not have started it: the pool's
/// word on whether it has, and its way of taking the task back. Consulted
/// under the future's lock, only while the future is handed.
pub(crate) trait Claim: Send + Sync {
    /// Takes the task back if the worker has not started it: `true` if it
    /// is taken back and will never run, `false` if the worker started it.
    fn withdraw(&self) -> bool;
    /// Whether the worker has started the task.
    fn started(&self) -> bool;
}

/// A [`wait`](crate::wait) or [`as_completed`](crate::as_completed) call
/// that wants to hear when this future is done: it pushes `index` onto
/// `queue`.
pub(super) struct Listener {
    pub(super) queue: Arc<DoneQueue>,
    pub(super) index: usize,
}

/// Who registered to hear when a future is done.
pub(super) struct Waiters<T> {
    pub(super) callbacks: Vec<Callback<T>>,
    pub(super) listeners: Vec<Listener>,
    pub(super) waker: Option<Waker>,
}

impl<T, X: ?Sized> State<T, X> {
    /// The waiters, boxed now if nobody registered before.
    pub(super) fn waiters(&mut self) -> &mut Waiters<T> {
        self.waiters.get_or_insert_with(|| {
            Box::new(Waiters {
                callbacks: Vec::new(),
                listeners: Vec::new(),
                waker: None,
            })
        })
    }
}

/// What a finished transition hands over, to be acted on outside the lock.
pub(super) struct Notifications<T> {
    pub(super) waiters: Option<Box<Waiters<T>>>,
    pub(super) failed: bool,
}

impl<T, X> Inner<T, X> {
    /// The state of a future in `phase`, carrying `task`.
    pub(super) fn with_task(phase: Phase<T>, task: X) -> Arc<Self> {
        let phase_is_done = phase.is_done();
        Arc::new(Inner {
            done: Condvar::new(),
            is_done: AtomicBool::new(phase_is_done),
            state: Mutex::new(State {
                phase,
                waiters: None,
                task,
            }),
        })
    }
}

impl<T> Inner<T> {
    /// The state of a future in `phase` that carries no task.
    pub(super) fn new(phase: Phase<T>) -> Arc<Self> {
        Inner::<T, ()>::with_task(phase, ())
    }

    /// Spins for at most [`SPIN`] (or until `deadline`) while the future is
    /// not done. Called before sleeping on the condvar; the caller checks
    /// the state under the lock afterwards as usual.
    pub(super) fn spin_briefly(&self, deadline: Option<Instant>) {
        // ORDERING: Acquire pairs with the Release store in `mark_done`; it
        // only decides when to take the lock, which orders everything else.
        if self.is_done.load(Ordering::Acquire) {
            return;
        }
        let start = Instant::now();
        let until = match deadline {
            Some(deadline) => deadline.min(start + SPIN),
            None => start + SPIN,
        };
        loop {
            pause();
            if self.is_done.load(Ordering::Acquire) || Instant::now() >= until {
                return;
            }
        }
    }

    /// Records, under the lock, that the future is done.
    pub(super) fn mark_done(&self) {
        // ORDERING: Release pairs with the Acquire load in `spin_briefly`.
        self.is_done.store(true, Ordering::Release);
        self.done.notify_all();
    }

    /// Moves a not-yet-done future to `phase` (a done phase). Returns what
    /// must be notified, or `None` if the future was already done (the
    /// transition happens once).
    pub(super) fn finish(&self, phase: Phase<T>) -> Option<Notifications<T>> {
        debug_assert!(phase.is_done());
        let mut state = self.state.lock();
        if state.phase.is_done() {
            return None;
        }
        let failed = matches!(phase, Phase::Failed(_));
        state.phase = phase;
        self.mark_done();
        Some(Notifications {
            waiters: state.waiters.take(),
            failed,
        })
    }

    /// Tells everyone who registered interest, then runs the callbacks.
    pub(super) fn notify(self: &Arc<Self>, notes: Notifications<T>) {
        let Some(waiters) = notes.waiters else {
            return;
        };
        let Waiters {
            callbacks,
            listeners,
            waker,
        } = *waiters;
        for listener in listeners {
            listener.queue.push(listener.index, notes.failed);
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        if !callbacks.is_empty() {
            let handle = Future {
                inner: Arc::clone(self),
            };
            for callback in callbacks {
                run_callback(callback, &handle);
            }
        }
    }

    pub(super) fn finish_and_notify(self: &Arc<Self>, phase: Phase<T>) -> bool {
        match self.finish(phase) {
            Some(notes) => {
                self.notify(notes);
                true
            }
            None => false,
        }
    }
}

/// Runs one done-callback, containing its panic: the hook has already
/// reported it, and the future and the thread that runs it stay sound.
pub(super) fn run_callback<T>(callback: Callback<T>, future: &Future<T>) {
    let _ = crate::unwind::catch(|| callback(future), None);
}

/// What [`try_cancel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cancel {
    /// It was pending; this call cancelled it.
    Now,
    /// It was cancelled already.
    Before,
    /// It had started (or finished).
    TooLate,
}

/// Cancels a future that is still pending. Shared by [`Future::cancel`],
/// [`Future::take_over`] and [`Promise::cancel`].
pub(super) fn try_cancel<T>(inner: &Arc<Inner<T>>) -> Cancel {
    let notes = {
        let mut state = inner.state.lock();
        match &state.phase {
            Phase::Cancelled => return Cancel::Before,
            Phase::Pending => {}
            Phase::Handed(claim) => {
                if !claim.withdraw() {
                    // Its worker has started it.
                    state.phase = Phase::Running;
                    return Cancel::TooLate;
                }
            }
            _ => return Cancel::TooLate,
        }
        state.phase = Phase::Cancelled;
        inner.mark_done();
        Notifications {
            waiters: state.waiters.take(),
            failed: false,
        }
    };
    inner.notify(notes);
    Cancel::Now
}
