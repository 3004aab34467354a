//! `wait`, `as_completed` and `as_completed_timeout` through the public API.
//!
//! Tasks are held at gates (channels they receive from) so that the test
//! decides the order in which they finish. Timed waits appear only where a
//! timeout is the feature under test, or with a generous limit that turns a
//! hang into a failure.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{
    as_completed, as_completed_timeout, wait, DoneAndNotDone, Error, Future, ReturnWhen,
    ThreadPoolExecutor,
};

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(30);

/// A short timeout, for testing timeouts against tasks held at a gate.
const SHORT: Duration = Duration::from_millis(50);

/// Runs `f` on its own thread and returns its result, failing the test if it
/// does not return within [`HANG`] (the thread is left behind).
fn within<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).expect("the call hung")
}

/// Submits a task that tells `started` it runs, waits at a gate, then
/// returns `value`. Returns the future and the gate's key.
fn gated(pool: &ThreadPoolExecutor, value: u32) -> (Future<u32>, Sender<()>) {
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let future = pool.submit(move || {
        started_tx.send(()).unwrap();
        let _ = gate.recv();
        value
    });
    started.recv().unwrap();
    (future, release)
}

/// A future that finished with `value`.
fn finished(pool: &ThreadPoolExecutor, value: u32) -> Future<u32> {
    let future = pool.submit(move || value);
    assert!(future.wait_timeout(HANG));
    future
}

/// A future whose task panicked.
fn failed(pool: &ThreadPoolExecutor) -> Future<u32> {
    let future = pool.submit(|| -> u32 { panic!("this is an exception") });
    assert!(future.wait_timeout(HANG));
    future
}

/// A cancelled future (cancelled while it waited behind a busy worker).
fn cancelled() -> Future<u32> {
    let pool = ThreadPoolExecutor::new(1);
    let (busy, release) = gated(&pool, 0);
    let future = pool.submit(|| 1);
    assert!(future.cancel());
    release.send(()).unwrap();
    busy.result().unwrap();
    future
}

/// A short name for a future's outcome. It takes the value out (with
/// `try_result`), so call it once per future.
fn outcome(future: &Future<u32>) -> String {
    match future.try_result() {
        None => String::from("pending"),
        Some(Ok(value)) => value.to_string(),
        Some(Err(Error::Cancelled)) => String::from("cancelled"),
        Some(Err(Error::Panicked { .. })) => String::from("panicked"),
        Some(Err(Error::Shutdown)) => String::from("shutdown"),
        Some(Err(other)) => other.to_string(),
    }
}

fn outcomes(futures: &[Future<u32>]) -> Vec<String> {
    futures.iter().map(outcome).collect()
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_all_completed): every kind of done future, and running ones,
// end up in `done`; both groups keep the input order.
#[test]
fn all_completed_waits_for_every_future() {
    let pool = ThreadPoolExecutor::new(2);
    let (running, release) = gated(&pool, 42);
    let futures = vec![
        finished(&pool, 1),
        cancelled(),
        failed(&pool),
        running,
        pool.submit(|| 2),
    ];
    let waiter = thread::spawn(move || wait(futures, ReturnWhen::AllCompleted, None));
    release.send(()).unwrap();
    let DoneAndNotDone { done, not_done } = waiter.join().unwrap();
    assert!(not_done.is_empty());
    assert_eq!(
        outcomes(&done),
        ["1", "cancelled", "panicked", "42", "2"],
        "done keeps the input order"
    );
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_first_completed).
#[test]
fn first_completed_returns_when_one_is_done() {
    let pool = ThreadPoolExecutor::new(2);
    let (slow, release) = gated(&pool, 1);
    let fast = pool.submit(|| 42);
    let DoneAndNotDone { done, not_done } =
        wait(vec![slow, fast], ReturnWhen::FirstCompleted, None);
    assert_eq!(outcomes(&done), ["42"]);
    assert_eq!(not_done.len(), 1);
    release.send(()).unwrap();
    let slow = not_done.into_iter().next().unwrap();
    assert_eq!(slow.result(), Ok(1));
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_first_completed_some_already_completed): futures already
// done (a cancelled one among them) are reported at once.
#[test]
fn first_completed_with_some_already_done() {
    let pool = ThreadPoolExecutor::new(1);
    let (running, release) = gated(&pool, 3);
    let futures = vec![cancelled(), running, finished_elsewhere(7)];
    let DoneAndNotDone { done, not_done } =
        within(move || wait(futures, ReturnWhen::FirstCompleted, None));
    assert_eq!(outcomes(&done), ["cancelled", "7"]);
    assert_eq!(not_done.len(), 1);
    release.send(()).unwrap();
    assert_eq!(not_done.into_iter().next().unwrap().result(), Ok(3));
}

/// A finished future from a pool of its own (for tests whose pool is busy).
fn finished_elsewhere(value: u32) -> Future<u32> {
    finished(&ThreadPoolExecutor::new(1), value)
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_first_exception): wait returns on the first failure, while
// another task still runs.
#[test]
fn first_exception_returns_on_the_first_failure_while_others_run() {
    let pool = ThreadPoolExecutor::new(3);
    let first = pool.submit(|| 42);
    let (fail_release, fail_gate) = mpsc::channel::<()>();
    let failing = pool.submit(move || -> u32 {
        let _ = fail_gate.recv();
        panic!("this is an exception")
    });
    let (still_running, release) = gated(&pool, 3);
    assert!(first.wait_timeout(HANG));

    let futures = vec![first, failing, still_running];
    let waiter = thread::spawn(move || wait(futures, ReturnWhen::FirstException, None));
    fail_release.send(()).unwrap();
    let DoneAndNotDone { done, not_done } = waiter.join().unwrap();
    assert_eq!(outcomes(&done), ["42", "panicked"]);
    assert_eq!(not_done.len(), 1);
    assert!(!not_done[0].done(), "the gated task cannot be done yet");

    release.send(()).unwrap();
    assert_eq!(not_done.into_iter().next().unwrap().result(), Ok(3));
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_first_exception_one_already_failed).
#[test]
fn first_exception_returns_at_once_when_one_already_failed() {
    let pool = ThreadPoolExecutor::new(2);
    let (running, release) = gated(&pool, 1);
    let futures = vec![failed(&pool), running];
    let DoneAndNotDone { done, not_done } =
        within(move || wait(futures, ReturnWhen::FirstException, None));
    assert_eq!(outcomes(&done), ["panicked"]);
    assert_eq!(not_done.len(), 1);
    release.send(()).unwrap();
    assert_eq!(not_done.into_iter().next().unwrap().result(), Ok(1));
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_first_exception_some_already_complete): with a failure
// among the futures already done, wait returns at once. (Python's version
// keeps a cancelled-but-not-notified future in `not_done`; here a cancelled
// future is simply done.)
#[test]
fn first_exception_with_some_already_done() {
    let pool = ThreadPoolExecutor::new(2);
    let (running, release) = gated(&pool, 4);
    let futures = vec![finished(&pool, 1), cancelled(), failed(&pool), running];
    let DoneAndNotDone { done, not_done } =
        within(move || wait(futures, ReturnWhen::FirstException, None));
    assert_eq!(outcomes(&done), ["1", "cancelled", "panicked"]);
    assert_eq!(not_done.len(), 1);
    release.send(()).unwrap();
    assert_eq!(not_done.into_iter().next().unwrap().result(), Ok(4));
}

// As in Python, successes and cancellations do not end a FirstException
// wait.
#[test]
fn first_exception_does_not_count_a_cancellation_as_a_failure() {
    let pool = ThreadPoolExecutor::new(1);
    let (running, release) = gated(&pool, 5);
    let futures = vec![finished_elsewhere(1), cancelled(), running];

    // Had the cancellation counted, this would return at once.
    let start = Instant::now();
    let DoneAndNotDone { done, not_done } = wait(futures, ReturnWhen::FirstException, Some(SHORT));
    assert!(
        start.elapsed() >= SHORT,
        "returned early, after {:?}",
        start.elapsed()
    );
    assert_eq!(outcomes(&done), ["1", "cancelled"]);
    assert_eq!(not_done.len(), 1);

    // With the last one done and still no failure, it waits for all.
    let waiter = thread::spawn(move || wait(not_done, ReturnWhen::FirstException, None));
    release.send(()).unwrap();
    let DoneAndNotDone { done, not_done } = waiter.join().unwrap();
    assert!(not_done.is_empty());
    assert_eq!(outcomes(&done), ["5"]);
}

#[test]
fn first_exception_without_failures_waits_for_all() {
    let pool = ThreadPoolExecutor::new(2);
    let (a, release_a) = gated(&pool, 1);
    let (b, release_b) = gated(&pool, 2);
    let waiter = thread::spawn(move || wait(vec![a, b], ReturnWhen::FirstException, None));
    release_a.send(()).unwrap();
    release_b.send(()).unwrap();
    let DoneAndNotDone { done, not_done } = waiter.join().unwrap();
    assert!(not_done.is_empty());
    assert_eq!(outcomes(&done), ["1", "2"]);
}

#[test]
fn a_refused_submission_counts_as_a_failure() {
    let pool = ThreadPoolExecutor::new(1);
    let (running, release) = gated(&pool, 1);
    let refused = ThreadPoolExecutor::new(1);
    refused.shutdown();
    let futures = vec![running, refused.submit(|| 2)];
    let DoneAndNotDone { done, not_done } =
        within(move || wait(futures, ReturnWhen::FirstException, None));
    assert_eq!(outcomes(&done), ["shutdown"]);
    assert_eq!(not_done.len(), 1);
    release.send(()).unwrap();
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// WaitTests.test_timeout): on time-out, wait returns what is done so far.
#[test]
fn a_timeout_returns_partial_results() {
    let pool = ThreadPoolExecutor::new(2);
    let (running, release) = gated(&pool, 9);
    let futures = vec![cancelled(), failed(&pool), finished(&pool, 1), running];
    let start = Instant::now();
    let DoneAndNotDone { done, not_done } = wait(futures, ReturnWhen::AllCompleted, Some(SHORT));
    assert!(start.elapsed() >= SHORT, "returned before the timeout");
    assert_eq!(outcomes(&done), ["cancelled", "panicked", "1"]);
    assert_eq!(not_done.len(), 1);
    assert!(!not_done[0].done());

    // FirstCompleted with nothing done, and FirstException with no failure,
    // also give up at the timeout.
    let DoneAndNotDone { done, not_done } = wait(not_done, ReturnWhen::FirstCompleted, Some(SHORT));
    assert!(done.is_empty());
    let mut futures = not_done;
    futures.insert(0, finished(&pool, 2));
    let DoneAndNotDone { done, not_done } = wait(futures, ReturnWhen::FirstException, Some(SHORT));
    assert_eq!(outcomes(&done), ["2"]);
    assert_eq!(not_done.len(), 1);

    // A zero timeout polls.
    let DoneAndNotDone { done, not_done } =
        wait(not_done, ReturnWhen::AllCompleted, Some(Duration::ZERO));
    assert!(done.is_empty());

    release.send(()).unwrap();
    assert_eq!(not_done.into_iter().next().unwrap().result(), Ok(9));
}

#[test]
fn wait_leaves_the_results_in_the_futures() {
    let pool = ThreadPoolExecutor::new(2);
    let futures: Vec<_> = (0..4).map(|i| pool.submit(move || i * 10)).collect();
    let DoneAndNotDone { done, not_done } = wait(futures, ReturnWhen::AllCompleted, None);
    assert!(not_done.is_empty());
    let values: Vec<u32> = done.into_iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(values, [0, 10, 20, 30]);
}

#[test]
fn waiting_on_nothing_returns_at_once() {
    for return_when in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        let DoneAndNotDone { done, not_done } =
            within(move || wait(Vec::<Future<u32>>::new(), return_when, None));
        assert!(done.is_empty() && not_done.is_empty());
    }
    assert_eq!(
        within(|| as_completed(Vec::<Future<u32>>::new()).count()),
        0
    );
    let mut timed = as_completed_timeout(Vec::<Future<u32>>::new(), HANG);
    assert!(within(move || timed.next()).is_none());
}

// Ported from CPython's test_concurrent_futures (test_wait.py,
// ThreadPoolWaitTests.test_pending_calls_race, issue #14406): many futures
// completing while wait registers with them.
#[test]
fn all_completed_while_futures_complete_during_registration() {
    let pool = ThreadPoolExecutor::new(4);
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let futures: Vec<_> = (0..100)
        .map(|i| {
            let gate = Arc::clone(&gate);
            pool.submit(move || {
                drop(gate.lock().unwrap());
                i
            })
        })
        .collect();
    drop(held);
    let DoneAndNotDone { done, not_done } =
        within(move || wait(futures, ReturnWhen::AllCompleted, None));
    assert!(not_done.is_empty());
    let values: Vec<u32> = done.into_iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
}

// CPython's gh-87893 (and gh-109934): a future cancelled while a thread
// waits on it never told that waiter, which hung. Here a cancellation makes
// the future done for every waiter at once: the waiter returns while the
// pool's worker is still busy.
#[test]
fn a_cancellation_wakes_a_blocked_wait_at_once() {
    let pool = Arc::new(ThreadPoolExecutor::new(1));
    let (busy, release) = gated(&pool, 0);
    let queued = pool.submit(|| 1);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(wait(vec![queued], ReturnWhen::AllCompleted, None));
    });
    // Cancels the queued task, then waits for the busy one.
    let canceller = {
        let pool = Arc::clone(&pool);
        thread::spawn(move || pool.shutdown_cancel())
    };
    // The busy task is still held at its gate: only the cancellation can
    // have woken the waiter.
    let waited = rx.recv_timeout(HANG);
    release.send(()).unwrap();
    canceller.join().unwrap();

    let DoneAndNotDone { done, not_done } = waited.expect("wait hung on a cancelled future");
    assert!(not_done.is_empty());
    assert!(done[0].cancelled());
    assert_eq!(busy.result(), Ok(0));
}

#[test]
fn a_cancellation_wakes_a_blocked_as_completed_at_once() {
    let pool = Arc::new(ThreadPoolExecutor::new(1));
    let (busy, release) = gated(&pool, 0);
    let queued = pool.submit(|| 1);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for future in as_completed(vec![busy, queued]) {
            let _ = tx.send(outcome(&future));
        }
    });
    let canceller = {
        let pool = Arc::clone(&pool);
        thread::spawn(move || pool.shutdown_cancel())
    };
    let first = rx.recv_timeout(HANG);
    release.send(()).unwrap();
    canceller.join().unwrap();
    assert_eq!(
        first.as_deref(),
        Ok("cancelled"),
        "as_completed hung on the cancelled future"
    );
    assert_eq!(rx.recv_timeout(HANG).as_deref(), Ok("0"));
}

// Ported from CPython's test_concurrent_futures (test_as_completed.py,
// AsCompletedTests.test_no_timeout): each future is yielded exactly once.
#[test]
fn as_completed_yields_each_future_once() {
    let pool = ThreadPoolExecutor::new(2);
    let futures = vec![
        cancelled(),
        failed(&pool),
        finished(&pool, 42),
        pool.submit(|| 2 * 21),
        pool.submit(|| 7 * 6),
    ];
    let mut it = as_completed(futures);
    assert_eq!(it.len(), 5);
    let mut seen = Vec::new();
    while let Some(future) = it.next() {
        assert!(future.done(), "yielded before it was done");
        seen.push(outcome(&future));
        assert_eq!(it.len(), 5 - seen.len());
    }
    assert!(it.next().is_none(), "yields nothing after the end");
    seen.sort();
    assert_eq!(seen, ["42", "42", "42", "cancelled", "panicked"]);
}

#[test]
fn as_completed_yields_done_futures_first_then_in_completion_order() {
    let pool = ThreadPoolExecutor::new(2);
    let (first_gated, release_first) = gated(&pool, 10);
    let (second_gated, release_second) = gated(&pool, 20);
    // Both workers are busy: this one waits in the queue and is cancelled.
    let queued = pool.submit(|| 99);
    assert!(queued.cancel());
    let done = finished_elsewhere(1);

    let mut it = as_completed(vec![first_gated, done, second_gated, queued]);
    // Already done ones come first, in input order.
    assert_eq!(outcome(&it.next().unwrap()), "1");
    assert_eq!(outcome(&it.next().unwrap()), "cancelled");
    // Then in the order the tasks finish: the second one first.
    release_second.send(()).unwrap();
    assert_eq!(outcome(&it.next().unwrap()), "20");
    release_first.send(()).unwrap();
    assert_eq!(outcome(&it.next().unwrap()), "10");
    assert!(it.next().is_none());
}

#[test]
fn as_completed_into_remaining_hands_back_the_rest_in_input_order() {
    let pool = ThreadPoolExecutor::new(2);
    let (a, release_a) = gated(&pool, 1);
    let (b, release_b) = gated(&pool, 2);
    let mut it = as_completed(vec![a, finished_elsewhere(3), b]);
    assert_eq!(outcome(&it.next().unwrap()), "3");
    let rest = it.into_remaining();
    release_b.send(()).unwrap();
    release_a.send(()).unwrap();
    let values: Vec<u32> = rest.into_iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(values, [1, 2]);
}

// Ported from CPython's test_concurrent_futures (test_as_completed.py,
// AsCompletedTests.test_future_times_out): the done futures are yielded, then
// the time-out is reported (here as one `Err(Timeout)`, after which the
// iterator ends), for a zero and for a short timeout.
#[test]
fn as_completed_timeout_yields_the_done_then_one_timeout_then_ends() {
    let pool = ThreadPoolExecutor::new(2);
    let (running, release) = gated(&pool, 7);
    let mut running = Some(running);
    for timeout in [Duration::ZERO, SHORT] {
        let futures = vec![
            cancelled(),
            running.take().unwrap(),
            failed(&pool),
            finished(&pool, 1),
        ];
        let mut it = as_completed_timeout(futures, timeout);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(outcome(&it.next().unwrap().expect("a done future")));
        }
        assert_eq!(seen, ["cancelled", "panicked", "1"], "{timeout:?}");
        match it.next() {
            Some(Err(Error::Timeout(after))) => assert_eq!(after, timeout),
            other => panic!("expected one time-out, got {other:?}"),
        }
        assert!(it.next().is_none(), "nothing after the time-out");
        assert!(it.next().is_none());
        let remaining = it.into_remaining();
        assert_eq!(remaining.len(), 1);
        running = remaining.into_iter().next();
    }
    release.send(()).unwrap();
    assert_eq!(running.unwrap().result(), Ok(7));
}

// CPython starts as_completed's deadline at the first next(); here it starts
// at the call, so time spent before iterating counts.
#[test]
fn as_completed_timeout_deadline_starts_at_the_call() {
    let pool = ThreadPoolExecutor::new(2);
    let (running, release) = gated(&pool, 1);
    let timeout = Duration::from_millis(300);
    let mut it = as_completed_timeout(vec![running], timeout);
    let remaining = {
        // Let the whole timeout pass before the first next() (a timed wait
        // on a task held at its gate; it must time out).
        let (other, other_release) = gated(&pool, 0);
        assert!(!other.wait_timeout(timeout));
        other_release.send(()).unwrap();

        let before_next = Instant::now();
        assert!(matches!(it.next(), Some(Err(Error::Timeout(_)))));
        // Had the deadline started at next(), it would have waited the
        // whole timeout again.
        assert!(
            before_next.elapsed() < timeout,
            "the deadline started at next(), not at the call"
        );
        it.into_remaining()
    };
    release.send(()).unwrap();
    assert_eq!(remaining.into_iter().next().unwrap().result(), Ok(1));
}

#[test]
fn as_completed_timeout_yields_all_when_they_finish_in_time() {
    let pool = ThreadPoolExecutor::new(2);
    let (a, release_a) = gated(&pool, 1);
    let (b, release_b) = gated(&pool, 2);
    let mut it = as_completed_timeout(vec![a, b], HANG);
    release_b.send(()).unwrap();
    assert_eq!(outcome(&it.next().unwrap().unwrap()), "2");
    release_a.send(()).unwrap();
    assert_eq!(outcome(&it.next().unwrap().unwrap()), "1");
    assert!(it.next().is_none());
    assert!(it.into_remaining().is_empty());
}
