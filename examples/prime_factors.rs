//! CPU-bound work on the process pool's `map`: the prime factors of 20
//! random integers between 100 000 and 50 000 000, first in this process,
//! then on the pool, with the two times and the speed-up.
//!
//! Ported from the "Multiprocessing Pool Example" of the "Multithreading and
//! Multiprocessing" tutorial (`prime_factor` with `pool.map`). Like the
//! original, `prime_factor` tries every divisor in turn, so a number with a
//! large prime factor costs millions of divisions: real work to spread.
//!
//! Run with `cargo run --release --example prime_factors`; the numbers are
//! drawn from a seed taken from the clock, printed first. Pass it back to see
//! the same numbers again: `cargo run --release --example prime_factors -- SEED`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use concurrent_futures::{Error, ProcessPoolExecutor};

/// The prime factors of `value` in ascending order, found as the tutorial
/// finds them: the first divisor that divides is the smallest prime factor,
/// and the search starts again on both halves.
fn prime_factor(value: u32) -> Vec<u32> {
    // Every divisor from 2 up (not only up to the square root), as in the
    // tutorial, to keep its cost.
    for divisor in 2..value.saturating_sub(1) {
        if value % divisor == 0 {
            let mut factors = prime_factor(divisor);
            factors.extend(prime_factor(value / divisor));
            return factors;
        }
    }
    vec![value]
}

/// SplitMix64: a small, fast pseudo-random generator, plenty for choosing
/// test numbers (and no dependency for it).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`, by scaling (Lemire's multiply-shift): the
    /// bias is far below anything this example could notice.
    fn between(&mut self, low: u32, high: u32) -> u32 {
        let span = u64::from(high - low) + 1;
        let scaled = (u128::from(self.next_u64()) * u128::from(span)) >> 64;
        // `scaled < span <= u32::MAX + 1`, so it fits once `low` is added.
        low + scaled as u32
    }
}

fn seed() -> u64 {
    match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("the seed must be a whole number, not {arg:?}");
            std::process::exit(2)
        }),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64),
    }
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();

    let seed = seed();
    println!("seed {seed}");
    let mut rng = SplitMix64(seed);
    let to_factor: Vec<u32> = (0..20).map(|_| rng.between(100_000, 50_000_000)).collect();

    let start = Instant::now();
    let sequential: Vec<Vec<u32>> = to_factor.iter().map(|&n| prime_factor(n)).collect();
    let t_sequential = start.elapsed();

    let start = Instant::now();
    let pool = ProcessPoolExecutor::new(cpus())?;
    // `map` hands the results back in input order, one `Result` per number.
    let results: Vec<Vec<u32>> = pool
        .map(prime_factor, to_factor.iter().copied())
        .collect::<Result<_, _>>()?;
    let t_pool = start.elapsed();

    for (value, factors) in to_factor.iter().zip(&results) {
        println!("The factors of {value} are {factors:?}");
        assert_eq!(factors.iter().product::<u32>(), *value);
    }
    assert_eq!(results, sequential);

    println!();
    println!("in this process:            {}", ms(t_sequential));
    println!(
        "on {} worker processes:     {}  ({:.2}x, pool start included)",
        pool.max_workers(),
        ms(t_pool),
        t_sequential.as_secs_f64() / t_pool.as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1e3)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
