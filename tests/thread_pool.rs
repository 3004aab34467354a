//! `ThreadPoolExecutor` and `ThreadPoolBuilder` through the public API:
//! submitting, panics, lazy threads, names, initializers, the shutdown
//! family, `Drop`, and pools used from their own tasks.
//!
//! Tasks are held at gates (channels or locks they wait on) so that the test
//! decides when they finish; a timed wait appears only with a generous limit
//! that turns a hang (a deadlock under test) into a failure.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use concurrent_futures::{wait, Error, Future, ReturnWhen, ThreadPoolBuilder, ThreadPoolExecutor};

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(30);

/// The name of the thread running the caller.
fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

/// Submits a task that tells when it started, waits at a gate, then returns
/// its thread's name. Returns once the task runs.
fn gated(pool: &ThreadPoolExecutor) -> (Future<String>, Sender<()>) {
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let future = pool.submit(move || {
        started_tx.send(()).unwrap();
        let _ = gate.recv();
        thread_name()
    });
    started.recv().unwrap();
    (future, release)
}

/// A pool whose initializer counts the threads it starts.
fn counting_pool(max_workers: usize) -> (ThreadPoolExecutor, Arc<AtomicUsize>) {
    let threads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&threads);
    let pool = ThreadPoolExecutor::builder()
        .max_workers(max_workers)
        .initializer(move || -> Result<(), String> {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    (pool, threads)
}

// Ported from CPython's test_concurrent_futures (executor.py,
// ExecutorTest.test_submit).
#[test]
fn submit_runs_the_closure_on_a_pool_thread() {
    let pool = ThreadPoolExecutor::new(2);
    let here = thread::current().id();
    let f = pool.submit(move || (2u32.pow(8), thread::current().id() != here));
    assert_eq!(f.result(), Ok((256, true)));
    assert_eq!(pool.max_workers(), 2);
}

#[test]
fn a_panic_becomes_an_error_with_message_and_location_and_the_worker_survives() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("survivor")
        .build()
        .unwrap();
    let failing = pool.submit(|| -> u32 { panic!("boom {}", 7) });
    let error = failing.result().unwrap_err();
    let text = error.to_string();
    match error {
        Error::Panicked {
            message,
            location,
            pid,
        } => {
            assert_eq!(message, "boom 7");
            let location = location.expect("the panic's location");
            assert!(location.contains("thread_pool.rs"), "{location}");
            assert_eq!(pid, None, "a thread-pool task has no worker pid");
            assert!(
                text.contains("boom 7") && text.contains(&location),
                "{text}"
            );
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    // The only worker lives on: a later task runs, on the same thread.
    let next = pool.submit(thread_name);
    assert_eq!(next.result_timeout(HANG).as_deref(), Ok("survivor-0"));
}

#[test]
fn a_panic_with_any_payload_is_caught() {
    let pool = ThreadPoolExecutor::new(1);
    let f = pool.submit(|| -> u32 { std::panic::panic_any(42u8) });
    match f.result() {
        Err(Error::Panicked { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected a panic error, got {other:?}"),
    }
    let f = pool.submit(|| -> u32 { std::panic::panic_any(String::from("owned")) });
    assert!(matches!(f.result(), Err(Error::Panicked { message, .. }) if message == "owned"));
}

// Ported from CPython's test_concurrent_futures (executor.py,
// ExecutorTest.test_no_stale_references, issue #16284): once a task has
// run, the pool holds nothing it captured.
#[test]
fn the_pool_keeps_nothing_a_finished_task_captured() {
    let pool = ThreadPoolExecutor::new(1);
    let captured = Arc::new(());
    let f = {
        let captured = Arc::clone(&captured);
        pool.submit(move || drop(Arc::clone(&captured)))
    };
    f.result().unwrap();
    assert_eq!(Arc::strong_count(&captured), 1);

    let f = {
        let captured = Arc::clone(&captured);
        pool.submit(move || -> u8 {
            let _keep = &captured;
            panic!("unwinds")
        })
    };
    assert!(f.result().is_err());
    assert_eq!(Arc::strong_count(&captured), 1);
}

// Threads start lazily: building the pool starts none, and one submission
// starts one thread, not max_workers of them.
#[test]
fn threads_start_only_when_needed() {
    let (pool, threads) = counting_pool(8);
    assert_eq!(pool.submit(|| 1).result(), Ok(1));
    pool.shutdown();
    assert_eq!(threads.load(Ordering::SeqCst), 1);

    // Three tasks that must run at once need three threads, and get no more.
    let (pool, threads) = counting_pool(8);
    let barrier = Arc::new(Barrier::new(3));
    let futures: Vec<_> = (0..3)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
            })
        })
        .collect();
    let outcome = wait(futures, ReturnWhen::AllCompleted, Some(HANG));
    assert!(
        outcome.not_done.is_empty(),
        "three threads never ran at once"
    );
    pool.shutdown();
    assert_eq!(threads.load(Ordering::SeqCst), 3);
}

// Ported from CPython's test_concurrent_futures (test_thread_pool.py,
// ThreadPoolExecutorTest.test_saturation): with every worker busy, more
// submissions queue up instead of starting threads beyond max_workers.
#[test]
fn a_busy_pool_never_exceeds_max_workers() {
    let (pool, threads) = counting_pool(4);
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let futures: Vec<_> = (0..15 * 4)
        .map(|_| {
            let gate = Arc::clone(&gate);
            pool.submit(move || drop(gate.lock().unwrap()))
        })
        .collect();
    drop(held);
    assert!(wait(futures, ReturnWhen::AllCompleted, Some(HANG))
        .not_done
        .is_empty());
    pool.shutdown();
    assert_eq!(threads.load(Ordering::SeqCst), 4);
}

// Ported from CPython's test_concurrent_futures (test_thread_pool.py,
// ThreadPoolExecutorTest.test_idle_thread_reuse), with more rounds: tasks
// submitted one after another, each after the previous result, all run on
// the one thread the first started.
#[test]
fn sequential_tasks_reuse_the_idle_thread() {
    let (pool, threads) = counting_pool(8);
    let names: HashSet<String> = (0..100)
        .map(|_| pool.submit(thread_name).result().unwrap())
        .collect();
    pool.shutdown();
    assert_eq!(
        threads.load(Ordering::SeqCst),
        1,
        "a task started a thread although one was idle"
    );
    assert_eq!(names, HashSet::from([String::from("ThreadPoolExecutor-0")]));

    // The same when each task is submitted by the previous one's
    // done-callback, which runs on the worker while it completes the future:
    // the worker already counts as idle then, whatever the timing.
    let (pool, threads) = counting_pool(8);
    let pool = Arc::new(pool);
    let (names_tx, names) = mpsc::channel();
    submit_chain(&pool, 100, names_tx);
    let names: Vec<String> = names.iter().collect();
    pool.shutdown();
    assert_eq!(names, vec![String::from("ThreadPoolExecutor-0"); 100]);
    assert_eq!(
        threads.load(Ordering::SeqCst),
        1,
        "a task submitted from a done-callback started a thread although one was idle"
    );
}

/// Submits `left` tasks one after another, each from the done-callback of
/// the one before, and sends the name of each one's thread to `names`. Each
/// task waits until its callback is registered, so that the callback runs
/// on the worker that completes the task.
fn submit_chain(pool: &Arc<ThreadPoolExecutor>, left: usize, names: Sender<String>) {
    let (registered_tx, registered) = mpsc::channel::<()>();
    let future = pool.submit(move || {
        let _ = registered.recv();
        thread_name()
    });
    let own = Arc::clone(pool);
    future.add_done_callback(move |done| {
        names.send(done.try_result().unwrap().unwrap()).unwrap();
        if left > 1 {
            submit_chain(&own, left - 1, names);
        }
    });
    registered_tx.send(()).unwrap();
}

/// Runs `n` tasks that can only finish together (they meet at a barrier),
/// so each needs a thread of its own, and returns those threads' names.
fn threads_meeting(pool: &ThreadPoolExecutor, n: usize) -> HashSet<String> {
    let barrier = Arc::new(Barrier::new(n));
    let futures: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
                thread_name()
            })
        })
        .collect();
    let outcome = wait(futures, ReturnWhen::AllCompleted, Some(HANG));
    assert!(outcome.not_done.is_empty(), "{n} threads never ran at once");
    outcome
        .done
        .into_iter()
        .map(|f| f.result().unwrap())
        .collect()
}

/// The names `{prefix}-0` to `{prefix}-{n - 1}`.
fn numbered(prefix: &str, n: usize) -> HashSet<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ThreadPoolShutdownTest.test_thread_names_assigned), with `-` where Python
// has `_`.
#[test]
fn threads_are_named_with_the_prefix_and_their_number() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(5)
        .thread_name_prefix("SpecialPool")
        .build()
        .unwrap();
    assert_eq!(threads_meeting(&pool, 5), numbered("SpecialPool", 5));
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ThreadPoolShutdownTest.test_thread_names_default).
#[test]
fn the_default_thread_name_prefix_is_thread_pool_executor() {
    let pool = ThreadPoolExecutor::new(3);
    assert_eq!(threads_meeting(&pool, 3), numbered("ThreadPoolExecutor", 3));
}

// Ported from CPython's test_concurrent_futures (test_init.py,
// InitializerMixin.test_initializer): every task sees what its thread's
// initializer set up. Here with more tasks than threads: each thread is
// initialized exactly once, before its first task.
#[test]
fn the_initializer_runs_once_on_each_thread_before_its_tasks() {
    thread_local! {
        /// How many times the initializer has run on this thread.
        static INITIALIZED: Cell<u32> = const { Cell::new(0) };
    }
    let initialized = Arc::new(Mutex::new(HashSet::new()));
    let pool = {
        let initialized = Arc::clone(&initialized);
        ThreadPoolExecutor::builder()
            .max_workers(3)
            .initializer(move || -> Result<(), String> {
                INITIALIZED.set(INITIALIZED.get() + 1);
                initialized
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(thread_name());
                Ok(())
            })
            .build()
            .unwrap()
    };
    // The first three meet at a barrier, so all three threads start.
    let barrier = Arc::new(Barrier::new(3));
    let mut futures: Vec<_> = (0..3)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
                (thread_name(), INITIALIZED.get())
            })
        })
        .collect();
    futures.extend((0..30).map(|_| pool.submit(|| (thread_name(), INITIALIZED.get()))));
    let outcome = wait(futures, ReturnWhen::AllCompleted, Some(HANG));
    assert!(
        outcome.not_done.is_empty(),
        "three threads never ran at once"
    );
    let mut ran_on = HashSet::new();
    for future in outcome.done {
        let (name, times) = future.result().unwrap();
        assert_eq!(times, 1, "{name} ran a task after {times} initializations");
        ran_on.insert(name);
    }
    pool.shutdown();
    assert_eq!(ran_on, numbered("ThreadPoolExecutor", 3));
    assert_eq!(*initialized.lock().unwrap(), ran_on);
}

/// Asserts that `outcome` is [`Error::BrokenPool`] with `why` in its reason.
fn assert_broken<T: std::fmt::Debug>(outcome: Result<T, Error>, why: &str) {
    match outcome {
        Err(Error::BrokenPool { reason }) => {
            assert!(reason.contains(why), "{reason:?} does not say {why:?}");
        }
        other => panic!("expected a broken pool, got {other:?}"),
    }
}

/// Checks that an initializer that fails the way `fail` does breaks the
/// pool: the tasks queued while it ran and every later one resolve to
/// [`Error::BrokenPool`] with `why` in the reason, and none of them runs.
fn assert_an_initializer_failure_breaks_the_pool(fail: fn() -> Result<(), String>, why: &str) {
    // The initializer waits at this lock, so the tasks are queued (pending)
    // when it fails.
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let pool = {
        let gate = Arc::clone(&gate);
        ThreadPoolExecutor::builder()
            .max_workers(1)
            .initializer(move || {
                drop(gate.lock().unwrap_or_else(PoisonError::into_inner));
                fail()
            })
            .build()
            .unwrap()
    };
    let ran = Arc::new(AtomicUsize::new(0));
    let submit = |pool: &ThreadPoolExecutor| {
        let ran = Arc::clone(&ran);
        pool.submit(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
    };
    let pending: Vec<_> = (0..5).map(|_| submit(&pool)).collect();
    drop(held);
    for future in pending {
        assert_broken(future.result(), why);
    }
    assert_broken(submit(&pool).result(), why);
    assert!(pool.is_shutdown(), "a broken pool takes no more work");
    let shown = format!("{pool:?}");
    assert!(shown.contains(why), "{shown}");
    pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a task ran on a broken pool");
}

// Ported from CPython's test_concurrent_futures (test_init.py,
// FailingInitializerMixin.test_initializer), for an initializer that
// returns an error.
#[test]
fn a_failing_initializer_breaks_the_pool() {
    assert_an_initializer_failure_breaks_the_pool(
        || Err(String::from("no database")),
        "no database",
    );
}

// Ported from CPython's test_concurrent_futures (test_init.py,
// FailingInitializerMixin.test_initializer), for an initializer that
// panics (Python's raises).
#[test]
fn a_panicking_initializer_breaks_the_pool() {
    assert_an_initializer_failure_breaks_the_pool(
        || panic!("error in initializer"),
        "error in initializer",
    );
}

#[test]
fn map_on_a_pool_broken_by_its_initializer_yields_broken_pool_for_each_item() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(|| Err("no database"))
        .build()
        .unwrap();
    let results: Vec<Result<u32, Error>> = pool.map(|x: u32| x + 1, 0..10).collect();
    assert_eq!(results.len(), 10);
    for result in results {
        assert_broken(result, "no database");
    }
}

// An initializer that fails on a later thread breaks the pool for what is
// queued and what comes, but a task already running on another thread
// finishes normally.
#[test]
fn an_initializer_failing_on_a_later_thread_lets_the_running_task_finish() {
    let calls = AtomicUsize::new(0);
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(move || match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(()),
            _ => Err("the second thread has no database"),
        })
        .build()
        .unwrap();
    let (running, release) = gated(&pool);
    // The first thread is busy, so this starts the second, which fails.
    let queued = pool.submit(|| 1);
    assert_broken(queued.result(), "the second thread has no database");
    assert_broken(pool.submit(|| 2).result(), "no database");
    release.send(()).unwrap();
    assert_eq!(running.result().as_deref(), Ok("ThreadPoolExecutor-0"));
}

// Issue 11, hole 9: 0 workers means the default, in `new` as in the
// builder, the same as for the process pool (tests/process_pool.rs).
// CPython's test_concurrent_futures (executor.py,
// ExecutorTest.test_max_workers_negative) expects a ValueError instead:
// `new` returns the pool itself, so refusing 0 could only panic (see
// `ThreadPoolExecutor::new`).
#[test]
fn zero_workers_means_the_default_number() {
    let default = ThreadPoolExecutor::default().max_workers();
    assert_eq!(ThreadPoolExecutor::new(0).max_workers(), default);
    let built = ThreadPoolExecutor::builder().max_workers(0).build();
    assert_eq!(built.map(|pool| pool.max_workers()), Ok(default));
    let pool = ThreadPoolExecutor::new(0);
    assert_eq!(pool.submit(|| 6 * 7).result(), Ok(42));
}

// Ported from CPython's test_concurrent_futures (test_thread_pool.py,
// ThreadPoolExecutorTest.test_default_workers): min(32, cpus + 4). The
// pool counts cpus with num_cpus, which is no dev-dependency here, and
// std's available_parallelism need not agree with it (num_cpus rounds a
// fractional cgroup quota up), so only the bounds the formula implies are
// checked, and that every way to ask for the default agrees.
#[test]
fn the_default_max_workers_is_min_32_cpus_plus_4() {
    let workers = ThreadPoolExecutor::default().max_workers();
    assert!((5..=32).contains(&workers), "{workers} default workers");
    assert_eq!(
        ThreadPoolBuilder::new().build().unwrap().max_workers(),
        workers
    );
    assert_eq!(
        ThreadPoolBuilder::default().build().unwrap().max_workers(),
        workers
    );
}

/// Holds the only worker of `pool` with a gated task and queues `n` more
/// behind it, returning `0..n`.
fn queue_behind_a_held_worker(
    pool: &ThreadPoolExecutor,
    n: usize,
) -> (Future<String>, Sender<()>, Vec<Future<usize>>) {
    let (running, release) = gated(pool);
    let queued = (0..n).map(|i| pool.submit(move || i)).collect();
    (running, release, queued)
}

/// Asserts, without waiting for any, that the held task and every queued
/// one have finished with their results. The last queued task, the likeliest
/// to be unfinished if nothing waited for it, is looked at first.
fn assert_all_finished(running: &Future<String>, queued: &[Future<usize>]) {
    for (i, future) in queued.iter().enumerate().rev() {
        assert_eq!(future.try_result(), Some(Ok(i)), "queued task {i}");
    }
    assert_eq!(
        running.try_result(),
        Some(Ok(String::from("ThreadPoolExecutor-0")))
    );
}

// `shutdown` returns only once the queued work has run. A shutdown that did
// not wait would still pass a round in which the worker happened to finish
// first, hence several rounds.
#[test]
fn shutdown_waits_for_queued_work() {
    for _ in 0..10 {
        let pool = ThreadPoolExecutor::new(1);
        let (running, release, queued) = queue_behind_a_held_worker(&pool, 100);
        release.send(()).unwrap();
        pool.shutdown();
        assert_all_finished(&running, &queued);
    }
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ExecutorShutdownTest.test_cancel_futures), made exact: with the one
// worker held, every queued task is cancelled while the running one still
// runs, and the shutdown waits for it.
#[test]
fn shutdown_cancel_cancels_queued_work_and_waits_for_the_running_task() {
    let pool = ThreadPoolExecutor::new(1);
    let (running, release) = gated(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..10)
        .map(|_| {
            let ran = Arc::clone(&ran);
            pool.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let all_cancelled = thread::scope(|scope| {
        let shutting_down = scope.spawn(|| pool.shutdown_cancel());
        // The worker is still held: only the cancel can make these done.
        let all_cancelled = queued.iter().all(|f| f.wait_timeout(HANG) && f.cancelled());
        release.send(()).unwrap();
        shutting_down.join().unwrap();
        all_cancelled
    });
    assert!(all_cancelled, "a queued task was not cancelled");
    assert_eq!(
        running.try_result(),
        Some(Ok(String::from("ThreadPoolExecutor-0")))
    );
    for future in queued {
        assert_eq!(future.result(), Err(Error::Cancelled));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a cancelled task ran");
}

/// Runs `f` on a thread of its own and returns what it returns; if `f` has
/// not returned within [`HANG`] (a deadlock), fails the test instead of
/// hanging it, leaving that thread behind. A panic in `f` is passed on.
#[track_caller]
fn without_hang<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (returned_tx, returned) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = returned_tx.send(f());
    });
    match returned.recv_timeout(HANG) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("still blocked after {HANG:?}: a deadlock"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the runner returned without sending"),
        },
    }
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ThreadPoolShutdownTest.test_shutdown_no_wait): `shutdown_background`
// returns while the worker is still held, and the queued work still runs.
#[test]
fn shutdown_background_returns_at_once_and_queued_work_still_completes() {
    let pool = Arc::new(ThreadPoolExecutor::new(1));
    let (running, release, queued) = queue_behind_a_held_worker(&pool, 5);
    without_hang({
        let pool = Arc::clone(&pool);
        move || pool.shutdown_background()
    });
    assert!(pool.is_shutdown());
    assert!(!running.done() && queued.iter().all(|f| !f.done()));
    assert_eq!(pool.submit(|| 5).result(), Err(Error::Shutdown));
    release.send(()).unwrap();
    assert_eq!(running.result().as_deref(), Ok("ThreadPoolExecutor-0"));
    let results: Vec<_> = queued.into_iter().map(Future::result).collect();
    assert_eq!(results, (0..5).map(Ok).collect::<Vec<_>>());
}

// Issue 11, hole 8: after `shutdown_background` a drop does not wait
// either. The only worker is held by a task that does not return until the
// test lets it go (after the drop, so a drop that waited would wait for
// ever); the held task and those queued behind it still run afterwards, on
// the pool's detached thread.
#[test]
fn dropping_the_pool_after_shutdown_background_does_not_wait() {
    let pool = ThreadPoolExecutor::new(1);
    let (running, release, queued) = queue_behind_a_held_worker(&pool, 5);
    pool.shutdown_background();
    without_hang(move || drop(pool));
    assert!(!running.done() && queued.iter().all(|f| !f.done()));
    release.send(()).unwrap();
    assert_eq!(running.result().as_deref(), Ok("ThreadPoolExecutor-0"));
    let results: Vec<_> = queued.into_iter().map(Future::result).collect();
    assert_eq!(results, (0..5).map(Ok).collect::<Vec<_>>());
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ExecutorShutdownTest.test_run_after_shutdown), for each kind of shutdown:
// the task is refused with `Shutdown` and its closure never runs.
#[test]
fn submit_after_any_shutdown_is_refused() {
    let shutdowns: [fn(&ThreadPoolExecutor); 3] = [
        ThreadPoolExecutor::shutdown,
        ThreadPoolExecutor::shutdown_cancel,
        ThreadPoolExecutor::shutdown_background,
    ];
    for shutdown in shutdowns {
        let pool = ThreadPoolExecutor::new(2);
        shutdown(&pool);
        let (ran_tx, ran) = mpsc::channel();
        let refused = pool.submit(move || ran_tx.send(()).unwrap());
        assert!(refused.done());
        assert_eq!(refused.result(), Err(Error::Shutdown));
        assert_eq!(ran.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    }
}

#[test]
fn shutdown_twice_is_harmless_and_is_shutdown_reports_it() {
    let pool = ThreadPoolExecutor::new(2);
    let before = pool.submit(|| 5);
    assert!(!pool.is_shutdown());
    pool.shutdown();
    assert!(pool.is_shutdown());
    pool.shutdown();
    pool.shutdown_cancel();
    pool.shutdown_background();
    assert!(pool.is_shutdown());
    assert_eq!(before.result(), Ok(5));
    assert_eq!(pool.submit(|| 6).result(), Err(Error::Shutdown));
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ThreadPoolShutdownTest.test_del_shutdown and
// test_context_manager_shutdown): dropping the pool (Python's `del` or the
// end of a `with` block) waits for the work it was given. Several rounds,
// as for `shutdown_waits_for_queued_work`.
#[test]
fn dropping_the_pool_waits_for_queued_work() {
    for _ in 0..10 {
        let pool = ThreadPoolExecutor::new(1);
        let (running, release, queued) = queue_behind_a_held_worker(&pool, 100);
        release.send(()).unwrap();
        drop(pool);
        assert_all_finished(&running, &queued);
    }
}

#[test]
fn a_task_can_submit_to_its_own_pool_and_wait_for_the_result() {
    let pool = Arc::new(ThreadPoolExecutor::new(2));
    let own = Arc::clone(&pool);
    let outer = pool.submit(move || {
        let inner = own.submit(|| (6 * 7, thread_name()));
        (thread_name(), inner.result())
    });
    let (outer_thread, inner) = outer.result().unwrap();
    let (answer, inner_thread) = inner.unwrap();
    assert_eq!(answer, 42);
    assert_ne!(
        outer_thread, inner_thread,
        "the inner task ran on the busy thread"
    );
}

// `shutdown` called from a task waits for the other workers, not for its
// own thread.
#[test]
fn shutdown_from_inside_a_task_waits_for_the_other_workers() {
    let (saw_other_done, shut) = without_hang(|| {
        let pool = Arc::new(ThreadPoolExecutor::new(2));
        let (other, release) = gated(&pool);
        let (shutting_down_tx, shutting_down) = mpsc::channel();
        let own = Arc::clone(&pool);
        let shutter = pool.submit(move || {
            shutting_down_tx.send(()).unwrap();
            own.shutdown();
            other.done()
        });
        shutting_down.recv().unwrap();
        release.send(()).unwrap();
        (shutter.result(), pool.is_shutdown())
    });
    assert_eq!(
        saw_other_done,
        Ok(true),
        "shutdown returned before the other worker finished"
    );
    assert!(shut);
}

// Dropping the last handle inside a task shuts the pool down from its own
// worker: the drop waits for the other worker, then the task returns.
#[test]
fn dropping_the_last_handle_inside_a_task_does_not_deadlock() {
    let outcome = without_hang(|| {
        let pool = Arc::new(ThreadPoolExecutor::new(2));
        let (other, release) = gated(&pool);
        let (dropped_tx, dropped) = mpsc::channel::<()>();
        let own = Arc::clone(&pool);
        let last = pool.submit(move || {
            let _ = dropped.recv();
            let was_last = Arc::strong_count(&own) == 1;
            drop(own);
            (was_last, other.done())
        });
        drop(pool);
        dropped_tx.send(()).unwrap();
        release.send(()).unwrap();
        last.result()
    });
    assert_eq!(outcome, Ok((true, true)));
}

// Two tasks, on the two workers at once, both shut their shared pool down:
// each waits for the other worker, which is itself waiting in shutdown, so
// both must return.
#[test]
fn shutdown_from_two_tasks_at_once_does_not_deadlock() {
    let (outcomes, shut) = without_hang(|| {
        let pool = Arc::new(ThreadPoolExecutor::new(2));
        let barrier = Arc::new(Barrier::new(2));
        let futures: Vec<_> = (0..2)
            .map(|_| {
                let own = Arc::clone(&pool);
                let barrier = Arc::clone(&barrier);
                pool.submit(move || {
                    barrier.wait();
                    own.shutdown();
                    thread_name()
                })
            })
            .collect();
        let outcomes: Vec<_> = futures.into_iter().map(Future::result).collect();
        (outcomes, pool.is_shutdown())
    });
    let names: HashSet<String> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(names, numbered("ThreadPoolExecutor", 2));
    assert!(shut);
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ExecutorShutdownTest.test_hang_issue12364): many queued tasks, then a
// shutdown, which returns with all of them run.
#[test]
fn shutdown_with_many_queued_tasks_does_not_hang() {
    let results = without_hang(|| {
        let pool = ThreadPoolExecutor::new(5);
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let futures: Vec<_> = (0..50u64)
            .map(|i| {
                let gate = Arc::clone(&gate);
                pool.submit(move || {
                    drop(gate.lock().unwrap_or_else(PoisonError::into_inner));
                    (0..=i).sum::<u64>()
                })
            })
            .collect();
        drop(held);
        pool.shutdown();
        futures.iter().map(Future::try_result).collect::<Vec<_>>()
    });
    let expected: Vec<_> = (0..50u64).map(|i| Some(Ok(i * (i + 1) / 2))).collect();
    assert_eq!(results, expected);
}

// Ported from CPython's test_concurrent_futures (test_shutdown.py,
// ExecutorShutdownTest.test_hang_gh94440): a shutdown right after a task
// was submitted and cancelled returns.
#[test]
fn shutdown_right_after_a_cancel_does_not_hang() {
    let (first, cancelled, outcome) = without_hang(|| {
        let pool = ThreadPoolExecutor::new(1);
        let first = pool.submit(|| 0).result();
        let future = pool.submit(|| 1);
        let cancelled = future.cancel();
        pool.shutdown();
        (first, cancelled, future.try_result())
    });
    assert_eq!(first, Ok(0));
    // The idle worker may have started the task before the cancel.
    let expected = if cancelled {
        Err(Error::Cancelled)
    } else {
        Ok(1)
    };
    assert_eq!(outcome, Some(expected));
}

#[test]
fn debug_output_shows_max_workers_and_the_state() {
    let pool = ThreadPoolExecutor::new(3);
    let shown = format!("{pool:?}");
    assert!(shown.starts_with("ThreadPoolExecutor"), "{shown}");
    assert!(shown.contains("max_workers: 3"), "{shown}");
    assert!(shown.contains("shutdown: false"), "{shown}");
    pool.shutdown();
    let shown = format!("{pool:?}");
    assert!(shown.contains("shutdown: true"), "{shown}");

    let builder = ThreadPoolExecutor::builder().max_workers(3);
    let shown = format!("{builder:?}");
    assert!(shown.contains("max_workers: Some(3)"), "{shown}");
}

// A task's panic is caught on its worker, which lives on: after many
// panics, as many tasks as before can still run at once.
#[test]
fn panics_do_not_reduce_the_pools_capacity() {
    let (pool, threads) = counting_pool(3);
    let before = threads_meeting(&pool, 3);
    let failures: Vec<_> = (0..12)
        .map(|i| pool.submit(move || -> u32 { panic!("task {i} fails") }))
        .collect();
    for (i, failure) in failures.iter().enumerate() {
        // With a limit: if panics killed the workers, the rest never run.
        match failure.result_timeout(HANG) {
            Err(Error::Panicked { message, .. }) => {
                assert_eq!(message, format!("task {i} fails"));
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
    }
    assert_eq!(threads_meeting(&pool, 3), before);
    pool.shutdown();
    assert_eq!(threads.load(Ordering::SeqCst), 3);
}

// Every worker must be free to take a queued task while any is asleep:
// tasks that can only finish together (a barrier as wide as the pool)
// hang if one of them is left queued with a worker asleep. Before each
// barrier, a few short tasks and one that keeps its worker busy for a
// while leave the others time to go to sleep, so that the barrier's
// tasks find workers in every mix of running, searching and sleeping. (A
// wake-up rule that counted one searching worker for two queued tasks
// hung here.)
#[test]
fn no_task_is_left_queued_while_a_worker_sleeps() {
    const WORKERS: usize = 3;
    let pool = ThreadPoolExecutor::new(WORKERS);
    let _ = threads_meeting(&pool, WORKERS);
    for round in 0..300u64 {
        let busy = Duration::from_micros(20 * (round % 10));
        let mut burst: Vec<_> = (0..round % 4).map(|i| pool.submit(move || i)).collect();
        burst.push(pool.submit(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < busy {
                std::hint::spin_loop();
            }
            0
        }));
        for future in burst {
            assert!(future.result_timeout(HANG).is_ok());
        }
        let _ = threads_meeting(&pool, WORKERS);
    }
}
