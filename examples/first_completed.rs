//! Waiting for tasks of random length: `as_completed` yields them in the
//! order they finish; `wait` with `ReturnWhen::FirstCompleted` in a loop
//! handles each as soon as it is done; `wait` with
//! `ReturnWhen::AllCompleted` (and a time limit) splits them into done and
//! not done.
//!
//! Ported from the `return_after_5_secs` programs of the "Multiprocessing
//! and Multithreading" tutorial (`as_completed`, then `wait`), with tenths
//! of a second where the tutorial sleeps `randint(1, 5)` seconds.
//!
//! Run with `cargo run --release --example first_completed`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::thread::sleep;
use std::time::{Duration, Instant};

use concurrent_futures::{
    as_completed, wait, DoneAndNotDone, Error, Future, ReturnWhen, ThreadPoolExecutor,
};

/// A random whole number in `low..=high`. Each std `RandomState` hashes
/// with keys of its own, random for every run: randomness enough to choose
/// sleeps, with no generator to write.
fn randint(low: u64, high: u64) -> u64 {
    low + RandomState::new().hash_one(0u8) % (high - low + 1)
}

/// Sleeps 100 to 500 ms, like the tutorial's 1 to 5 seconds.
fn return_after_a_while(num: usize, tenths: u64) -> String {
    sleep(Duration::from_millis(100 * tenths));
    format!("Return of {num} (slept {tenths}00 ms)")
}

/// Five tasks on a pool of five threads, each with its own random sleep.
fn submit_five(pool: &ThreadPoolExecutor) -> Vec<Future<String>> {
    (0..5)
        .map(|num| {
            let tenths = randint(1, 5);
            pool.submit(move || return_after_a_while(num, tenths))
        })
        .collect()
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();
    let pool = ThreadPoolExecutor::new(5);

    println!("as_completed: each result as soon as its task is done");
    let start = Instant::now();
    for future in as_completed(submit_five(&pool)) {
        let ms = start.elapsed().as_millis();
        println!("  {ms:>4} ms  {}", future.result()?);
    }

    println!("\nwait(FirstCompleted) in a loop: the same, one wake-up at a time");
    let start = Instant::now();
    let mut pending = submit_five(&pool);
    while !pending.is_empty() {
        let DoneAndNotDone { done, not_done } = wait(pending, ReturnWhen::FirstCompleted, None);
        let ms = start.elapsed().as_millis();
        // Tasks that finish together come back together.
        for future in done {
            println!(
                "  {ms:>4} ms  {}  ({} still running)",
                future.result()?,
                not_done.len()
            );
        }
        pending = not_done;
    }

    println!("\nwait(AllCompleted) with a 250 ms time limit, then without one");
    let futures = submit_five(&pool);
    let limit = Duration::from_millis(250);
    let first = wait(futures, ReturnWhen::AllCompleted, Some(limit));
    let (done, not_done) = (first.done.len(), first.not_done.len());
    println!("  after 250 ms: done = {done}, not_done = {not_done}");
    let rest = wait(first.not_done, ReturnWhen::AllCompleted, None);
    let (done, not_done) = (rest.done.len(), rest.not_done.len());
    println!("  then:         done = {done} more, not_done = {not_done}");
    for future in first.done.into_iter().chain(rest.done) {
        println!("  {}", future.result()?);
    }
    Ok(())
}
