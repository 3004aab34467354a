//! `concurrent_futures::multiprocessing` against Python's `multiprocessing`,
//! measured the same way in the same run (DESIGN.md §5):
//!
//! * `lock`: lock+unlock of one `Lock` by 2 processes at once (contended),
//!   and by 1 (uncontended); time per lock+unlock;
//! * queue hand-off: a producer process puts small items (`u64`)
//!   into a `Queue` of capacity 10 or 1024, the parent gets them; time per
//!   item;
//! * `value`: 2 processes each increment one `Value<i64>` under its lock;
//!   time per increment.
//!
//! Each workload: one warm-up, then `CONCURRENT_FUTURES_BENCH_SAMPLES`
//! (default 5) runs, median. Wall time, and CPU time (`getrusage`: this
//! process and its reaped children, user + system) per operation, which
//! says what the operation costs the machine, not only how long it takes
//! on 2 busy cores. Python's peer is `benches/python/multiprocessing_peer.py`
//! (skipped with a message if `python3` cannot run).
//!
//! ```text
//! cargo bench -p concurrent-futures-benches --bench multiprocessing
//! ```

use std::process::Command;
use std::time::Instant;

use concurrent_futures::multiprocessing::{Lock, Process, Queue, Value};

/// Operations per run of each workload, per process.
const LOCKS: u64 = 1_000_000;
const ITEMS: u64 = 200_000;
const INCREMENTS: u64 = 500_000;

/// Python is slower: fewer operations per run.
const PY_LOCKS: u64 = 200_000;
const PY_ITEMS: u64 = 20_000;
const PY_INCREMENTS: u64 = 100_000;

/// CPU seconds (user + system) of this process and its reaped children.
fn cpu_seconds() -> f64 {
    fn of(who: libc::c_int) -> f64 {
        // SAFETY: `usage` is a valid place for `getrusage` to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(who, &mut usage) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
        t(usage.ru_utime) + t(usage.ru_stime)
    }
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// Waits until `count` processes have checked in on `gate`, so that they
/// start together.
fn meet(gate: &Value<u32>, count: u32) {
    *gate.lock().unwrap() += 1;
    while gate.get() < count {
        std::hint::spin_loop();
    }
}

fn lock_loop((lock, gate, n): (Lock, Value<u32>, u64)) {
    meet(&gate, 2);
    for _ in 0..n {
        drop(lock.acquire().unwrap());
    }
}

fn produce((queue, n): (Queue<u64>, u64)) {
    for i in 0..n {
        queue.put(i).unwrap();
    }
}

fn increment((value, gate, n): (Value<i64>, Value<u32>, u64)) {
    meet(&gate, 2);
    for _ in 0..n {
        *value.lock().unwrap() += 1;
    }
}

/// One run: (wall seconds, CPU seconds) of `run`, which does `ops`
/// operations.
fn timed(mut run: impl FnMut()) -> (f64, f64) {
    let (start, cpu) = (Instant::now(), cpu_seconds());
    run();
    (start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The median wall and CPU nanoseconds per operation of `samples` runs.
fn measure(samples: usize, ops: u64, mut run: impl FnMut()) -> (f64, f64) {
    run(); // warm-up
    let (walls, cpus): (Vec<f64>, Vec<f64>) = (0..samples).map(|_| timed(&mut run)).unzip();
    let per = |s: f64| s * 1e9 / ops as f64;
    (per(median(walls)), per(median(cpus)))
}

fn ours(samples: usize) -> Vec<(&'static str, f64, f64)> {
    let mut rows = Vec::new();
    let lock = Lock::new().unwrap();
    rows.push({
        let (w, c) = measure(samples, LOCKS, || {
            for _ in 0..LOCKS {
                drop(lock.acquire().unwrap());
            }
        });
        ("lock, uncontended", w, c)
    });
    rows.push({
        let (w, c) = measure(samples, 2 * LOCKS, || {
            let gate = Value::new(0u32).unwrap();
            let other = Process::spawn(lock_loop, (lock.clone(), gate.clone(), LOCKS)).unwrap();
            lock_loop((lock.clone(), gate, LOCKS));
            other.join().unwrap();
        });
        ("lock, 2 processes", w, c)
    });
    for (name, capacity) in [
        ("queue hand-off, capacity 10", 10),
        ("queue hand-off, capacity 1024", 1024),
    ] {
        let queue: Queue<u64> = Queue::bounded(capacity).unwrap();
        let (w, c) = measure(samples, ITEMS, || {
            let producer = Process::spawn(produce, (queue.clone(), ITEMS)).unwrap();
            for _ in 0..ITEMS {
                queue.get().unwrap();
            }
            producer.join().unwrap();
        });
        rows.push((name, w, c));
    }
    rows.push({
        let value = Value::new(0i64).unwrap();
        let (w, c) = measure(samples, 2 * INCREMENTS, || {
            let gate = Value::new(0u32).unwrap();
            let other =
                Process::spawn(increment, (value.clone(), gate.clone(), INCREMENTS)).unwrap();
            increment((value.clone(), gate, INCREMENTS));
            other.join().unwrap();
        });
        ("value += 1 under its lock, 2 processes", w, c)
    });
    rows
}

/// Python's rows, by the same names, or why there are none.
fn python(samples: usize) -> Result<Vec<(String, f64, f64)>, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/multiprocessing_peer.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(samples.to_string())
        .args([PY_LOCKS, PY_ITEMS, PY_INCREMENTS].map(|n| n.to_string()))
        .output()
        .map_err(|e| format!("python3 did not run: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.rsplitn(3, '\t');
            let cpu = parts.next()?.parse().ok()?;
            let wall = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_owned(), wall, cpu))
        })
        .collect())
}

fn main() {
    concurrent_futures::init();
    let samples = std::env::var("CONCURRENT_FUTURES_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(5);
    let ours = ours(samples);
    let python = python(samples);
    println!("multiprocessing, median of {samples} runs; ns per operation (wall | CPU of all processes)\n");
    println!(
        "{:<42} {:>18} {:>18} {:>12}",
        "workload", "concurrent_futures", "Python", "speed-up"
    );
    for (name, wall, cpu) in &ours {
        let peer = python
            .as_ref()
            .ok()
            .and_then(|rows| rows.iter().find(|(n, ..)| n == name));
        let (py, ratio) = match peer {
            Some((_, pw, pc)) => (
                format!("{pw:>8.0} | {pc:>7.0}"),
                format!("{:.1}×", pw / wall),
            ),
            None => (String::from("—"), String::from("—")),
        };
        println!("{name:<42} {:>8.0} | {cpu:>7.0} {py:>18} {ratio:>12}", wall);
    }
    if let Err(why) = python {
        println!("\n(Python's multiprocessing not measured: {why})");
    }
    println!("\ngoals (DESIGN.md §5): contended lock+unlock ≤ 100 ns; queue hand-off ≥ 10× Python");
}
