//! A long `map` on the process pool with a progress bar: all the primes
//! below 12 000 000 by trial division, in 120 blocks of 100 000 numbers,
//! the bar advancing as each block's result comes back.
//!
//! Ported from `primes_parallel` of the "Python multithreading module"
//! tutorial (`check_prime` mapped over a range on a `multiprocessing.Pool`,
//! then `head_tail` to show the first and last ten primes), with the `tqdm`
//! progress bar that tutorial imports, here [`indicatif`]. The bar is drawn
//! only on a terminal; elsewhere only the summary is printed.
//!
//! Run with `cargo run --release --example progress` (a few seconds on 2 cores).

use std::time::Instant;

use concurrent_futures::ProcessPoolExecutor;
use indicatif::{ProgressBar, ProgressStyle};

/// The end of the range to search (exclusive).
const LIMIT: u64 = 12_000_000;
/// Numbers per task.
const BLOCK: u64 = 100_000;

/// Trial division by odd numbers, as in the tutorial.
fn check_prime(n: u64) -> bool {
    match n {
        0 | 1 => false,
        2 => true,
        _ if n % 2 == 0 => false,
        _ => (3..)
            .step_by(2)
            .take_while(|d| d * d <= n)
            .all(|d| n % d != 0),
    }
}

/// The primes in `start..end`: one task of the map.
fn primes_in((start, end): (u64, u64)) -> Vec<u64> {
    (start..end).filter(|&n| check_prime(n)).collect()
}

/// The count and the first and last ten, like the tutorial's `head_tail`.
fn head_tail(primes: &[u64]) {
    let head = &primes[..primes.len().min(10)];
    let tail = &primes[primes.len().saturating_sub(10)..];
    println!("{} {head:?} {tail:?}", primes.len());
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    concurrent_futures::init();

    let blocks: Vec<(u64, u64)> = (10..LIMIT)
        .step_by(BLOCK as usize)
        .map(|start| (start, (start + BLOCK).min(LIMIT)))
        .collect();
    let pool = ProcessPoolExecutor::new(cpus())?;
    println!(
        "Searching 10..{LIMIT} for primes: {} blocks on {} worker processes",
        blocks.len(),
        pool.max_workers()
    );

    let bar = ProgressBar::new(blocks.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} blocks ({percent}%), about {eta} left",
    )?);

    let start = Instant::now();
    let mut primes = Vec::new();
    // `map` yields each block's primes in input order, as soon as that
    // block (and every one before it) is done; the bar moves with it.
    for block in pool.map(primes_in, blocks) {
        primes.extend(block?);
        bar.inc(1);
    }
    bar.finish_and_clear();

    head_tail(&primes);
    println!("found in {:.2?}", start.elapsed());
    Ok(())
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
