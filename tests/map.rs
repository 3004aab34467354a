//! `ThreadPoolExecutor::map` through the public API: order, laziness,
//! endless input, the bound on read-ahead, per-item errors inside a chunk,
//! cancellation on drop, the time limit, both chunk-size modes, and clean
//! and failing chunks in any order.
//!
//! Tasks are held at gates (channels they receive from) so that the test
//! decides when they finish; timed waits appear only where a timeout is the
//! feature under test or, with a generous limit, as a hang detector.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concurrent_futures::{Chunksize, Error, ThreadPoolExecutor};

mod common;
use common::hold_the_worker;

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(30);

fn fixed(n: usize) -> Chunksize {
    Chunksize::Fixed(NonZeroUsize::new(n).unwrap())
}

/// An input of `0..` that counts how many items were taken from it.
fn counted(pulled: &Arc<AtomicUsize>) -> impl Iterator<Item = u64> {
    let pulled = Arc::clone(pulled);
    (0u64..).inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

// Ported from CPython's test_concurrent_futures (executor.py,
// ExecutorTest.test_map), with and without a chunk size.
#[test]
fn results_come_in_input_order() {
    let pool = ThreadPoolExecutor::new(4);
    let expected: Vec<u64> = (0..10u64).map(|x| x.pow(x as u32)).collect();
    let auto: Vec<u64> = pool
        .map(|x: u64| x.pow(x as u32), 0..10u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(auto, expected);
    let chunked: Vec<u64> = pool
        .map(|x: u64| x.pow(x as u32), 0..10u64)
        .chunksize(fixed(3))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, expected);
}

#[test]
fn results_keep_input_order_when_tasks_finish_out_of_order() {
    // Item 0 waits until item 3 has run on the other worker, so it finishes
    // last; it is still yielded first.
    let pool = ThreadPoolExecutor::new(2);
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let finished = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&finished);
    let results: Vec<u32> = pool
        .map(
            move |x: u32| {
                if x == 0 {
                    let _ = gate.lock().unwrap().recv_timeout(HANG);
                }
                log.lock().unwrap().push(x);
                if x == 3 {
                    release.send(()).unwrap();
                }
                x * 10
            },
            0..6,
        )
        .chunksize(fixed(1))
        .window(4)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, [0, 10, 20, 30, 40, 50]);
    let finished = finished.lock().unwrap();
    let position = |x| finished.iter().position(|&y| y == x).unwrap();
    assert!(position(0) > position(3), "finished in order {finished:?}");
}

// The reverse of CPython's test_concurrent_futures (test_thread_pool.py,
// ThreadPoolExecutorTest.test_map_submits_without_iteration, issue 11777):
// Python submits the whole input when map is called (gh-74028); here map is
// lazy and neither reads the input nor runs anything before the first next.
#[test]
fn nothing_is_read_or_run_before_the_first_next() {
    let pool = ThreadPoolExecutor::new(2);
    let pulled = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&ran);
    let map = pool.map(
        move |x: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            x
        },
        counted(&pulled).take(10),
    );
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "map read its input early");
    // Shutting down waits for every task that was submitted: none was.
    pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "map ran a task early");
    drop(map);

    let pool = ThreadPoolExecutor::new(2);
    let calls = Arc::clone(&ran);
    let pulled = Arc::new(AtomicUsize::new(0));
    let mut map = pool.map(
        move |x: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            x
        },
        counted(&pulled).take(10),
    );
    assert_eq!(pulled.load(Ordering::SeqCst), 0);
    assert_eq!(map.next(), Some(Ok(0)));
    assert!(pulled.load(Ordering::SeqCst) >= 1);
    assert!(ran.load(Ordering::SeqCst) >= 1);
}

#[test]
fn works_over_an_endless_input() {
    let pool = ThreadPoolExecutor::new(2);
    let doubled: Vec<u64> = pool
        .map(|x: u64| x * 2, 0u64..)
        .take(1000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(doubled, (0..1000u64).map(|x| x * 2).collect::<Vec<_>>());

    let chunked: Vec<u64> = pool
        .map(|x: u64| x + 1, 0u64..)
        .chunksize(fixed(16))
        .window(2)
        .take(100)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, (1..=100u64).collect::<Vec<_>>());
}

// The bound that lets map run over any input in constant memory: at most
// `window` chunks are in flight, besides the chunk whose results are being
// handed out. After each next(), the items taken from the input are the
// consumed ones, the rest of the current chunk and `window` chunks ahead —
// never more. (With a chunk size of one this is `consumed + window`, the
// same read-ahead as Python 3.14's `buffersize`.)
#[test]
fn read_ahead_is_bounded_by_the_window() {
    let pool = ThreadPoolExecutor::new(2);
    for (chunk, window) in [(1, 1), (1, 4), (3, 2), (5, 1), (4, 3)] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut map = pool
            .map(|x: u64| x, counted(&pulled))
            .chunksize(fixed(chunk))
            .window(window);
        assert_eq!(pulled.load(Ordering::SeqCst), 0);
        for consumed in 1..=60usize {
            assert_eq!(map.next(), Some(Ok(consumed as u64 - 1)));
            let started_chunks = consumed.div_ceil(chunk);
            let bound = started_chunks * chunk + window * chunk;
            let taken = pulled.load(Ordering::SeqCst);
            assert!(
                taken <= bound,
                "chunk {chunk}, window {window}: {taken} items taken after {consumed} consumed"
            );
            if chunk == 1 {
                assert!(taken <= consumed + window);
            }
        }
    }
}

#[test]
fn a_window_of_zero_is_taken_as_one() {
    let pool = ThreadPoolExecutor::new(2);
    let pulled = Arc::new(AtomicUsize::new(0));
    let mut map = pool
        .map(|x: u64| x, counted(&pulled))
        .chunksize(fixed(1))
        .window(0);
    for consumed in 1..=10 {
        assert_eq!(map.next(), Some(Ok(consumed - 1)));
        assert!(pulled.load(Ordering::SeqCst) <= consumed as usize + 1);
    }
}

// Ported from CPython's test_concurrent_futures (executor.py,
// ExecutorTest.test_map_exception), inside a chunk: Python loses the whole
// chunk to one failing item; here each item's result stands on its own.
#[test]
fn each_items_panic_is_reported_on_its_own_inside_a_chunk() {
    let pool = ThreadPoolExecutor::new(2);
    let results: Vec<Result<u32, Error>> = pool
        .map(
            |x: u32| {
                if x % 4 == 2 {
                    panic!("item {x} failed");
                }
                x
            },
            0..12,
        )
        .chunksize(fixed(4))
        .collect();
    assert_eq!(results.len(), 12);
    for (x, result) in (0..12u32).zip(results) {
        if x % 4 == 2 {
            match result {
                Err(Error::Panicked {
                    message, location, ..
                }) => {
                    assert_eq!(message, format!("item {x} failed"));
                    assert!(location.unwrap_or_default().contains("map.rs"));
                }
                other => panic!("item {x}: expected its panic, got {other:?}"),
            }
        } else {
            assert_eq!(result, Ok(x), "item {x} shares a chunk with a failure");
        }
    }
}

// Dropping the iterator cancels the chunks that have not started; items
// beyond the window are never even read.
#[test]
fn dropping_the_iterator_cancels_what_has_not_started() {
    let pool = ThreadPoolExecutor::new(1);
    let pulled = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let log = Arc::clone(&ran);
    let mut map = pool
        .map(
            move |x: u64| {
                log.lock().unwrap().push(x);
                if x == 1 {
                    // The only worker stays here while the map is dropped.
                    started_tx.send(()).unwrap();
                    let _ = gate.lock().unwrap().recv();
                }
                x
            },
            counted(&pulled).take(100),
        )
        .chunksize(fixed(1))
        .window(4);
    assert_eq!(map.next(), Some(Ok(0)));
    started.recv().unwrap();
    drop(map);
    release.send(()).unwrap();
    pool.shutdown();

    assert_eq!(*ran.lock().unwrap(), [0, 1], "a cancelled item ran");
    // Item 0, then the window: items 1 to 4.
    assert_eq!(pulled.load(Ordering::SeqCst), 5);
}

// Ported from CPython's test_concurrent_futures (test_thread_pool.py,
// ThreadPoolExecutorTest.test_executor_map_current_future_cancel): with the
// pool saturated and a zero timeout, next() times out, and neither the item
// waited for nor the one behind it ever runs.
#[test]
fn a_timeout_cancels_the_item_waited_for_and_the_rest() {
    let pool = ThreadPoolExecutor::new(1);
    let (busy, release) = hold_the_worker(&pool);
    let log = Arc::new(Mutex::new(Vec::new()));
    let ran = Arc::clone(&log);
    let mut map = pool
        .map(
            move |ident: &'static str| ran.lock().unwrap().push(ident),
            ["second", "third"],
        )
        .chunksize(fixed(1))
        .timeout(Duration::ZERO);
    assert_eq!(map.next(), Some(Err(Error::Timeout(Duration::ZERO))));
    assert_eq!(map.next(), None, "the iterator ends after a time-out");
    assert_eq!(map.next(), None);
    release.send(()).unwrap();
    busy.result().unwrap();
    pool.shutdown();
    assert!(
        log.lock().unwrap().is_empty(),
        "ran: {:?}",
        log.lock().unwrap()
    );
}

// Ported from CPython's test_concurrent_futures (executor.py,
// ExecutorTest.test_map_timeout): the results that arrive in time are
// yielded, then one time-out, then the iterator ends.
#[test]
fn a_timeout_yields_the_results_in_time_then_timeout_then_ends() {
    let pool = ThreadPoolExecutor::new(2);
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let limit = Duration::from_millis(500);
    let mut map = pool
        .map(
            move |x: u32| {
                if x == 2 {
                    let _ = gate.lock().unwrap().recv();
                }
                x
            },
            0..3,
        )
        .chunksize(fixed(1))
        .timeout(limit);
    assert_eq!(map.next(), Some(Ok(0)));
    assert_eq!(map.next(), Some(Ok(1)));
    assert_eq!(map.next(), Some(Err(Error::Timeout(limit))));
    assert_eq!(map.next(), None);
    release.send(()).unwrap();
}

#[test]
fn a_map_that_finishes_in_time_is_unaffected_by_its_timeout() {
    let pool = ThreadPoolExecutor::new(2);
    let all: Vec<u32> = pool
        .map(|x: u32| x, 0..50)
        .timeout(HANG)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
}

#[test]
fn map_after_shutdown_yields_shutdown_for_each_item() {
    let pool = ThreadPoolExecutor::new(2);
    pool.shutdown();
    let results: Vec<Result<u32, Error>> = pool.map(|x: u32| x, 0..5).collect();
    assert_eq!(results, vec![Err(Error::Shutdown); 5]);
    let chunked: Vec<Result<u32, Error>> = pool.map(|x: u32| x, 0..5).chunksize(fixed(2)).collect();
    assert_eq!(chunked, vec![Err(Error::Shutdown); 5]);
}

#[test]
fn fixed_and_automatic_chunks_give_the_same_results_over_100_000_items() {
    let pool = ThreadPoolExecutor::new(2);
    let expected: Vec<u64> = (0..100_000u64).map(|x| x * 3 + 1).collect();
    for chunksize in [Chunksize::Auto, fixed(7), fixed(1000)] {
        let results: Vec<u64> = pool
            .map(|x: u64| x * 3 + 1, 0..100_000u64)
            .chunksize(chunksize)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(results == expected, "{chunksize:?} gave wrong results");
    }
}

/// While it waits for a chunk that no worker has started, the consumer
/// runs that chunk itself: a map goes on even when every worker is busy.
#[test]
fn the_consumer_runs_chunks_no_worker_has_started() {
    let pool = ThreadPoolExecutor::new(1);
    let (busy, release) = hold_the_worker(&pool);
    let consumer = std::thread::current().id();
    let ran_here = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran_here);
    let doubled: Vec<u64> = pool
        .map(
            move |x: u64| {
                if std::thread::current().id() == consumer {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                x * 2
            },
            0..100,
        )
        .chunksize(fixed(10))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(doubled, (0..100).map(|x| x * 2).collect::<Vec<u64>>());
    assert_eq!(
        ran_here.load(Ordering::SeqCst),
        100,
        "the one worker was busy throughout"
    );
    release.send(()).unwrap();
    busy.result().unwrap();
}

/// A pool with an initializer may have prepared its threads for its tasks,
/// so its chunks run on those threads only, never on the consumer.
#[test]
fn with_an_initializer_chunks_run_on_pool_threads_only() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .thread_name_prefix("prepared")
        .initializer(|| -> Result<(), String> { Ok(()) })
        .build()
        .unwrap();
    let names: Vec<String> = pool
        .map(
            |_: u32| std::thread::current().name().unwrap_or("").to_owned(),
            0..1000,
        )
        .chunksize(fixed(10))
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        names.iter().all(|name| name.starts_with("prepared")),
        "ran elsewhere: {:?}",
        names.iter().find(|name| !name.starts_with("prepared"))
    );
}

/// Under a time limit the consumer only waits, so that it notices the
/// limit: a map whose one worker is busy times out rather than running its
/// chunks on the consumer.
#[test]
fn under_a_timeout_the_consumer_does_not_run_chunks() {
    let pool = ThreadPoolExecutor::new(1);
    let (busy, release) = hold_the_worker(&pool);
    let mut map = pool
        .map(|x: u64| x, 0..10)
        .timeout(Duration::from_millis(50));
    assert!(matches!(map.next(), Some(Err(Error::Timeout(_)))));
    assert!(map.next().is_none());
    release.send(()).unwrap();
    busy.result().unwrap();
}

/// A map of `x * 3` over `0..failing.len()` on `pool`, in which item `x`
/// panics with "item {x} failed" where `failing[x]`.
fn map_failing(
    pool: &ThreadPoolExecutor,
    failing: &Arc<Vec<bool>>,
) -> concurrent_futures::Map<std::ops::Range<usize>, usize> {
    let shared = Arc::clone(failing);
    pool.map(
        move |x: usize| {
            if shared[x] {
                panic!("item {x} failed");
            }
            x * 3
        },
        0..failing.len(),
    )
}

/// Every item has its own outcome, in order: `x * 3`, or its panic.
fn assert_in_place(
    failing: &[bool],
    results: Vec<Result<usize, Error>>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prelude::*;
    prop_assert_eq!(results.len(), failing.len());
    for (x, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => {
                prop_assert!(!failing[x], "item {} should have failed", x);
                prop_assert_eq!(value, x * 3);
            }
            Err(Error::Panicked { message, .. }) => {
                prop_assert!(failing[x], "item {} failed: {}", x, message);
                prop_assert_eq!(message, format!("item {x} failed"));
            }
            Err(other) => prop_assert!(false, "item {}: {:?}", x, other),
        }
    }
    Ok(())
}

/// Chunks in which no item failed are yielded from a fast lane, the others
/// item by item with their failures in place: runs of clean and failing
/// chunks, in any order, sizes and positions, give every item its own
/// outcome, in order.
#[test]
fn clean_and_failing_chunks_in_any_order_keep_every_outcome_in_place() {
    use proptest::prelude::*;
    let pool = ThreadPoolExecutor::new(2);
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        failing in proptest::collection::vec(proptest::bool::weighted(0.1), 1..300),
        chunk in 1usize..40,
        automatic in any::<bool>(),
    )| {
        let failing = Arc::new(failing);
        let map = map_failing(&pool, &failing);
        let map = if automatic { map } else { map.chunksize(fixed(chunk)) };
        assert_in_place(&failing, map.collect())?;
    });
}

/// `fold` (and so `count`, `sum`, `for_each` and the adapters over them),
/// which loops over a clean chunk's values on its own, gives exactly the
/// items `next` gives, also when it starts half-way through a chunk and
/// when chunks fail.
#[test]
fn fold_after_some_next_calls_gives_the_items_next_gives() {
    use proptest::prelude::*;
    let pool = ThreadPoolExecutor::new(2);
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        failing in proptest::collection::vec(proptest::bool::weighted(0.1), 1..300),
        chunk in 1usize..40,
        first in 0usize..50,
    )| {
        let failing = Arc::new(failing);
        let mut map = map_failing(&pool, &failing).chunksize(fixed(chunk));
        let seen: Vec<Result<usize, Error>> = map.by_ref().take(first).collect();
        let seen = map.fold(seen, |mut seen, item| {
            seen.push(item);
            seen
        });
        assert_in_place(&failing, seen)?;
    });
}
