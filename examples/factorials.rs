//! 1! … 48! computed on the process pool and printed in order, as exact
//! integers: `map` hands results back in input order, whichever worker
//! finished first, and any serde type can travel — here a small big-integer
//! type of the example's own.
//!
//! Ported from the lab "compute 1!…48! using a multiprocessing pool" of the
//! "Multithreading and Multiprocessing" tutorial. As the tutorial says, it is
//! not much of a parallelism example: the point is the ordering and the
//! values that travel between processes.
//!
//! Run with `cargo run --release --example factorials`.

use std::fmt;

use concurrent_futures::{Error, ProcessPoolExecutor};
use serde::{Deserialize, Serialize};

/// A non-negative integer of any size, in base 10⁹ digits, least
/// significant first.
///
/// Why not a big-integer crate: this example needs two operations,
/// multiplying by a small number and printing in decimal, and base 10⁹
/// makes both a few lines. A dependency for that would be heavier than
/// the code it saves; a real program doing real arithmetic should use one
/// (`num-bigint`, for instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BigNat {
    /// Never empty; no zero limb at the end except for the number 0.
    limbs: Vec<u32>,
}

const BASE: u64 = 1_000_000_000;

impl BigNat {
    fn one() -> Self {
        BigNat { limbs: vec![1] }
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            // At most (10⁹ - 1) · (2³² - 1) + carry < 2⁶⁴.
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (product % BASE) as u32;
            carry = product / BASE;
        }
        while carry > 0 {
            self.limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
        if factor == 0 {
            self.limbs = vec![0];
        }
    }
}

impl fmt::Display for BigNat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limbs = self.limbs.iter().rev();
        if let Some(most) = limbs.next() {
            write!(f, "{most}")?;
        }
        // Every lower limb has exactly nine digits, leading zeros included.
        limbs.try_for_each(|limb| write!(f, "{limb:09}"))
    }
}

/// n!, the task that runs in a worker process.
fn factorial(n: u32) -> BigNat {
    let mut product = BigNat::one();
    for k in 2..=n {
        product.mul_small(k);
    }
    product
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();

    let pool = ProcessPoolExecutor::new(2)?;
    let numbers = 1..=48u32;
    let results: Vec<BigNat> = pool
        .map(factorial, numbers.clone())
        .collect::<Result<_, _>>()?;
    for (n, value) in numbers.zip(&results) {
        println!("{n} {value}");
    }

    // Checks: up to 34! the value fits a u128, and each result is the one
    // before times n.
    let mut exact = 1u128;
    for (n, value) in (1..=34u32).zip(&results) {
        exact *= u128::from(n);
        assert_eq!(value.to_string(), exact.to_string(), "{n}!");
    }
    for (n, pair) in (2..).zip(results.windows(2)) {
        let mut next = pair[0].clone();
        next.mul_small(n);
        assert_eq!(next, pair[1], "{n}!");
    }
    println!("\nchecked: 1!…34! against u128 arithmetic, and n! = (n-1)! · n up to 48!");
    Ok(())
}
