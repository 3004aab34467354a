//! The main demonstration: counting primes by trial division, sequentially,
//! on the thread pool and on the process pool, with times and speed-ups;
//! then Python's classic `is_prime` over 100 large integers with chunk
//! size 1.
//!
//! Run with `cargo run --release --example primes`.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor, ThreadPoolExecutor};

/// Trial division, as in the Python tutorials.
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

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();

    let range = 10..2_500_000u64;
    let cpus = num_cpus();
    println!("Counting primes in {range:?} on {cpus} CPUs");

    let (sequential, t_seq) = timed(|| range.clone().filter(|&n| is_prime(n)).count());
    println!("  sequential:    {sequential} primes in {t_seq:>10.2?}");

    let threads = ThreadPoolExecutor::new(cpus);
    let (on_threads, t_threads) = timed(|| -> Result<usize, Error> {
        let flags = threads.map(is_prime, range.clone());
        flags
            .filter(|r| !matches!(r, Ok(false)))
            .map(|r| r.map(|_| 1))
            .sum()
    });
    let on_threads = on_threads?;
    println!(
        "  thread pool:   {on_threads} primes in {t_threads:>10.2?}  ({:.2}x)",
        t_seq.as_secs_f64() / t_threads.as_secs_f64()
    );

    let processes = ProcessPoolExecutor::new(cpus)?;
    let (on_processes, t_processes) = timed(|| -> Result<usize, Error> {
        let flags = processes.map(is_prime, range.clone());
        flags
            .filter(|r| !matches!(r, Ok(false)))
            .map(|r| r.map(|_| 1))
            .sum()
    });
    let on_processes = on_processes?;
    println!(
        "  process pool:  {on_processes} primes in {t_processes:>10.2?}  ({:.2}x, pool start included)",
        t_seq.as_secs_f64() / t_processes.as_secs_f64()
    );
    assert_eq!(sequential, on_threads);
    assert_eq!(sequential, on_processes);

    println!("\nis_prime over the 100 integers from 112 272 535 095 293 (chunk size 1):");
    let first = 112_272_535_095_293u64;
    let numbers: Vec<u64> = (first..first + 100).collect();
    let one = Chunksize::Fixed(NonZeroUsize::MIN);
    let (flags, t_chunk1) = timed(|| {
        processes
            .map(is_prime, numbers.clone())
            .chunksize(one)
            .collect::<Result<Vec<bool>, Error>>()
    });
    for (number, prime) in numbers.iter().zip(flags?) {
        if prime {
            println!("  {number} is prime");
        }
    }
    println!("  checked 100 numbers in {t_chunk1:.2?}");
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(2, NonZeroUsize::get)
}
