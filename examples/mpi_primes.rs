//! The primes seed over MPI ranks: counting primes by trial division on
//! every rank but 0, beside the same count done sequentially on rank 0;
//! then one large prime as a single `submit`, and a map in which one item
//! aborts its process, which costs that item alone.
//!
//! Needs the `mpi` feature and an MPI (Debian: `apt-get install
//! libopenmpi-dev openmpi-bin`):
//!
//! ```text
//! cargo build --release --features mpi --example mpi_primes
//! mpirun -n 3 target/release/examples/mpi_primes
//! # spawn mode: rank 0 alone, which starts 2 worker ranks itself
//! target/release/examples/mpi_primes --spawn 2
//! ```
//!
//! (As root add `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`;
//! more ranks than cores need `--oversubscribe`.)

use std::time::Instant;

use concurrent_futures::mpi::MpiPoolExecutor;
use concurrent_futures::{Error, Future};

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

/// Aborts its process on 13: on a rank's local pool, one item fails.
fn fragile(n: u64) -> u64 {
    if n == 13 {
        std::process::abort();
    }
    n * n
}

fn main() -> Result<(), Error> {
    concurrent_futures::init(); // every rank but 0 serves from here, and exits
    let args: Vec<String> = std::env::args().collect();
    let pool = match args.iter().position(|a| a == "--spawn") {
        Some(at) => {
            let ranks = args.get(at + 1).and_then(|n| n.parse().ok()).unwrap_or(2);
            MpiPoolExecutor::builder().spawn(ranks).build()?
        }
        None => MpiPoolExecutor::new()?,
    };
    println!(
        "{} worker ranks, {} tasks at once",
        pool.worker_ranks(),
        pool.max_workers()
    );

    let range = 10..2_500_000u64;
    let start = Instant::now();
    let sequential = range.clone().filter(|&n| is_prime(n)).count();
    let alone = start.elapsed();

    let start = Instant::now();
    let mut count = 0;
    for result in pool.map(is_prime, range) {
        count += usize::from(result?);
    }
    let spread = start.elapsed();
    assert_eq!(count, sequential);
    println!(
        "{count} primes: sequential {alone:.2?}, on the ranks {spread:.2?} ({:.2}x)",
        alone.as_secs_f64() / spread.as_secs_f64()
    );

    let big: Future<bool> = pool.submit(is_prime, 112_272_535_095_293);
    println!("112272535095293 is prime: {}", big.result()?);

    let outcomes: Vec<Result<u64, Error>> = pool.map(fragile, 10..16).collect();
    for (n, outcome) in (10..16).zip(&outcomes) {
        match outcome {
            Ok(square) => println!("{n}^2 = {square}"),
            Err(e) => println!("{n}: {e}"),
        }
    }
    assert!(outcomes.iter().filter(|o| o.is_err()).count() == 1);
    Ok(())
}
