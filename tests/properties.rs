//! Property test: random interleavings, across threads, of completing,
//! cancelling, waiting on (`wait`, `as_completed`, `result`, `.await`),
//! registering callbacks on and dropping futures resolve every future
//! exactly once and wake every waiter.
//!
//! Each case starts a pool and submits up to eight tasks, each held at its
//! own gate. Two or three threads then run random scripts of operations on
//! those futures at the same time. At the end every gate opens and the test
//! checks that every waiter returned, every callback ran exactly once, and
//! every cancelled task never ran while every other one did.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use concurrent_futures::{as_completed, wait, Error, Future, ReturnWhen, ThreadPoolExecutor};
use proptest::prelude::*;

mod common;
use common::block_on;

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(30);

/// One step of a script.
#[derive(Debug, Clone)]
enum Op {
    /// Open task `i`'s gate: it finishes (once it has started).
    Release(usize),
    /// Cancel future `i`.
    Cancel(usize),
    /// Add a counting callback to future `i`.
    Callback(usize),
    /// Hand the futures with these indices to a thread that `wait`s on them.
    Wait(Vec<usize>, ReturnWhen),
    /// Hand them to a thread that iterates `as_completed` over them.
    AsCompleted(Vec<usize>),
    /// Hand future `i` to a thread that blocks in `result()`.
    Result(usize),
    /// Hand future `i` to a thread that `.await`s it.
    Await(usize),
    /// Drop the handle of future `i`.
    Drop(usize),
}

#[derive(Debug, Clone)]
struct Case {
    workers: usize,
    /// Whether task `i` panics instead of returning `i`.
    panics: Vec<bool>,
    scripts: Vec<Vec<Op>>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=8, 1usize..=3).prop_flat_map(|(n, workers)| {
        let subset = proptest::collection::vec(0..n, 1..=n);
        let return_when = prop_oneof![
            Just(ReturnWhen::FirstCompleted),
            Just(ReturnWhen::FirstException),
            Just(ReturnWhen::AllCompleted),
        ];
        let op = prop_oneof![
            3 => (0..n).prop_map(Op::Release),
            3 => (0..n).prop_map(Op::Cancel),
            2 => (0..n).prop_map(Op::Callback),
            1 => (subset.clone(), return_when).prop_map(|(s, r)| Op::Wait(s, r)),
            1 => subset.prop_map(Op::AsCompleted),
            1 => (0..n).prop_map(Op::Result),
            1 => (0..n).prop_map(Op::Await),
            1 => (0..n).prop_map(Op::Drop),
        ];
        let scripts = proptest::collection::vec(proptest::collection::vec(op, 1..16), 2..=3);
        let panics = proptest::collection::vec(proptest::bool::weighted(0.25), n);
        (Just(workers), panics, scripts).prop_map(|(workers, panics, scripts)| Case {
            workers,
            panics,
            scripts,
        })
    })
}

/// What every future's own first callback, added at submission, saw.
struct Record {
    /// How many times the callback ran.
    calls: AtomicUsize,
    /// Whether the future was cancelled when it ran.
    cancelled: AtomicBool,
}

/// The state the script threads share.
struct Harness {
    /// The handles not yet handed to a waiter or dropped.
    futures: Mutex<Vec<Option<Future<usize>>>>,
    /// Each task's gate; `None` once opened.
    gates: Vec<Mutex<Option<Sender<()>>>>,
    /// Whether `cancel()` returned true for the future.
    cancel_succeeded: Vec<AtomicBool>,
    /// The counters of the callbacks the scripts added.
    callbacks: Mutex<Vec<Arc<AtomicUsize>>>,
    /// Where waiter threads report; one report per waiter.
    reports: Sender<Report>,
    waiters: AtomicUsize,
}

/// What a waiter thread saw, checked by the test thread.
enum Report {
    Wait {
        return_when: ReturnWhen,
        given: usize,
        done: Vec<Future<usize>>,
        not_done: Vec<Future<usize>>,
    },
    AsCompleted {
        given: usize,
        yielded: Vec<Future<usize>>,
        all_done_when_yielded: bool,
    },
    Outcome(Result<usize, Error>),
}

impl Harness {
    fn take(&self, i: usize) -> Option<Future<usize>> {
        self.futures.lock().unwrap()[i].take()
    }

    fn take_all(&self, indices: &[usize]) -> Vec<Future<usize>> {
        let mut futures = self.futures.lock().unwrap();
        let unique: HashSet<usize> = indices.iter().copied().collect();
        unique
            .into_iter()
            .filter_map(|i| futures[i].take())
            .collect()
    }

    fn spawn_waiter(&self, waiter: impl FnOnce() -> Report + Send + 'static) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let reports = self.reports.clone();
        thread::spawn(move || {
            let _ = reports.send(waiter());
        });
    }

    fn run(&self, op: &Op) {
        match op {
            Op::Release(i) => drop(self.gates[*i].lock().unwrap().take()),
            Op::Cancel(i) => {
                let futures = self.futures.lock().unwrap();
                if let Some(future) = &futures[*i] {
                    if future.cancel() {
                        assert!(future.cancelled() && future.done() && !future.running());
                        self.cancel_succeeded[*i].store(true, Ordering::SeqCst);
                    }
                }
            }
            Op::Callback(i) => {
                let futures = self.futures.lock().unwrap();
                if let Some(future) = &futures[*i] {
                    let counter = Arc::new(AtomicUsize::new(0));
                    self.callbacks.lock().unwrap().push(Arc::clone(&counter));
                    future.add_done_callback(move |_| {
                        counter.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
            Op::Wait(indices, return_when) => {
                let futures = self.take_all(indices);
                if !futures.is_empty() {
                    let return_when = *return_when;
                    self.spawn_waiter(move || {
                        let given = futures.len();
                        let outcome = wait(futures, return_when, None);
                        Report::Wait {
                            return_when,
                            given,
                            done: outcome.done,
                            not_done: outcome.not_done,
                        }
                    });
                }
            }
            Op::AsCompleted(indices) => {
                let futures = self.take_all(indices);
                if !futures.is_empty() {
                    self.spawn_waiter(move || {
                        let given = futures.len();
                        let mut all_done_when_yielded = true;
                        let yielded = as_completed(futures)
                            .inspect(|f| all_done_when_yielded &= f.done())
                            .collect();
                        Report::AsCompleted {
                            given,
                            yielded,
                            all_done_when_yielded,
                        }
                    });
                }
            }
            Op::Result(i) => {
                if let Some(future) = self.take(*i) {
                    self.spawn_waiter(move || Report::Outcome(future.result()));
                }
            }
            Op::Await(i) => {
                if let Some(future) = self.take(*i) {
                    self.spawn_waiter(move || Report::Outcome(block_on(future)));
                }
            }
            Op::Drop(i) => drop(self.take(*i)),
        }
    }
}

/// Which task a finished future belongs to: its value, or the index in its
/// panic message. `None` for a cancelled future.
fn owner(outcome: &Result<usize, Error>) -> Option<usize> {
    match outcome {
        Ok(i) => Some(*i),
        Err(Error::Panicked { message, .. }) => message.strip_prefix("task ")?.parse().ok(),
        Err(_) => None,
    }
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let n = case.panics.len();
    // Declared before the harness so that, if an assertion fails, the
    // harness (and with it every gate) is dropped first and the pool's drop
    // does not wait on a closed gate.
    let pool = ThreadPoolExecutor::new(case.workers);
    let ran: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let records: Arc<Vec<Record>> = Arc::new(
        (0..n)
            .map(|_| Record {
                calls: AtomicUsize::new(0),
                cancelled: AtomicBool::new(false),
            })
            .collect(),
    );
    let (reports_tx, reports): (Sender<Report>, Receiver<Report>) = mpsc::channel();
    let mut gates = Vec::new();
    let mut futures = Vec::new();
    for (i, &panics) in case.panics.iter().enumerate() {
        let (release, gate) = mpsc::channel::<()>();
        let ran = Arc::clone(&ran);
        let future = pool.submit(move || {
            ran[i].store(true, Ordering::SeqCst);
            let _ = gate.recv();
            if panics {
                panic!("task {i}");
            }
            i
        });
        let records = Arc::clone(&records);
        future.add_done_callback(move |f| {
            records[i].cancelled.store(f.cancelled(), Ordering::SeqCst);
            records[i].calls.fetch_add(1, Ordering::SeqCst);
        });
        gates.push(Mutex::new(Some(release)));
        futures.push(Some(future));
    }
    let harness = Arc::new(Harness {
        futures: Mutex::new(futures),
        gates,
        cancel_succeeded: (0..n).map(|_| AtomicBool::new(false)).collect(),
        callbacks: Mutex::new(Vec::new()),
        reports: reports_tx,
        waiters: AtomicUsize::new(0),
    });

    // The scripts, started together.
    let start = Arc::new(Barrier::new(case.scripts.len()));
    let scripts: Vec<_> = case
        .scripts
        .iter()
        .cloned()
        .map(|script| {
            let harness = Arc::clone(&harness);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for op in &script {
                    harness.run(op);
                }
            })
        })
        .collect();
    for script in scripts {
        script.join().expect("a script thread failed");
    }

    // Open every gate: now every task can finish, so every waiter must
    // return.
    for gate in &harness.gates {
        drop(gate.lock().unwrap().take());
    }
    let waiters = harness.waiters.load(Ordering::SeqCst);
    let mut returned = Vec::new();
    for _ in 0..waiters {
        let report = reports.recv_timeout(HANG);
        prop_assert!(report.is_ok(), "a waiter never returned");
        returned.push(report.unwrap());
    }
    // Every task has run or been cancelled, every callback has run.
    pool.shutdown();

    let cancelled = |i: usize| records[i].cancelled.load(Ordering::SeqCst);
    for i in 0..n {
        prop_assert_eq!(
            records[i].calls.load(Ordering::SeqCst),
            1,
            "future {} resolved a wrong number of times",
            i
        );
        prop_assert_eq!(
            cancelled(i),
            !ran[i].load(Ordering::SeqCst),
            "future {}: cancelled must mean never ran",
            i
        );
        if harness.cancel_succeeded[i].load(Ordering::SeqCst) {
            prop_assert!(cancelled(i), "future {}: cancel() said true", i);
        }
    }
    for counter in harness.callbacks.lock().unwrap().iter() {
        prop_assert_eq!(
            counter.load(Ordering::SeqCst),
            1,
            "a callback ran a wrong number of times"
        );
    }

    // Gather every outcome: from the waiters and from the handles kept.
    let mut outcomes = Vec::new();
    for report in returned {
        match report {
            Report::Wait {
                return_when,
                given,
                done,
                not_done,
            } => {
                prop_assert_eq!(done.len() + not_done.len(), given);
                let failed = done
                    .iter()
                    .any(|f| matches!(f.exception(), Some(e) if e != Error::Cancelled));
                match return_when {
                    ReturnWhen::FirstCompleted => prop_assert!(!done.is_empty()),
                    ReturnWhen::FirstException => prop_assert!(failed || not_done.is_empty()),
                    ReturnWhen::AllCompleted => prop_assert!(not_done.is_empty()),
                }
                for future in done.into_iter().chain(not_done) {
                    prop_assert!(future.done());
                    outcomes.push(future.result());
                }
            }
            Report::AsCompleted {
                given,
                yielded,
                all_done_when_yielded,
            } => {
                prop_assert_eq!(yielded.len(), given, "as_completed lost a future");
                prop_assert!(
                    all_done_when_yielded,
                    "as_completed yielded an unfinished future"
                );
                outcomes.extend(yielded.into_iter().map(Future::result));
            }
            Report::Outcome(outcome) => outcomes.push(outcome),
        }
    }
    let kept: Vec<Future<usize>> = harness
        .futures
        .lock()
        .unwrap()
        .drain(..)
        .flatten()
        .collect();
    for future in kept {
        prop_assert!(future.done());
        outcomes.push(future.result());
    }

    // Every outcome is the one its task had, and no task's is seen twice.
    let mut owners = HashSet::new();
    let mut cancelled_outcomes = 0;
    for outcome in outcomes {
        match owner(&outcome) {
            Some(i) => {
                prop_assert!(owners.insert(i), "task {}'s outcome seen twice", i);
                prop_assert!(!cancelled(i));
                if case.panics[i] {
                    prop_assert!(
                        matches!(outcome, Err(Error::Panicked { .. })),
                        "task {} should have panicked: {:?}",
                        i,
                        outcome
                    );
                } else {
                    prop_assert_eq!(outcome, Ok(i));
                }
            }
            None => {
                prop_assert_eq!(outcome, Err(Error::Cancelled));
                cancelled_outcomes += 1;
            }
        }
    }
    let cancelled_tasks = (0..n).filter(|&i| cancelled(i)).count();
    prop_assert!(cancelled_outcomes <= cancelled_tasks);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_future_resolves_once_and_wakes_every_waiter(case in case()) {
        run_case(&case)?;
    }
}
