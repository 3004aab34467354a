//! `Executor`, the trait every pool implements, through generic code: the
//! same functions run on the thread pool and on the process pool and give
//! the same answers; each pool runs them where it should (a thread of this
//! process, or a worker process); `map`'s options, failures, shutdown and
//! `max_workers` behave as each pool's own methods do.
//!
//! The workers are this very test binary, re-executed.

use std::num::NonZeroUsize;

use concurrent_futures::{Chunksize, Error, Executor, ThreadPoolExecutor};

/// The seed's trial division.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut divisor = 3;
    while divisor * divisor <= n {
        if n % divisor == 0 {
            return false;
        }
        divisor += 2;
    }
    true
}

/// Counts the primes in `range` on any pool.
fn count_primes(pool: &impl Executor, range: std::ops::Range<u64>) -> Result<usize, Error> {
    pool.map(is_prime, range)
        .map(|prime| prime.map(usize::from))
        .sum()
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn fails_on_13(n: u32) -> u32 {
    assert_ne!(n, 13, "thirteen");
    n
}

/// Everything the trait offers, on `pool`; `elsewhere` says whether its
/// tasks run in another process.
fn exercise(pool: &impl Executor, elsewhere: bool) {
    assert_eq!(pool.max_workers(), 2);

    // The seed: primes below 100 000 (9592), by map and by submit.
    assert_eq!(count_primes(pool, 0..100_000), Ok(9592));
    let big = pool.submit(is_prime, 112_272_535_095_293);
    assert_eq!(big.result(), Ok(true));

    // Several arguments as a tuple; results in input order, whatever the
    // chunk size.
    let sums: Vec<u64> = pool
        .map(|(a, b): (u64, u64)| a + b, (0..50).map(|i| (i, 2 * i)))
        .chunksize(Chunksize::Fixed(NonZeroUsize::new(7).unwrap()))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sums, (0..50).map(|i| 3 * i).collect::<Vec<_>>());

    // Where the task ran.
    let ran_in = pool.submit(pid, ()).result().unwrap();
    assert_eq!(ran_in != std::process::id(), elsewhere, "ran in {ran_in}");

    // A panic fails its item alone.
    let outcomes: Vec<_> = pool.map(fails_on_13, 10..16).collect();
    for (n, outcome) in (10..16).zip(&outcomes) {
        match outcome {
            Ok(value) => assert_eq!(*value, n),
            Err(Error::Panicked { message, .. }) => {
                assert_eq!(n, 13);
                assert!(message.contains("thirteen"), "{message}");
            }
            Err(other) => panic!("item {n}: {other}"),
        }
    }
    assert!(outcomes[3].is_err());

    // Shutdown waits for what was submitted and refuses what comes after.
    let queued: Vec<_> = (0..8u64).map(|n| pool.submit(is_prime, n)).collect();
    pool.shutdown();
    for (n, f) in (0..8u64).zip(queued) {
        assert_eq!(f.result(), Ok(is_prime(n)));
    }
    assert_eq!(pool.submit(is_prime, 7).result(), Err(Error::Shutdown));
    pool.shutdown(); // idempotent
}

#[test]
fn the_thread_pool_runs_generic_code_on_its_threads() {
    let pool = ThreadPoolExecutor::new(2);
    // The closure-taking submit is still the one a concrete call finds.
    let offset = 1;
    assert_eq!(pool.submit(move || 41 + offset).result(), Ok(42));
    exercise(&pool, false);
}

#[cfg(target_os = "linux")]
#[test]
fn the_process_pool_runs_generic_code_in_its_workers() {
    let pool = concurrent_futures::ProcessPoolExecutor::new(2).unwrap();
    exercise(&pool, true);
}

/// A generic caller that picks the pool at run time.
#[cfg(target_os = "linux")]
#[test]
fn both_pools_give_the_same_answers() {
    fn primes_in(pool: &impl Executor) -> Vec<bool> {
        pool.map(is_prime, 1_000_000..1_000_200)
            .collect::<Result<_, _>>()
            .unwrap()
    }
    let threads = ThreadPoolExecutor::new(2);
    let processes = concurrent_futures::ProcessPoolExecutor::new(2).unwrap();
    let expected: Vec<bool> = (1_000_000..1_000_200).map(is_prime).collect();
    assert_eq!(primes_in(&threads), expected);
    assert_eq!(primes_in(&processes), expected);
}
