//! Threads share memory, processes do not — and that is also why a crash in
//! a process-pool task costs that task alone.
//!
//! 1. A global list that tasks append to: on the thread pool the
//!    application sees every append; on the process pool each worker
//!    appends to its own copy and the application's list stays as it was.
//! 2. A task that calls `std::process::abort()` on the process pool: its
//!    future fails with the worker's pid and signal, the tasks around it
//!    succeed, the pool replaces the worker and takes more work.
//!
//! Ported from "Global variables with multithreading" and "Global variables
//! with multiprocessing" (`calculate_raise_to` appending to a global
//! `results`) of the "Multithreading & Multiprocessing in python" tutorial,
//! and from the point the tutorials make about processes: separate memory,
//! so one failing does not take the others down.
//!
//! Run with `cargo run --release --example isolation`.

use std::sync::{Mutex, PoisonError};

use concurrent_futures::{Error, Future, ProcessPoolExecutor, ThreadPoolExecutor};

/// The global list of results. Every process has its own.
static RESULTS: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// What a task saw: the pid of the process it ran in and how many lists
/// `RESULTS` held there after its append.
type Seen = (u32, usize);

/// Appends the `y`-th powers of `x` to the global list.
fn calculate_raise_to((x, y): (Vec<u64>, u32)) -> Seen {
    let powers = x.iter().map(|i| i.pow(y)).collect();
    let mut results = RESULTS.lock().unwrap_or_else(PoisonError::into_inner);
    results.push(powers);
    (std::process::id(), results.len())
}

fn in_application() -> Vec<Vec<u64>> {
    RESULTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// A task that takes its whole process down, as a crash in native code
/// would. On the thread pool it would take the application down with it:
/// threads share one process. (A panic, by contrast, fails only its task on
/// either pool.)
fn crash(_: ()) -> Seen {
    std::process::abort()
}

fn report(label: &str, futures: Vec<Future<Seen>>) -> Result<(), Error> {
    for future in futures {
        let (pid, len) = future.result()?;
        println!("  {label} in process {pid}: RESULTS now holds {len} list(s)");
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();
    let me = std::process::id();
    let input = vec![1, 2, 3, 4, 5, 6, 7];
    let squares_and_cubes = || [(input.clone(), 2), (input.clone(), 3)];

    println!("The application is process {me}.\n");
    println!("1. Threads share the global RESULTS");
    let threads = ThreadPoolExecutor::new(2);
    let futures = squares_and_cubes()
        .map(|args| threads.submit(move || calculate_raise_to(args)))
        .into();
    report("a thread task", futures)?;
    println!("  the application sees {:?}\n", in_application());

    println!("   Processes do not: each worker appends to its own copy");
    println!("   (a worker serves many tasks, so tasks on one worker see each other's)");
    let processes = ProcessPoolExecutor::new(2)?;
    let futures = squares_and_cubes()
        .map(|args| processes.submit(calculate_raise_to, args))
        .into();
    report("a process task", futures)?;
    println!("  the application still sees {:?}\n", in_application());

    println!("2. A task that aborts fails alone");
    let mut futures: Vec<Future<Seen>> = Vec::new();
    for y in 1..=3 {
        futures.push(processes.submit(calculate_raise_to, (input.clone(), y)));
    }
    let crashed = processes.submit(crash, ());
    for y in 4..=6 {
        futures.push(processes.submit(calculate_raise_to, (input.clone(), y)));
    }
    match crashed.result() {
        Err(error @ Error::WorkerDied { .. }) => println!("  the aborting task: {error}"),
        other => println!("  the aborting task: unexpected outcome {other:?}"),
    }
    let succeeded = futures.into_iter().filter_map(|f| f.result().ok()).count();
    println!("  the 6 tasks submitted around it: {succeeded} succeeded");

    // The pool replaced the worker; more work runs as usual.
    let later: Vec<Future<Seen>> = (0..4)
        .map(|_| processes.submit(calculate_raise_to, (input.clone(), 2)))
        .collect();
    let mut pids = Vec::new();
    for future in later {
        pids.push(future.result()?.0);
    }
    pids.sort_unstable();
    pids.dedup();
    println!("  4 tasks submitted afterwards succeeded, in processes {pids:?}");
    println!("  the application (process {me}) carries on.");
    Ok(())
}
