//! One bank balance, a depositor and a withdrawer, the tutorial's lock
//! demonstration — first with real processes, as the tutorial has it,
//! then with threads, where Rust's compiler has a say.
//!
//! **Processes.** A `multiprocessing::Value<i64>` in shared memory and a
//! `multiprocessing::Lock`, two `Process`es that each make many one-dollar
//! updates. With the lock the balance comes out exact; without it (a `get`
//! then a `set`, the tutorial's `dollars.value = dollars.value + 1`)
//! updates get lost whenever both processes really run at the same time.
//! The compiler cannot see into another process, so this race compiles.
//!
//! **Threads.** A depositor and a withdrawer on two threads of the pool,
//! a few million updates each. With a `Mutex` the balance comes out exact;
//! with atomic adds too; with an atomic read followed by a separate write
//! updates get lost. The plain unlocked version Rust does not compile at
//! all: see the comment at the end of this file.
//!
//! Ported from "Lock (synchronized memory) between processes" of the
//! "Multithreading & Multiprocessing in python" tutorial (`deposit`,
//! `withdraw`, `test_without_lock`, `test_with_lock`, counting the trials
//! whose balance is wrong) and the `deposit`/`withdraw` lock example of the
//! "Python Multiprocessing" tutorial (`Value('i', 200)` and a `Lock`).
//!
//! Run with `cargo run --release --example bank`.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use concurrent_futures::multiprocessing::{Lock, Process, Value};
use concurrent_futures::{Error, ThreadPoolExecutor};

/// The balance every trial starts from.
const START: i64 = 200;
/// Trials per version, as in the tutorial.
const TRIALS: usize = 10;
/// Deposits (or withdrawals) each task makes, of one dollar each.
const TIMES: usize = 3_000_000;
/// The tasks of a trial: one depositor, one withdrawer.
const TASKS: usize = 2;

/// A balance that deposits and withdrawals can be made on from any thread.
trait Account: Send + Sync + 'static {
    fn new(start: i64) -> Self;
    fn add(&self, amount: i64);
    fn balance(&self) -> i64;
}

/// The balance behind a lock: each update reads and writes while no one
/// else can.
impl Account for Mutex<i64> {
    fn new(start: i64) -> Self {
        Mutex::new(start)
    }
    fn add(&self, amount: i64) {
        // A lock is poisoned only if a task panicked while holding it;
        // nothing here panics, and the value would still be consistent.
        *self.lock().unwrap_or_else(PoisonError::into_inner) += amount;
    }
    fn balance(&self) -> i64 {
        *self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The balance as an atomic integer: `fetch_add` reads and writes in one
/// indivisible step, so no update is lost, and no lock is taken.
impl Account for AtomicI64 {
    fn new(start: i64) -> Self {
        AtomicI64::new(start)
    }
    fn add(&self, amount: i64) {
        // ORDERING: only this one number matters, and `fetch_add` is
        // atomic at any ordering; the final read happens after the pool's
        // futures completed, which orders it after every update.
        self.fetch_add(amount, Ordering::Relaxed);
    }
    fn balance(&self) -> i64 {
        // ORDERING: read after every task's future completed; see `add`.
        self.load(Ordering::Relaxed)
    }
}

/// The same atomic integer used wrongly: a read, then a separate write.
/// Each step is atomic and the program is free of data races, so Rust
/// accepts it — but another task's update can land between the two steps
/// and be overwritten. This is `dollars.value = dollars.value + 1` in the
/// tutorial's unlocked version.
struct ReadThenWrite(AtomicI64);

impl Account for ReadThenWrite {
    fn new(start: i64) -> Self {
        ReadThenWrite(AtomicI64::new(start))
    }
    fn add(&self, amount: i64) {
        // ORDERING: the ordering is not the problem here; no ordering makes
        // two separate steps one.
        let seen = self.0.load(Ordering::Relaxed);
        // `black_box` keeps the compiler from fusing the three steps into
        // one instruction, as a real computation of the new balance would.
        let new = std::hint::black_box(seen) + amount;
        self.0.store(new, Ordering::Relaxed);
    }
    fn balance(&self) -> i64 {
        // ORDERING: as for `AtomicI64`.
        self.0.load(Ordering::Relaxed)
    }
}

fn deposit<A: Account>(balance: &A) {
    for _ in 0..TIMES {
        balance.add(1);
    }
}

fn withdraw<A: Account>(balance: &A) {
    for _ in 0..TIMES {
        balance.add(-1);
    }
}

/// Checks in, waits until every task of the trial has, then runs `work`:
/// the tasks start at the same moment instead of one after the other (a
/// million updates take about a millisecond, not much more than it takes
/// to wake a sleeping thread). The wait spins, so it needs every task of
/// the trial on a thread of its own — the pool has one per task.
fn together(checked_in: &AtomicUsize, work: impl FnOnce()) {
    // ORDERING: only the count matters; the balance is shared through the
    // `Arc`, whose handover to the task already orders everything.
    checked_in.fetch_add(1, Ordering::Relaxed);
    while checked_in.load(Ordering::Relaxed) < TASKS {
        std::hint::spin_loop();
    }
    work();
}

/// Runs [`TRIALS`] trials of a depositor and a withdrawer on one balance
/// of type `A`, and prints and returns how many trials ended with a wrong
/// balance, as the tutorial does.
fn run_trials<A: Account>(name: &str, pool: &ThreadPoolExecutor) -> Result<usize, Error> {
    let began = Instant::now();
    let mut balances = Vec::new();
    for _ in 0..TRIALS {
        let dollars = Arc::new(A::new(START));
        let start = Arc::new(AtomicUsize::new(0));
        let (d, go) = (Arc::clone(&dollars), Arc::clone(&start));
        let depositor = pool.submit(move || together(&go, || deposit(&*d)));
        let (w, go) = (Arc::clone(&dollars), Arc::clone(&start));
        let withdrawer = pool.submit(move || together(&go, || withdraw(&*w)));
        depositor.result()?;
        withdrawer.result()?;
        balances.push(dollars.balance());
    }
    let time = began.elapsed();
    let errors = balances.iter().filter(|&&b| b != START).count();
    println!("{name}");
    println!("  error count {errors} of {TRIALS}, in {time:.2?}; final balances {balances:?}");
    Ok(errors)
}

/// Updates each process makes in the process trials: enough that the two
/// overlap (a process takes a millisecond or so to start).
const PROCESS_TIMES: usize = 200_000;

/// The tutorial's unlocked `deposit`: read, then write, with nothing in
/// between to keep the other process out.
fn deposit_unlocked(balance: Value<i64>) {
    for _ in 0..PROCESS_TIMES {
        balance.set(balance.get() + 1);
    }
}

fn withdraw_unlocked(balance: Value<i64>) {
    for _ in 0..PROCESS_TIMES {
        balance.set(balance.get() - 1);
    }
}

/// The tutorial's `deposit_lock`: the read and the write under one lock.
fn deposit_locked((balance, lock): (Value<i64>, Lock)) {
    for _ in 0..PROCESS_TIMES {
        let _held = lock.acquire().expect("a holder of the lock died");
        balance.set(balance.get() + 1);
    }
}

fn withdraw_locked((balance, lock): (Value<i64>, Lock)) {
    for _ in 0..PROCESS_TIMES {
        let _held = lock.acquire().expect("a holder of the lock died");
        balance.set(balance.get() - 1);
    }
}

/// The tutorial's `test_without_lock` and `test_with_lock`, with real
/// processes: [`TRIALS`] trials each; returns the error counts.
fn process_trials() -> Result<(usize, usize), Error> {
    println!(
        "{TRIALS} trials with 2 processes: balance ${START}, {PROCESS_TIMES} deposits and \
         {PROCESS_TIMES} withdrawals of $1"
    );
    let began = Instant::now();
    let mut without_lock = Vec::new();
    for _ in 0..TRIALS {
        let dollars = Value::new(START)?;
        let d = Process::spawn(deposit_unlocked, dollars.clone())?;
        let w = Process::spawn(withdraw_unlocked, dollars.clone())?;
        d.join()?;
        w.join()?;
        without_lock.push(dollars.get());
    }
    let errors_without = without_lock.iter().filter(|&&b| b != START).count();
    println!(
        "without a lock (get, then set): error count {errors_without} of {TRIALS}, in {:.2?}",
        began.elapsed()
    );
    println!("  final balances {without_lock:?}");

    let began = Instant::now();
    let mut with_lock = Vec::new();
    for _ in 0..TRIALS {
        let lock = Lock::new()?;
        let dollars = Value::new(START)?;
        let d = Process::spawn(deposit_locked, (dollars.clone(), lock.clone()))?;
        let w = Process::spawn(withdraw_locked, (dollars.clone(), lock.clone()))?;
        d.join()?;
        w.join()?;
        with_lock.push(dollars.get());
    }
    let errors_with = with_lock.iter().filter(|&&b| b != START).count();
    println!(
        "with a Lock: error count {errors_with} of {TRIALS}, in {:.2?}",
        began.elapsed()
    );
    println!("  final balances {with_lock:?}\n");
    Ok((errors_without, errors_with))
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();
    let (_, errors_with_lock) = process_trials()?;
    assert_eq!(errors_with_lock, 0, "the lock let an update be lost");

    let pool = ThreadPoolExecutor::new(TASKS);
    println!(
        "{TRIALS} trials: balance ${START}, {TIMES} deposits and {TIMES} withdrawals \
         of $1, on {TASKS} threads\n"
    );
    run_trials::<Mutex<i64>>("with a Mutex<i64>:", &pool)?;
    run_trials::<AtomicI64>("with an AtomicI64 (fetch_add):", &pool)?;
    let lost = run_trials::<ReadThenWrite>(
        "with an AtomicI64 read, then written (lost updates):",
        &pool,
    )?;
    if lost == 0 {
        // The race needs both tasks on a CPU at the same moment; on a busy
        // machine the OS may run them one after the other.
        println!("  (no update lost this time: the two tasks never ran at the same moment;");
        println!("   on a machine busy with other work that happens — run it again)");
    }
    Ok(())
}

// Why there is no "without lock" version of the plain integer: Rust refuses
// to compile it. Sharing a mutable balance between tasks, as the tutorial's
// `test_without_lock` does,
//
//     let mut balance: i64 = 200;
//     let d = pool.submit(|| deposit(&mut balance));
//     let w = pool.submit(|| withdraw(&mut balance));
//
// is rejected, because a task may outlive the function that lends it the
// balance, and because two tasks would hold `&mut` to it at once:
//
//     error[E0373]: closure may outlive the current function, but it borrows
//                   `balance`, which is owned by the current function
//     error[E0499]: cannot borrow `balance` as mutable more than once at a time
//
// (Adding `move`, as the compiler suggests, compiles but gives each task its
// own copy of the integer: nothing is shared, the tasks' work is lost.)
//
// Sharing it properly, through an `Arc`, does not help either without a
// lock: an `Arc` gives only shared (read-only) access,
//
//     let balance = Arc::new(200);
//     let shared = Arc::clone(&balance);
//     pool.submit(move || *shared += 1);
//
//     error[E0594]: cannot assign to data in an `Arc`
//
// and a type that allows mutation through a shared reference without
// synchronisation is not `Sync`, so it cannot go to another thread:
//
//     let balance = Arc::new(Cell::new(200));
//     let shared = Arc::clone(&balance);
//     pool.submit(move || shared.set(shared.get() + 1));
//
//     error[E0277]: `Cell<i32>` cannot be shared between threads safely
//       = note: if you want to do aliasing and mutation between multiple
//               threads, use `std::sync::RwLock` or
//               `std::sync::atomic::AtomicI32` instead
//
// What remains are the versions above: a lock (`Mutex`), atomics used as
// single steps (`fetch_add`), or atomics used as two steps — which compiles,
// because it is not a data race (each access is atomic), yet loses money:
// the compiler rules out undefined behaviour, not every wrong program.
