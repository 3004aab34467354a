//! `Future<T>` through the public API: its states, cancellation, taking the
//! result, timed waits, done-callbacks and `.await`.
//!
//! Tasks are held at a gate (a channel the task receives from) so that the
//! test decides when they finish; timed waits are used only to test a
//! timeout itself or, with a generous limit, to turn a hang into a failure.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ThreadPoolExecutor};

mod common;
use common::{block_on, hold_the_worker};

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(30);

/// A short timeout, for testing timeouts against a task held at a gate.
const SHORT: Duration = Duration::from_millis(20);

/// A pool of one worker, busy with a task that has started and waits at a
/// gate; send on (or drop) the returned sender to let it finish.
fn busy_pool() -> (ThreadPoolExecutor, Future<()>, Sender<()>) {
    let pool = ThreadPoolExecutor::new(1);
    let (busy, release) = hold_the_worker(&pool);
    (pool, busy, release)
}

/// Submits a task that waits at a gate, then returns `value`.
fn gated<T: Send + 'static>(pool: &ThreadPoolExecutor, value: T) -> (Future<T>, Sender<()>) {
    let (release, gate): (Sender<()>, Receiver<()>) = mpsc::channel();
    let future = pool.submit(move || {
        let _ = gate.recv();
        value
    });
    (future, release)
}

/// A future that is already finished with `value`.
fn finished<T: Send + 'static>(pool: &ThreadPoolExecutor, value: T) -> Future<T> {
    let future = pool.submit(move || value);
    assert!(future.wait_timeout(HANG), "a trivial task hung");
    future
}

/// A future whose task panicked with `message`.
fn failed(pool: &ThreadPoolExecutor, message: &'static str) -> Future<u32> {
    let future = pool.submit(move || -> u32 { panic!("{message}") });
    assert!(future.wait_timeout(HANG), "a trivial task hung");
    future
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done / test_running / test_cancelled): each state answers
// done(), running() and cancelled() as Python's does — except that a task
// waiting in the queue is not "running" here.
#[test]
fn states_from_pending_through_running_to_finished() {
    let (pool, busy, release) = busy_pool();
    let queued = pool.submit(|| 7);

    assert!(busy.running());
    assert!(!busy.done());
    assert!(!busy.cancelled());

    assert!(!queued.running(), "a queued task is not running");
    assert!(!queued.done());
    assert!(!queued.cancelled());

    release.send(()).unwrap();
    assert_eq!(busy.result(), Ok(()));
    assert!(queued.wait_timeout(HANG));
    assert!(queued.done());
    assert!(!queued.running());
    assert!(!queued.cancelled());
    assert_eq!(queued.result(), Ok(7));
}

#[test]
fn debug_output_names_the_state() {
    // In the spirit of CPython's FutureTests.test_repr.
    let (pool, busy, release) = busy_pool();
    let queued = pool.submit(|| 1);
    assert!(format!("{busy:?}").contains("running"), "{busy:?}");
    assert!(format!("{queued:?}").contains("pending"), "{queued:?}");
    assert!(queued.cancel());
    assert!(format!("{queued:?}").contains("cancelled"), "{queued:?}");
    release.send(()).unwrap();
    busy.wait();
    assert!(format!("{busy:?}").contains("finished"), "{busy:?}");
    let failure = failed(&pool, "no");
    assert!(format!("{failure:?}").contains("failed"), "{failure:?}");
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_cancel): a pending future can be cancelled (and cancelling
// it again still says true), a running or finished one cannot.
#[test]
fn cancel_succeeds_only_before_the_task_starts() {
    let (pool, busy, release) = busy_pool();
    let ran = Arc::new(AtomicBool::new(false));
    let queued = {
        let ran = Arc::clone(&ran);
        pool.submit(move || ran.store(true, Ordering::SeqCst))
    };

    assert!(queued.cancel(), "a queued task can be cancelled");
    assert!(queued.cancelled());
    assert!(queued.done(), "a cancelled future is done");
    assert!(!queued.running());
    assert!(
        queued.cancel(),
        "cancel on a cancelled future is still true"
    );

    assert!(!busy.cancel(), "a running task cannot be cancelled");
    assert!(busy.running());
    assert!(!busy.cancelled());

    release.send(()).unwrap();
    assert_eq!(busy.result(), Ok(()));
    assert_eq!(queued.result(), Err(Error::Cancelled));

    let done = finished(&pool, 5);
    assert!(!done.cancel(), "a finished future cannot be cancelled");
    assert!(!done.cancelled());
    assert_eq!(done.result(), Ok(5));

    let failure = failed(&pool, "boom");
    assert!(!failure.cancel(), "a failed future cannot be cancelled");
    assert!(matches!(failure.result(), Err(Error::Panicked { .. })));

    pool.shutdown();
    assert!(
        !ran.load(Ordering::SeqCst),
        "a cancelled task must never run"
    );
}

#[test]
fn dropping_a_future_does_not_cancel_its_task() {
    let pool = ThreadPoolExecutor::new(1);
    let ran = Arc::new(AtomicBool::new(false));
    let (future, release) = {
        let ran = Arc::clone(&ran);
        let (release, gate) = mpsc::channel::<()>();
        let future = pool.submit(move || {
            let _ = gate.recv();
            ran.store(true, Ordering::SeqCst);
        });
        (future, release)
    };
    drop(future);
    drop(release);
    pool.shutdown();
    assert!(ran.load(Ordering::SeqCst));
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_result_with_timeout and test_exception_with_timeout): what
// result and exception give for a success, a failure and a cancellation.
#[test]
fn result_and_exception_of_each_outcome() {
    let pool = ThreadPoolExecutor::new(1);

    let success = finished(&pool, 42);
    assert_eq!(success.exception(), None);
    assert_eq!(
        success.result_timeout(Duration::ZERO),
        Ok(42),
        "a done future answers even a zero timeout"
    );

    let failure = failed(&pool, "bad input");
    match failure.exception() {
        Some(Error::Panicked { message, .. }) => assert_eq!(message, "bad input"),
        other => panic!("expected the panic, got {other:?}"),
    }
    assert!(matches!(
        failure.result_timeout(Duration::ZERO),
        Err(Error::Panicked { .. })
    ));

    let (busy_pool, busy, release) = busy_pool();
    let cancelled = busy_pool.submit(|| 1);
    assert!(cancelled.cancel());
    assert_eq!(cancelled.exception(), Some(Error::Cancelled));
    assert_eq!(
        cancelled.result_timeout(Duration::ZERO),
        Err(Error::Cancelled)
    );
    release.send(()).unwrap();
    busy.result().unwrap();
}

#[test]
fn the_value_leaves_once_and_then_reports_already_retrieved() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, String::from("value"));

    assert_eq!(future.try_result(), None, "not done yet");
    release.send(()).unwrap();
    future.wait();

    // exception() leaves the value where it is.
    assert_eq!(future.exception(), None);
    assert_eq!(future.try_result(), Some(Ok(String::from("value"))));
    assert_eq!(future.try_result(), Some(Err(Error::AlreadyRetrieved)));
    assert_eq!(
        future.result_timeout(Duration::ZERO),
        Err(Error::AlreadyRetrieved)
    );
    assert_eq!(future.exception(), None, "a success, even once taken");
    assert!(future.done());
    assert_eq!(future.result(), Err(Error::AlreadyRetrieved));

    // result_timeout takes the value too.
    let other = finished(&pool, 3);
    assert_eq!(other.result_timeout(HANG), Ok(3));
    assert_eq!(other.result(), Err(Error::AlreadyRetrieved));
}

#[test]
fn an_error_can_be_read_any_number_of_times() {
    let pool = ThreadPoolExecutor::new(1);
    let failure = failed(&pool, "again");
    let first = failure.try_result();
    assert!(matches!(first, Some(Err(Error::Panicked { .. }))));
    assert_eq!(failure.try_result(), first);
    assert_eq!(failure.exception(), first.clone().and_then(Result::err));
    assert_eq!(Some(failure.result()), first);
}

#[test]
fn a_cloned_result_can_be_read_any_number_of_times_and_leaves_the_value() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, String::from("value"));
    assert_eq!(future.try_result_cloned(), None, "not done yet");

    // A reader on another thread, waiting in result_cloned (or arriving
    // after the task finished), gets a copy.
    let future = Arc::new(future);
    let reader = {
        let future = Arc::clone(&future);
        thread::spawn(move || future.result_cloned())
    };
    release.send(()).unwrap();
    assert_eq!(reader.join().unwrap(), Ok(String::from("value")));

    for _ in 0..3 {
        assert_eq!(future.result_cloned(), Ok(String::from("value")));
        assert_eq!(future.try_result_cloned(), Some(Ok(String::from("value"))));
    }
    // The value is still there to be taken, once; then the copies say so.
    assert_eq!(future.try_result(), Some(Ok(String::from("value"))));
    assert_eq!(future.result_cloned(), Err(Error::AlreadyRetrieved));
    assert_eq!(
        future.try_result_cloned(),
        Some(Err(Error::AlreadyRetrieved))
    );

    // Failures and cancellations read the same through either.
    let failure = failed(&pool, "cloned");
    let first = failure.result_cloned();
    assert!(matches!(first, Err(Error::Panicked { .. })), "{first:?}");
    assert_eq!(failure.try_result_cloned(), Some(first.clone()));
    assert_eq!(failure.result(), first);
    let (busy, release) = hold_the_worker(&pool);
    let queued = pool.submit(|| 1u8);
    assert!(queued.cancel());
    assert_eq!(queued.result_cloned(), Err(Error::Cancelled));
    assert_eq!(queued.try_result_cloned(), Some(Err(Error::Cancelled)));
    release.send(()).unwrap();
    assert_eq!(busy.result(), Ok(()));
}

#[test]
fn callbacks_that_read_a_clone_leave_the_value_for_the_waiter() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, vec![1u32, 2, 3]);
    let (tx, rx) = mpsc::channel();
    for _ in 0..3 {
        let tx = tx.clone();
        future.add_done_callback(move |f| tx.send(f.try_result_cloned()).unwrap());
    }
    release.send(()).unwrap();
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(HANG), Ok(Some(Ok(vec![1, 2, 3]))));
    }
    assert_eq!(future.result(), Ok(vec![1, 2, 3]));
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_result_with_timeout): a timed wait on an unfinished future
// times out and leaves it as it was.
#[test]
fn result_timeout_times_out_and_leaves_the_future_usable() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, 9);

    let before = Instant::now();
    assert_eq!(future.result_timeout(SHORT), Err(Error::Timeout(SHORT)));
    assert!(before.elapsed() >= SHORT, "gave up before the timeout");
    assert_eq!(
        future.result_timeout(Duration::ZERO),
        Err(Error::Timeout(Duration::ZERO))
    );
    assert!(matches!(
        future.result_deadline(Instant::now() + SHORT),
        Err(Error::Timeout(_))
    ));
    assert!(matches!(
        future.result_deadline(Instant::now()),
        Err(Error::Timeout(_))
    ));
    assert!(!future.done(), "a time-out leaves the task alone");
    assert!(!future.cancelled());

    release.send(()).unwrap();
    assert_eq!(future.result_deadline(Instant::now() + HANG), Ok(9));
}

#[test]
fn an_unrepresentable_timeout_means_no_time_limit() {
    let pool = ThreadPoolExecutor::new(1);
    let future = pool.submit(|| 4);
    assert_eq!(future.result_timeout(Duration::MAX), Ok(4));
    assert!(pool.submit(|| ()).wait_timeout(Duration::MAX));
}

#[test]
fn wait_timeout_and_wait_deadline_report_whether_done() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, ());

    assert!(!future.wait_timeout(SHORT));
    assert!(!future.wait_timeout(Duration::ZERO));
    assert!(!future.wait_deadline(Instant::now() + SHORT));
    assert!(!future.wait_deadline(Instant::now()));

    release.send(()).unwrap();
    assert!(future.wait_timeout(HANG));
    assert!(future.wait_timeout(Duration::ZERO), "done stays done");
    assert!(future.wait_deadline(Instant::now()));
    // Waiting does not take the value.
    assert_eq!(future.result(), Ok(()));
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_result_with_success and test_result_with_cancel),
// without the sleeps: threads blocked on the future wake when another thread
// completes it or cancels it.
#[test]
fn blocked_waiters_wake_on_completion_and_on_cancel() {
    let (pool, busy, release) = busy_pool();
    let queued = pool.submit(|| 5);

    thread::scope(|scope| {
        // Bounded, so that a failed assertion below cannot hang the scope.
        let waiter = scope.spawn(|| queued.wait_timeout(HANG).then(|| queued.exception()));
        let timed = scope.spawn(|| queued.result_timeout(HANG));
        assert!(queued.cancel());
        assert_eq!(waiter.join().unwrap(), Some(Some(Error::Cancelled)));
        assert_eq!(timed.join().unwrap(), Err(Error::Cancelled));
    });

    thread::scope(|scope| {
        let waiter = scope.spawn(|| busy.wait_timeout(HANG));
        release.send(()).unwrap();
        assert!(waiter.join().unwrap(), "the waiter was not woken");
    });
    assert_eq!(busy.result(), Ok(()));
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done_callback_with_result): a callback added while the
// task runs is called once, with the finished future.
#[test]
fn a_callback_runs_once_with_the_finished_future() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, 5);
    let (tx, rx) = mpsc::channel();
    future.add_done_callback(move |f| {
        tx.send((f.done(), f.try_result())).unwrap();
    });
    assert!(rx.try_recv().is_err(), "ran before the task finished");
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(HANG), Ok((true, Some(Ok(5)))));
    pool.shutdown();
    assert!(rx.try_recv().is_err(), "the callback ran more than once");
    // The callback took the value.
    assert_eq!(future.result(), Err(Error::AlreadyRetrieved));
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done_callback_with_exception).
#[test]
fn a_callback_sees_the_failure() {
    let pool = ThreadPoolExecutor::new(1);
    let (release, gate) = mpsc::channel::<()>();
    let future = pool.submit(move || -> u8 {
        let _ = gate.recv();
        panic!("callback sees this")
    });
    let (tx, rx) = mpsc::channel();
    future.add_done_callback(move |f| tx.send(f.exception()).unwrap());
    release.send(()).unwrap();
    match rx.recv_timeout(HANG).unwrap() {
        Some(Error::Panicked { message, .. }) => assert_eq!(message, "callback sees this"),
        other => panic!("expected the panic, got {other:?}"),
    }
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done_callback_with_cancel): cancelling runs the callbacks,
// on the cancelling thread, before cancel() returns.
#[test]
fn cancelling_runs_the_callbacks_before_cancel_returns() {
    let (pool, busy, release) = busy_pool();
    let queued = pool.submit(|| 1);
    let seen = Arc::new(Mutex::new(None));
    {
        let seen = Arc::clone(&seen);
        queued.add_done_callback(move |f| {
            *seen.lock().unwrap() = Some((f.cancelled(), thread::current().id()));
        });
    }
    assert!(queued.cancel());
    assert_eq!(*seen.lock().unwrap(), Some((true, thread::current().id())));
    release.send(()).unwrap();
    busy.result().unwrap();
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done_callback_already_successful, _already_failed and
// _already_cancelled): on a done future the callback runs at once, on the
// registering thread.
#[test]
fn a_callback_on_a_done_future_runs_at_once_on_this_thread() {
    let pool = ThreadPoolExecutor::new(1);
    let me = thread::current().id();

    let seen: Arc<Mutex<Vec<(String, thread::ThreadId)>>> = Arc::default();
    // The callback records what it saw and on which thread; the assertions
    // stay outside it, where a failure is not contained.
    let record = |seen: &Arc<Mutex<Vec<_>>>| {
        let seen = Arc::clone(seen);
        move |f: &Future<u32>| {
            let what = match f.exception() {
                None => String::from("ok"),
                Some(Error::Cancelled) => String::from("cancelled"),
                Some(Error::Panicked { message, .. }) => message,
                Some(other) => other.to_string(),
            };
            seen.lock().unwrap().push((what, thread::current().id()));
        }
    };
    let seen_now = || -> Vec<String> {
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter().all(|(_, id)| *id == me),
            "ran on another thread"
        );
        seen.iter().map(|(what, _)| what.clone()).collect()
    };

    let success = finished(&pool, 5);
    success.add_done_callback(record(&seen));
    assert_eq!(seen_now(), ["ok"]);

    let failure = failed(&pool, "test");
    failure.add_done_callback(record(&seen));
    assert_eq!(seen_now(), ["ok", "test"]);

    let (busy_pool, busy, release) = busy_pool();
    let cancelled = busy_pool.submit(|| 0u32);
    assert!(cancelled.cancel());
    cancelled.add_done_callback(record(&seen));
    assert_eq!(seen_now(), ["ok", "test", "cancelled"]);
    release.send(()).unwrap();
    busy.result().unwrap();

    assert_eq!(
        success.result(),
        Ok(5),
        "a callback does not take the value"
    );
}

#[test]
fn callbacks_run_in_the_order_they_were_added() {
    let pool = ThreadPoolExecutor::new(1);
    let (future, release) = gated(&pool, ());
    let (tx, rx) = mpsc::channel();
    for i in 0..5 {
        let tx = tx.clone();
        future.add_done_callback(move |_| tx.send(i).unwrap());
    }
    drop(tx);
    release.send(()).unwrap();
    let order: Vec<i32> = (0..5).map(|_| rx.recv_timeout(HANG).unwrap()).collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
    // Every sender is gone once the callbacks ran: none runs twice.
    assert!(rx.recv_timeout(HANG).is_err());
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done_callback_raises): a callback that fails does not stop
// the next one; here also: it does not poison the future nor kill the pool's
// worker thread.
#[test]
fn a_panicking_callback_is_contained() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("callbacks")
        .build()
        .unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let future = pool.submit(move || {
        let _ = gate.recv();
        thread::current().name().map(str::to_owned)
    });
    let (tx, rx) = mpsc::channel();
    {
        let tx = tx.clone();
        future.add_done_callback(move |_| {
            tx.send("panicking").unwrap();
            panic!("a callback fails");
        });
    }
    future.add_done_callback(move |_| tx.send("next").unwrap());
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(HANG), Ok("panicking"));
    assert_eq!(rx.recv_timeout(HANG), Ok("next"));

    // The future is not poisoned: it still answers.
    assert!(future.done());
    assert_eq!(future.exception(), None);
    let first_thread = future.result().unwrap();
    assert_eq!(first_thread.as_deref(), Some("callbacks-0"));

    // The worker thread lives on and runs later tasks (a pool of one: a
    // dead worker would leave this task queued forever).
    let later = pool.submit(|| thread::current().name().map(str::to_owned));
    assert_eq!(later.result_timeout(HANG), Ok(first_thread));
}

// Ported from CPython's test_concurrent_futures (test_future.py,
// FutureTests.test_done_callback_raises_already_succeeded).
#[test]
fn a_panicking_callback_on_a_done_future_does_not_unwind_into_the_caller() {
    let pool = ThreadPoolExecutor::new(1);
    let future = finished(&pool, 5);
    let ran = Arc::new(AtomicBool::new(false));
    {
        let ran = Arc::clone(&ran);
        future.add_done_callback(move |_| {
            ran.store(true, Ordering::SeqCst);
            panic!("doh!");
        });
    }
    assert!(ran.load(Ordering::SeqCst));
    assert_eq!(future.result(), Ok(5));
}

/// A waker that counts its wake-ups and unparks the thread that polls.
struct CountingWaker {
    wakes: AtomicUsize,
    thread: Thread,
}

impl CountingWaker {
    fn new() -> Arc<Self> {
        Arc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
            thread: thread::current(),
        })
    }

    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Parks until woken at least once; a hang fails the test.
    fn wait_for_wake(&self) {
        let deadline = Instant::now() + HANG;
        while self.wakes() == 0 {
            let now = Instant::now();
            assert!(now < deadline, "the waker was never woken");
            thread::park_timeout(deadline - now);
        }
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn poll_once<T>(future: &mut Future<T>, waker: &Arc<CountingWaker>) -> Poll<Result<T, Error>> {
    let waker = Waker::from(Arc::clone(waker));
    std::future::Future::poll(Pin::new(future), &mut Context::from_waker(&waker))
}

#[test]
fn await_gives_the_outcome() {
    let pool = ThreadPoolExecutor::new(2);
    assert_eq!(block_on(pool.submit(|| 6 * 7)), Ok(42));
    assert!(matches!(
        block_on(pool.submit(|| -> u8 { panic!("async panic") })),
        Err(Error::Panicked { message, .. }) if message == "async panic"
    ));

    let (busy_pool, busy, release) = busy_pool();
    let cancelled = busy_pool.submit(|| 1);
    assert!(cancelled.cancel());
    assert_eq!(block_on(cancelled), Err(Error::Cancelled));
    release.send(()).unwrap();
    assert_eq!(block_on(busy), Ok(()));
}

#[test]
fn await_composes_in_async_code() {
    let pool = ThreadPoolExecutor::new(2);
    let (slow, release) = gated(&pool, 40);
    let fast = pool.submit(|| 2);
    let sum = thread::scope(|scope| {
        let sum = scope.spawn(|| block_on(async { Ok::<_, Error>(slow.await? + fast.await?) }));
        release.send(()).unwrap();
        sum.join().unwrap()
    });
    assert_eq!(sum, Ok(42));
}

#[test]
fn the_waker_is_woken_when_the_task_completes_later() {
    let pool = ThreadPoolExecutor::new(1);
    let (mut future, release) = gated(&pool, 11);
    let waker = CountingWaker::new();

    assert!(poll_once(&mut future, &waker).is_pending());
    assert!(
        poll_once(&mut future, &waker).is_pending(),
        "same waker again"
    );
    assert_eq!(waker.wakes(), 0, "woken before the task finished");

    release.send(()).unwrap();
    waker.wait_for_wake();
    assert_eq!(poll_once(&mut future, &waker), Poll::Ready(Ok(11)));
    assert_eq!(waker.wakes(), 1, "woken more than once");
}

#[test]
fn a_poll_with_a_different_waker_replaces_the_first() {
    let pool = ThreadPoolExecutor::new(1);
    let (mut future, release) = gated(&pool, 12);
    let first = CountingWaker::new();
    let second = CountingWaker::new();

    assert!(poll_once(&mut future, &first).is_pending());
    assert!(poll_once(&mut future, &second).is_pending());

    release.send(()).unwrap();
    second.wait_for_wake();
    assert_eq!(poll_once(&mut future, &second), Poll::Ready(Ok(12)));
    assert_eq!(second.wakes(), 1);
    assert_eq!(first.wakes(), 0, "the replaced waker was woken");
}

#[test]
fn a_waker_is_woken_when_the_future_is_cancelled() {
    let (pool, busy, release) = busy_pool();
    let mut queued = pool.submit(|| 1);
    let waker = CountingWaker::new();
    assert!(poll_once(&mut queued, &waker).is_pending());
    assert!(queued.cancel());
    assert_eq!(waker.wakes(), 1, "cancel() wakes the task at once");
    assert_eq!(
        poll_once(&mut queued, &waker),
        Poll::Ready(Err(Error::Cancelled))
    );
    release.send(()).unwrap();
    busy.result().unwrap();
}

#[test]
fn polling_after_ready_reports_already_retrieved() {
    let pool = ThreadPoolExecutor::new(1);
    let mut future = finished(&pool, 3);
    let waker = CountingWaker::new();
    assert_eq!(poll_once(&mut future, &waker), Poll::Ready(Ok(3)));
    assert_eq!(
        poll_once(&mut future, &waker),
        Poll::Ready(Err(Error::AlreadyRetrieved))
    );
    assert_eq!(waker.wakes(), 0, "a ready poll registers no waker");
}
