//! Property tests: random sequences of `submit`, `cancel`, `map`, dropping
//! a future, opening a task's gate and shutting down, run against both
//! pools, checked against a model of what each must lead to.
//!
//! The invariants, for every task of every sequence:
//!
//! * its future resolves exactly once: the callback added right after
//!   `submit` runs once, whether or not the handle was dropped;
//! * the outcome is the one the model allows: the right value; or
//!   `Cancelled`, only if `cancel()` said so or a cancelling shutdown
//!   found the task queued; or `Shutdown`, exactly for tasks submitted
//!   after a shutdown;
//! * a task ran (it leaves a file) exactly when its outcome is a value:
//!   a cancelled or refused task never ran;
//! * `map` yields the right values in order, or `Shutdown` after a
//!   shutdown;
//! * nothing hangs: a watchdog aborts the run, naming the sequence, if a
//!   case takes more than a minute.
//!
//! Some tasks wait at a gate (a file the sequence creates with `Release`),
//! so that later tasks queue behind them and `cancel` has something to
//! cancel. A `map` or a shutdown would wait for gated tasks forever, so
//! those operations open every gate first.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concurrent_futures::{Chunksize, Error, Future, Map, ProcessPoolExecutor, ThreadPoolExecutor};
use proptest::prelude::*;

mod common;
use common::{wait_for, TempDir};

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

// ------------------------------------------------------------ the tasks

/// A task: its directory, its id, its input, and whether it waits at its
/// gate.
type Task = (String, u64, u64, bool);

/// What every task and map item computes.
fn expected(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// Waits at the gate if it has one, leaves `ran-<id>`, returns the value.
fn work((dir, id, x, gated): Task) -> u64 {
    let dir = Path::new(&dir);
    if gated {
        // 30 s at most, so that a worker never outlives a failed run by
        // long; the test opens every gate before it waits for anything.
        wait_for(
            || dir.join(format!("gate-{id}")).exists(),
            Duration::from_secs(30),
        );
    }
    std::fs::write(dir.join(format!("ran-{id}")), b"ran").expect("leave the ran file");
    expected(x)
}

// ---------------------------------------------------------- both pools

/// The operations the sequences use, on either pool.
trait Executor {
    fn submit_task(&self, task: Task) -> Future<u64>;
    fn map_items(&self, items: Vec<u64>, chunk: NonZeroUsize) -> Map<std::vec::IntoIter<u64>, u64>;
    fn shut_down(&self, cancel: bool);
}

impl Executor for ThreadPoolExecutor {
    fn submit_task(&self, task: Task) -> Future<u64> {
        self.submit(move || work(task))
    }

    fn map_items(&self, items: Vec<u64>, chunk: NonZeroUsize) -> Map<std::vec::IntoIter<u64>, u64> {
        self.map(expected, items).chunksize(Chunksize::Fixed(chunk))
    }

    fn shut_down(&self, cancel: bool) {
        if cancel {
            self.shutdown_cancel();
        } else {
            self.shutdown();
        }
    }
}

impl Executor for ProcessPoolExecutor {
    fn submit_task(&self, task: Task) -> Future<u64> {
        self.submit(work, task)
    }

    fn map_items(&self, items: Vec<u64>, chunk: NonZeroUsize) -> Map<std::vec::IntoIter<u64>, u64> {
        self.map(expected, items).chunksize(Chunksize::Fixed(chunk))
    }

    fn shut_down(&self, cancel: bool) {
        if cancel {
            self.shutdown_cancel();
        } else {
            self.shutdown();
        }
    }
}

// ------------------------------------------------------- the sequences

#[derive(Debug, Clone)]
enum Op {
    /// Submit a task on input `x`, waiting at its gate if `gated`.
    Submit { x: u64, gated: bool },
    /// Open the gate of a gated task (chosen by index, modulo their count).
    Release(usize),
    /// Cancel a task's future (by index, modulo the number of tasks).
    Cancel(usize),
    /// Drop a task's future handle.
    DropFuture(usize),
    /// Open every gate, then `map` over `items` in chunks of `chunk`,
    /// taking the first `take` results and dropping the rest.
    Map {
        items: Vec<u64>,
        chunk: usize,
        take: usize,
    },
    /// Open every gate, then shut down (cancelling queued tasks if
    /// `cancel`).
    Shutdown { cancel: bool },
}

#[derive(Debug, Clone)]
struct Case {
    workers: usize,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    let op = prop_oneof![
        12 => (any::<u64>(), proptest::bool::weighted(0.4))
            .prop_map(|(x, gated)| Op::Submit { x, gated }),
        4 => any::<usize>().prop_map(Op::Release),
        6 => any::<usize>().prop_map(Op::Cancel),
        2 => any::<usize>().prop_map(Op::DropFuture),
        2 => (proptest::collection::vec(any::<u64>(), 0..40), 1usize..8, 0usize..48)
            .prop_map(|(items, chunk, take)| Op::Map { items, chunk, take }),
        1 => any::<bool>().prop_map(|cancel| Op::Shutdown { cancel }),
    ];
    (1usize..=2, proptest::collection::vec(op, 1..32))
        .prop_map(|(workers, ops)| Case { workers, ops })
}

/// What a future's callback saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Value,
    Cancelled,
    Failed(Error),
}

/// The model's and the run's record of one task.
struct Tracked {
    id: u64,
    x: u64,
    gated: bool,
    released: bool,
    future: Option<Future<u64>>,
    /// How often its callback ran, and what it saw the last time.
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Option<Seen>>>,
    /// Submitted after a shutdown: must be refused.
    refused: bool,
    /// `cancel()` returned true.
    cancel_succeeded: bool,
    /// A cancelling shutdown happened while it might still be queued.
    maybe_cancelled: bool,
}

/// Aborts the process, naming the case, if it is not dropped within
/// [`HANG`]: a hang becomes a failure that says what hung.
struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    fn new(what: String) -> Self {
        let (done, wait) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(HANG) {
                eprintln!("state machine case hung for {HANG:?}: {what}");
                std::process::abort();
            }
        });
        Watchdog(Some(done))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}

/// Runs one sequence on `pool` and checks every invariant.
fn run_case(pool: &dyn Executor, dir: &TempDir, case: &Case) -> Result<(), TestCaseError> {
    let _watchdog = Watchdog::new(format!("{case:?}"));
    let mut tasks: Vec<Tracked> = Vec::new();
    let mut shut = false;
    let open = |task: &mut Tracked| {
        if task.gated && !task.released {
            std::fs::write(Path::new(&dir.0).join(format!("gate-{}", task.id)), b"go")
                .expect("open a gate");
            task.released = true;
        }
    };
    for op in &case.ops {
        match op {
            Op::Submit { x, gated } => {
                let id = tasks.len() as u64;
                let future = pool.submit_task((dir.text(), id, *x, *gated));
                let calls = Arc::new(AtomicUsize::new(0));
                let seen = Arc::new(Mutex::new(None));
                let (calls_in, seen_in) = (Arc::clone(&calls), Arc::clone(&seen));
                future.add_done_callback(move |f| {
                    let outcome = if f.cancelled() {
                        Seen::Cancelled
                    } else {
                        match f.exception() {
                            None => Seen::Value,
                            Some(error) => Seen::Failed(error),
                        }
                    };
                    *seen_in.lock().unwrap() = Some(outcome);
                    calls_in.fetch_add(1, Ordering::SeqCst);
                });
                tasks.push(Tracked {
                    id,
                    x: *x,
                    gated: *gated,
                    released: false,
                    future: Some(future),
                    calls,
                    seen,
                    refused: shut,
                    cancel_succeeded: false,
                    maybe_cancelled: false,
                });
            }
            Op::Release(i) => {
                let mut closed: Vec<&mut Tracked> = tasks
                    .iter_mut()
                    .filter(|t| t.gated && !t.released)
                    .collect();
                if !closed.is_empty() {
                    let n = closed.len();
                    open(closed[i % n]);
                }
            }
            Op::Cancel(i) if !tasks.is_empty() => {
                let n = tasks.len();
                let task = &mut tasks[i % n];
                if let Some(future) = &task.future {
                    if future.cancel() {
                        prop_assert!(future.cancelled() && future.done() && !future.running());
                        task.cancel_succeeded = true;
                    }
                }
            }
            Op::DropFuture(i) if !tasks.is_empty() => {
                let n = tasks.len();
                tasks[i % n].future = None;
            }
            Op::Cancel(_) | Op::DropFuture(_) => {}
            Op::Map { items, chunk, take } => {
                tasks.iter_mut().for_each(open);
                let chunk = NonZeroUsize::new(*chunk).expect("a chunk above 0");
                let results: Vec<_> = pool.map_items(items.clone(), chunk).take(*take).collect();
                prop_assert_eq!(results.len(), (*take).min(items.len()));
                for (x, result) in items.iter().zip(results) {
                    let want = if shut {
                        Err(Error::Shutdown)
                    } else {
                        Ok(expected(*x))
                    };
                    prop_assert_eq!(result, want);
                }
            }
            Op::Shutdown { cancel } => {
                tasks.iter_mut().for_each(open);
                if *cancel {
                    for task in tasks.iter_mut() {
                        task.maybe_cancelled = true;
                    }
                }
                pool.shut_down(*cancel);
                shut = true;
                // A waiting shutdown is over only when every task is.
                for task in &tasks {
                    if let Some(future) = &task.future {
                        prop_assert!(future.done(), "task {} not done after shutdown", task.id);
                    }
                }
            }
        }
    }
    tasks.iter_mut().for_each(open);
    pool.shut_down(false);

    for task in &tasks {
        let id = task.id;
        let all_called = wait_for(|| task.calls.load(Ordering::SeqCst) > 0, HANG);
        prop_assert!(all_called, "task {id}'s callback never ran");
        prop_assert_eq!(
            task.calls.load(Ordering::SeqCst),
            1,
            "task {} resolved twice",
            id
        );
        let seen = task.seen.lock().unwrap().clone().expect("recorded");
        let ran = Path::new(&dir.0).join(format!("ran-{id}")).exists();
        prop_assert_eq!(
            ran,
            seen == Seen::Value,
            "task {}: ran {} but {:?}",
            id,
            ran,
            seen
        );
        if task.refused {
            prop_assert_eq!(&seen, &Seen::Failed(Error::Shutdown), "task {}", id);
        } else if task.cancel_succeeded {
            prop_assert_eq!(&seen, &Seen::Cancelled, "task {}", id);
        } else if task.maybe_cancelled {
            prop_assert!(
                matches!(seen, Seen::Value | Seen::Cancelled),
                "task {id}: {seen:?}"
            );
        } else {
            prop_assert_eq!(&seen, &Seen::Value, "task {}", id);
        }
        if let Some(future) = &task.future {
            let result = future.result_timeout(HANG);
            let want = match &seen {
                Seen::Value => Ok(expected(task.x)),
                Seen::Cancelled => Err(Error::Cancelled),
                Seen::Failed(error) => Err(error.clone()),
            };
            prop_assert_eq!(result, want, "task {}", id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn thread_pool_sequences_keep_every_invariant(case in case()) {
        let dir = TempDir::new("machines", "threads");
        let pool = ThreadPoolExecutor::new(case.workers);
        run_case(&pool, &dir, &case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn process_pool_sequences_keep_every_invariant(case in case()) {
        let dir = TempDir::new("machines", "processes");
        let pool = ProcessPoolExecutor::new(case.workers).unwrap();
        run_case(&pool, &dir, &case)?;
    }
}
