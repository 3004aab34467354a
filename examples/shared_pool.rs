//! Shared state inside process-pool tasks, which Python refuses: a
//! `multiprocessing::Value` and a `multiprocessing::Queue` passed in the
//! arguments of `ProcessPoolExecutor::map` tasks.
//!
//! The tutorials' primes (`is_prime` over a range, "Python Multiprocessing"
//! and "Python multithreading module", `pool.map(check_prime, …)`) run on a
//! process pool. Every task also adds to a shared counter of primes
//! (`Value<u64>`, under its own lock) and reports each prime it finds with
//! the pid of the worker that found it through a `Queue<(u64, u32)>`,
//! which the parent drains into a `HashMap` as the items come: what the
//! tutorials' `Manager().dict()` was for. In Python, passing a
//! `multiprocessing.Queue` or `Value` to `Pool.map` fails with "Queue
//! objects should only be shared between processes through inheritance";
//! here the handles' descriptors travel beside the task.
//!
//! Run with `cargo run --release --example shared_pool`.

use std::collections::HashMap;

use concurrent_futures::multiprocessing::{Queue, Value};
use concurrent_futures::{Error, ProcessPoolExecutor};

/// The range of the tutorial's primes, shortened.
const NUMBERS: std::ops::Range<u64> = 10..200_000;
/// Numbers per task.
const BLOCK: u64 = 10_000;

fn is_prime(n: u64) -> bool {
    if n < 2 || n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// One task: the primes in `start..end`. Each is put on `found` with this
/// worker's pid, and counted in `count`; returns how many it found.
fn primes_in((start, end, count, found): (u64, u64, Value<u64>, Queue<(u64, u32)>)) -> u64 {
    let pid = std::process::id();
    let mut mine = 0;
    for n in (start..end).filter(|&n| is_prime(n)) {
        found.put((n, pid)).expect("the parent drains the queue");
        mine += 1;
    }
    // Read-modify-write under the value's own lock: no update is lost.
    *count.lock().expect("no task dies holding the counter") += mine;
    mine
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();
    let pool = ProcessPoolExecutor::new(2)?;
    let count = Value::new(0u64)?;
    let found: Queue<(u64, u32)> = Queue::bounded(1024)?;

    // The parent drains the queue while the tasks fill it (the queue is
    // bounded: a task waits in `put` while it is full).
    let drain = {
        let found = found.clone();
        std::thread::spawn(move || {
            let mut by_worker: HashMap<u32, Vec<u64>> = HashMap::new();
            while let Ok((prime, pid)) = found.get() {
                if prime == 0 {
                    break; // the parent's end-of-work marker
                }
                by_worker.entry(pid).or_default().push(prime);
            }
            by_worker
        })
    };

    let blocks = (NUMBERS.start..NUMBERS.end)
        .step_by(BLOCK as usize)
        .map(|start| {
            (
                start,
                (start + BLOCK).min(NUMBERS.end),
                count.clone(),
                found.clone(),
            )
        });
    let per_task: Vec<u64> = pool.map(primes_in, blocks).collect::<Result<_, _>>()?;
    found.put((0, 0))?;
    let by_worker = drain.join().expect("the drain thread does not panic");

    let total: u64 = per_task.iter().sum();
    let reported: usize = by_worker.values().map(Vec::len).sum();
    let expected = NUMBERS.filter(|&n| is_prime(n)).count() as u64;
    println!(
        "{} tasks found {total} primes in {NUMBERS:?} (sequential Rust: {expected})",
        per_task.len()
    );
    println!("the shared Value counted {}", count.get());
    for (pid, primes) in &by_worker {
        println!("  worker {pid} reported {} through the Queue", primes.len());
    }
    assert_eq!(
        (count.get(), reported as u64, total),
        (expected, expected, expected)
    );
    Ok(())
}
