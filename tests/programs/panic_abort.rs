//! A program built with `-C panic=abort` by `tests/panic_abort.rs`.
//!
//! `processes`: a task's panic kills its worker with `SIGABRT`, which the
//! pool reports as `Error::WorkerDied`; the pool replaces the worker and
//! goes on. `threads`: a task's panic aborts the whole program.
//!
//! `main` never calls `concurrent_futures::init()` before using the pool,
//! and calls it late, at the end: on Linux workers are caught before
//! `main`, so neither changes anything. Each line it prints says what
//! happened, for the test to read; "main ran" must appear once, since a
//! worker never runs `main`.

use std::num::NonZeroUsize;

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor, ThreadPoolExecutor};

fn fails_on_13(n: u32) -> u32 {
    assert_ne!(n, 13, "thirteen is unlucky");
    n
}

fn report(n: u32, outcome: Result<u32, Error>) {
    match outcome {
        Ok(value) => println!("item {n}: ok {value}"),
        Err(Error::WorkerDied { signal, .. }) => {
            println!("item {n}: worker died, signal {signal:?}")
        }
        Err(other) => println!("item {n}: other error: {other}"),
    }
}

fn main() {
    println!("main ran");
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "threads" {
        let pool = ThreadPoolExecutor::new(1);
        let outcome = pool.submit(|| fails_on_13(13)).result();
        println!("the program survived: {outcome:?}");
        return;
    }
    let pool = ProcessPoolExecutor::new(1).expect("start the pool");
    report(13, pool.submit(fails_on_13, 13).result());
    report(21, pool.submit(fails_on_13, 21).result());
    let one = Chunksize::Fixed(NonZeroUsize::MIN);
    for (n, outcome) in (10..16).zip(pool.map(fails_on_13, 10..16).chunksize(one)) {
        report(n, outcome);
    }
    concurrent_futures::init();
    println!("done");
}
