//! The first steps: submit one task that sleeps, ask the future whether it
//! is `done()` while the task runs, then take its `result()` — on the
//! thread pool, then the same on the process pool.
//!
//! Ported from the first `ThreadPoolExecutor` and `ProcessPoolExecutor`
//! cells of the "Multiprocessing and Multithreading" tutorial
//! (`return_message`, which sleeps and hands back its message). The task
//! sleeps one second instead of three.
//!
//! Run with `cargo run --release --example quickstart`.

use std::thread::sleep;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ProcessPoolExecutor, ThreadPoolExecutor};

/// How long the task takes.
const TASK_TIME: Duration = Duration::from_secs(1);

/// How often the application looks at the future while it waits.
const POLL_EVERY: Duration = Duration::from_millis(300);

/// Waits, then hands back its message. A plain `fn`, so the process pool
/// can run it too.
fn return_message(message: String) -> String {
    sleep(TASK_TIME);
    message
}

/// Prints `done()` and `running()` every [`POLL_EVERY`] until the future
/// is done, then its result.
fn watch(future: Future<String>) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        let (done, running) = (future.done(), future.running());
        let ms = start.elapsed().as_millis();
        println!("  after {ms:>4} ms: done() = {done:<5}  running() = {running}");
        if done {
            break;
        }
        sleep(POLL_EVERY);
    }
    println!("  result() = {:?}", future.result()?);
    Ok(())
}

fn main() -> Result<(), Error> {
    // The process pool's guard: a worker (a copy of this program) never
    // runs `main`. On Linux the crate catches it before `main` starts, so
    // this line is the portable form (see `init`'s docs).
    concurrent_futures::init();

    println!("Thread pool of 3 workers, one task that sleeps {TASK_TIME:?}:");
    let threads = ThreadPoolExecutor::new(3);
    let message = String::from("hello world!");
    watch(threads.submit(move || return_message(message)))?;

    println!("\nProcess pool of 3 workers, the same function:");
    let processes = ProcessPoolExecutor::new(3)?;
    // The function travels by name and its argument by value (serde), so
    // it is `submit(function, argument)` rather than a closure.
    watch(processes.submit(return_message, String::from("hello world!")))?;
    Ok(())
}
