//! The MPI pool end to end (feature `mpi`; `cargo test --features mpi`).
//!
//! This test has its own `main` (`harness = false`): started by cargo, it
//! launches itself under `mpirun` once per case and checks what `mpirun`
//! says and that no process of the case is left; started by `mpirun`, it is
//! rank 0 of a case (every other rank serves from `init()` and never gets
//! to the case).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use concurrent_futures::mpi::MpiPoolExecutor;
use std::num::NonZeroUsize;

use concurrent_futures::{as_completed, wait, Chunksize, Error, Executor, ReturnWhen};

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn double(x: u64) -> u64 {
    x * 2
}

/// Maps `double` over `0..n` on `pool` (in chunks of `chunk`, or automatic
/// ones) and checks every result, in input order.
fn check_doubles(pool: &MpiPoolExecutor, n: u64, chunk: Option<usize>) {
    let map = pool.map(double, 0..n);
    let map = match chunk {
        Some(size) => map.chunksize(Chunksize::Fixed(NonZeroUsize::new(size).unwrap())),
        None => map,
    };
    let got: Vec<u64> = map.collect::<Result<_, _>>().expect("every item");
    assert_eq!(got.len() as u64, n, "one result per item");
    assert!(got.iter().enumerate().all(|(i, &d)| d == 2 * i as u64));
}

/// Item 13 panics, 29 aborts, 47 segfaults; the others come back doubled.
fn faulty(x: u64) -> u64 {
    match x {
        13 => panic!("item 13 panics"),
        29 => std::process::abort(),
        // SAFETY: raising a signal is always allowed; killing this process
        // with SIGSEGV is the point.
        47 => unsafe {
            libc::raise(libc::SIGSEGV);
            x
        },
        _ => x * 2,
    }
}

/// A buffer of `len` bytes, each its index's low byte, XOR `seed`.
fn pattern(len: usize, seed: u8) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from((0..len).map(|i| i as u8 ^ seed).collect::<Vec<u8>>())
}

/// Checks the pattern (seed 1) and answers the same length with seed 2.
fn echo_large(bytes: serde_bytes::ByteBuf) -> serde_bytes::ByteBuf {
    assert!(
        bytes.iter().enumerate().all(|(i, &b)| b == i as u8 ^ 1),
        "the argument arrived whole"
    );
    pattern(bytes.len(), 2)
}

/// Sleeps for `ms` milliseconds: the slow item of the time-limit case.
fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid_of_task(_: u8) -> u32 {
    std::process::id()
}

/// Set by `drive` for a case it starts without a launcher (an MPI
/// singleton that spawns its ranks).
const SINGLETON: &str = "CF_MPI_TEST_SINGLETON";

fn main() {
    concurrent_futures::init();
    let args: Vec<String> = std::env::args().collect();
    let case = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let under_launcher = std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
        || std::env::var_os("PMI_RANK").is_some()
        || std::env::var_os("PMIX_RANK").is_some()
        || std::env::var_os(SINGLETON).is_some();
    if under_launcher {
        let case = case.map(String::as_str).unwrap_or("");
        run_case(case);
        println!("case {case} passed");
        return;
    }
    drive(case.map(String::as_str));
}

/// Rank 0 of one case; panics (a non-zero exit) on a failed check.
fn run_case(case: &str) {
    match case {
        "map" => {
            let pool = MpiPoolExecutor::new().expect("the pool");
            assert_eq!(pool.worker_ranks(), 2);
            let got: Vec<bool> = pool
                .map(is_prime, 0..200_000u64)
                .collect::<Result<_, _>>()
                .expect("every item");
            let want: Vec<bool> = (0..200_000u64).map(is_prime).collect();
            assert_eq!(got, want, "results in input order");
            check_doubles(&pool, 100_000, Some(1000));
        }
        "submit" => {
            let pool = MpiPoolExecutor::new().expect("the pool");
            let futures: Vec<_> = (0..200u64).map(|n| pool.submit(double, n)).collect();
            let mut total = 0;
            for f in as_completed(futures) {
                total += f.result().expect("a result");
            }
            assert_eq!(total, 2 * (0..200u64).sum::<u64>());
            let futures: Vec<_> = (0..50u64)
                .map(|n| Executor::submit(&pool, is_prime, n))
                .collect();
            let done = wait(futures, ReturnWhen::AllCompleted, None);
            assert_eq!(done.done.len(), 50);
            assert!(done.not_done.is_empty());
            // The tasks ran in other processes than rank 0.
            let pid = pool.submit(pid_of_task, 0).result().expect("a pid");
            assert_ne!(pid, std::process::id());
        }
        "faults" => {
            let pool = MpiPoolExecutor::new().expect("the pool");
            let outcomes: Vec<Result<u64, Error>> = pool
                .map(faulty, 0..100u64)
                .chunksize(Chunksize::Fixed(NonZeroUsize::new(10).unwrap()))
                .collect();
            for (i, outcome) in outcomes.iter().enumerate() {
                match (i, outcome) {
                    (13, Err(Error::Panicked { message, .. })) => {
                        assert!(message.contains("item 13"))
                    }
                    (29, Err(Error::WorkerDied { signal, .. })) => {
                        assert_eq!(*signal, Some(libc::SIGABRT))
                    }
                    (47, Err(Error::WorkerDied { signal, .. })) => {
                        assert_eq!(*signal, Some(libc::SIGSEGV))
                    }
                    (i, Ok(v)) if ![13, 29, 47].contains(&i) => assert_eq!(*v, 2 * i as u64),
                    (i, other) => panic!("item {i}: {other:?}"),
                }
            }
            // The pool goes on.
            assert_eq!(pool.submit(double, 21).result(), Ok(42));
        }
        "direct" => {
            let pool = MpiPoolExecutor::builder()
                .direct()
                .build()
                .expect("the pool");
            assert_eq!(pool.max_workers(), 2, "one lane per rank");
            check_doubles(&pool, 50_000, None);
            // Chunks of more items than a region slot holds: their replies
            // come in several frames, which must name the task's own slot
            // (each lane has two tasks out, in slots 0 and 1).
            check_doubles(&pool, 560_000, Some(70_000));
            match pool.submit(faulty, 13).result() {
                Err(Error::Panicked { message, .. }) => assert!(message.contains("item 13")),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                pool.submit(double, 4).result(),
                Ok(8),
                "a panic costs its item only"
            );
            let refused = MpiPoolExecutor::new();
            assert!(
                matches!(refused, Err(Error::InvalidArgument { .. })),
                "one pool per run"
            );
        }
        // `_pieces`: the same, with every MPI message over 1 MB sent in
        // pieces (as one over 1 GiB is), which the other side puts back
        // together.
        "large" | "large_pieces" => {
            let pool = MpiPoolExecutor::new().expect("the pool");
            large_round_trips(&pool);
        }
        "large_direct" | "large_direct_pieces" => {
            let pool = MpiPoolExecutor::builder()
                .direct()
                .build()
                .expect("the pool");
            large_round_trips(&pool);
            let many: Vec<serde_bytes::ByteBuf> = pool
                .map(echo_large, (0..40).map(|_| pattern(300_000, 1)))
                .collect::<Result<_, _>>()
                .expect("all");
            assert_eq!(
                many.len(),
                40,
                "a chunk whose results fill more than a slot"
            );
        }
        "timeout" => {
            let pool = MpiPoolExecutor::builder()
                .task_timeout(Duration::from_millis(300))
                .build()
                .expect("the pool");
            let outcomes: Vec<Result<u64, Error>> = pool
                .map(sleepy, [1, 2, 5000, 3, 4])
                .chunksize(Chunksize::Fixed(NonZeroUsize::new(5).unwrap()))
                .collect();
            for (i, outcome) in outcomes.iter().enumerate() {
                match (i, outcome) {
                    (2, Err(Error::TaskTimedOut { limit, .. })) => {
                        assert_eq!(*limit, Duration::from_millis(300))
                    }
                    (i, Ok(ms)) if i != 2 => assert_eq!(*ms, [1, 2, 5000, 3, 4][i]),
                    (i, other) => panic!("item {i}: {other:?}"),
                }
            }
            let refused = MpiPoolExecutor::builder()
                .direct()
                .task_timeout(Duration::from_secs(1))
                .build();
            assert!(matches!(refused, Err(Error::InvalidArgument { .. })));
        }
        "spawn" => {
            // Rank 0 alone (`mpirun -n 1`, or a singleton), two spawned ranks.
            let pool = MpiPoolExecutor::builder()
                .spawn(2)
                .workers_per_rank(1)
                .build()
                .expect("spawned ranks");
            assert_eq!(pool.worker_ranks(), 2);
            assert_eq!(pool.max_workers(), 2);
            let primes = pool.map(is_prime, 0..20_000u64).filter(|r| r == &Ok(true));
            assert_eq!(primes.count(), 2262);
            let pids: Vec<u32> = (0..8u8)
                .map(|i| pool.submit(pid_of_task, i))
                .map(|f| f.result().expect("a pid"))
                .collect();
            assert!(
                pids.iter().all(|&pid| pid != std::process::id()),
                "{pids:?}"
            );
            // A crash on a spawned rank costs its item alone, as on any.
            let out: Vec<_> = pool.map(faulty, 27..32u64).collect();
            assert!(matches!(out[2], Err(Error::WorkerDied { .. })), "{out:?}");
            assert_eq!(out[3], Ok(60));
            pool.shutdown();
        }
        "lanes" => {
            // Two lanes a rank, each with two tasks out: a lane's tasks may
            // run on both local workers and end out of order, and their
            // replies must still come back in order (rank 0 breaks the
            // pool on a reply for the wrong task).
            let pool = MpiPoolExecutor::builder()
                .workers_per_rank(2)
                .build()
                .expect("the pool");
            assert_eq!(pool.max_workers(), 4);
            // Slow and quick tasks mixed: a large prime, then small numbers.
            let inputs: Vec<u64> = (0..400u64)
                .map(|i| if i % 3 == 0 { 1_000_000_007 } else { i })
                .collect();
            let futures: Vec<_> = inputs.iter().map(|&n| pool.submit(is_prime, n)).collect();
            for (n, f) in inputs.iter().zip(futures) {
                assert_eq!(f.result(), Ok(is_prime(*n)), "is_prime({n})");
            }
            let got: Vec<bool> = pool
                .map(is_prime, 0..60_000u64)
                .chunksize(Chunksize::Fixed(NonZeroUsize::new(37).unwrap()))
                .collect::<Result<_, _>>()
                .expect("every item");
            assert!(got
                .iter()
                .enumerate()
                .all(|(i, &p)| p == is_prime(i as u64)));
            pool.shutdown();
        }
        "spawn_with_ranks" => match MpiPoolExecutor::builder().spawn(1).build() {
            Err(Error::InvalidArgument { reason }) => {
                assert!(reason.contains("rank 0 alone"), "{reason}");
            }
            other => panic!("spawn mode in a job of 2 ranks: {other:?}"),
        },
        "no_pool" => {
            // Rank 0 never makes a pool: the ranks still stop at exit.
        }
        "alone" => match MpiPoolExecutor::new() {
            Err(Error::Spawn { reason }) => assert!(reason.contains("rank 0 alone"), "{reason}"),
            other => panic!("a pool without worker ranks: {other:?}"),
        },
        "mismatch" => match MpiPoolExecutor::new() {
            Err(Error::Spawn { reason }) => {
                assert!(reason.contains("rank 2"), "{reason}");
                assert!(reason.contains("different build"), "{reason}");
                println!("refused: {reason}");
            }
            other => panic!("a rank of another build was accepted: {other:?}"),
        },
        "exit_without_shutdown" => {
            let pool = MpiPoolExecutor::new().expect("the pool");
            assert_eq!(pool.submit(double, 1).result(), Ok(2));
            std::mem::forget(pool);
            println!("case {case} passed");
            // No shutdown, no drop: the exit handler stops the ranks.
            std::process::exit(0);
        }
        "panic_in_main" => {
            let pool = MpiPoolExecutor::new().expect("the pool");
            assert_eq!(pool.submit(double, 1).result(), Ok(2));
            std::mem::forget(pool);
            panic!("rank 0 panics on purpose");
        }
        other => panic!("unknown case {other:?}"),
    }
}

/// Large arguments and results, one at a time, of sizes around the
/// piece size of the `_pieces` cases ([`PIECE`]) and far over it.
fn large_round_trips(pool: &MpiPoolExecutor) {
    let lens = [
        0,
        1,
        100_000,
        PIECE - 30,
        PIECE,
        PIECE + 1,
        9 << 20,
        24 << 20,
    ];
    for len in lens {
        let back = pool
            .submit(echo_large, pattern(len, 1))
            .result()
            .expect("a result");
        assert_eq!(back.len(), len);
        let whole = back.iter().enumerate().all(|(i, &b)| b == i as u8 ^ 2);
        assert!(whole, "{len} bytes back whole");
    }
    // A chunk of large results: one reply of many frames.
    let backs = pool.map(echo_large, (0..8).map(|_| pattern(3 << 20, 1)));
    for back in backs {
        assert_eq!(back.expect("a result").len(), 3 << 20);
    }
}

/// The largest MPI message the `_pieces` cases send in one piece.
const PIECE: usize = 1_000_003;

/// Started by cargo: every case under `mpirun`.
fn drive(only: Option<&str>) {
    match MpiPoolExecutor::new() {
        Err(Error::Spawn { reason }) => assert!(reason.contains("mpirun"), "{reason}"),
        other => panic!("without a launcher: {other:?}"),
    }
    let exe = std::env::current_exe().expect("the test's executable");
    let cases = [
        (3, "map"),
        (3, "submit"),
        (3, "faults"),
        (3, "direct"),
        (3, "lanes"),
        (2, "large"),
        (2, "large_direct"),
        (2, "large_pieces"),
        (2, "large_direct_pieces"),
        (2, "timeout"),
        (3, "no_pool"),
        (1, "alone"),
        (3, "exit_without_shutdown"),
        (1, "spawn"),
        (2, "spawn_with_ranks"),
    ];
    let mut ran = 0;
    for (ranks, case) in cases {
        if only.is_some_and(|o| o != case) {
            continue;
        }
        let out = launch(&[(ranks, &exe)], case);
        assert!(out.ok, "case {case}: mpirun failed\n{}", out.text);
        assert!(
            out.stdout.contains(&format!("case {case} passed")),
            "case {case}\n{}",
            out.text
        );
        no_process_left(&exe, case);
        println!("test mpi::{case} ... ok");
        ran += 1;
    }
    if only.map_or(true, |o| o == "panic_in_main") {
        let out = launch(&[(3, &exe)], "panic_in_main");
        assert!(!out.ok, "rank 0 panicked, so mpirun fails\n{}", out.text);
        assert!(
            out.text.contains("rank 0 panics on purpose"),
            "{}",
            out.text
        );
        no_process_left(&exe, "panic_in_main");
        println!("test mpi::panic_in_main ... ok");
        ran += 1;
    }
    if only.map_or(true, |o| o == "spawn_singleton") {
        // No launcher at all: rank 0 starts MPI as a singleton, and spawns.
        let out = run_with(Command::new(&exe).arg("spawn").env(SINGLETON, "1"));
        assert!(out.ok, "spawn_singleton failed\n{}", out.text);
        assert!(out.stdout.contains("case spawn passed"), "{}", out.text);
        no_process_left(&exe, "spawn_singleton");
        println!("test mpi::spawn_singleton ... ok");
        ran += 1;
    }
    if only.map_or(true, |o| o == "mismatch") {
        // Another build: the same bytes and one more, so that its hash
        // differs while it still runs.
        let other = std::env::temp_dir().join(format!("cf-mpi-other-{}", std::process::id()));
        let mut bytes = std::fs::read(&exe).expect("the executable");
        bytes.push(0);
        std::fs::write(&other, bytes).expect("a copy");
        make_executable(&other);
        let out = launch(&[(2, &exe), (1, &other)], "mismatch");
        let _ = std::fs::remove_file(&other);
        assert!(out.ok, "mismatch: mpirun failed\n{}", out.text);
        assert!(out.stdout.contains("case mismatch passed"), "{}", out.text);
        no_process_left(&exe, "mismatch");
        println!("test mpi::mismatch ... ok");
        ran += 1;
    }
    assert!(ran > 0, "no case named {only:?}");
    println!("test result: ok. {ran} passed");
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

struct Outcome {
    ok: bool,
    stdout: String,
    text: String,
}

/// Runs `mpirun` with `parts` (ranks, executable) as MPMD, each given
/// `case`.
fn launch(parts: &[(usize, &PathBuf)], case: &str) -> Outcome {
    let mut command = Command::new("mpirun");
    for (i, (ranks, exe)) in parts.iter().enumerate() {
        if i > 0 {
            command.arg(":");
        }
        command.arg("-n").arg(ranks.to_string()).arg(exe).arg(case);
    }
    if case.ends_with("_pieces") {
        // Every rank's own sends (mpirun passes its environment on).
        command.env("CONCURRENT_FUTURES_MPI_MAX_PIECE", PIECE.to_string());
    }
    run_with(&mut command)
}

/// Runs `command` (`mpirun`, or a singleton) to its end, its output
/// captured; kills it after a generous limit, so that a hang fails the
/// test.
fn run_with(command: &mut Command) -> Outcome {
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .expect("mpirun (apt-get install openmpi-bin)");
    let pid = child.id();
    // A watchdog: `wait_with_output` below returns once mpirun ends.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(240)).is_err() {
            // SAFETY: signalling a child we have not reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().expect("mpirun's output");
    let _ = done.send(());
    let _ = watchdog.join();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Outcome {
        ok: output.status.success(),
        text: format!(
            "status {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status
        ),
        stdout,
    }
}

/// Checks that no process runs the test's executable but this one. Local
/// workers die with their rank (`PR_SET_PDEATHSIG`), which the kernel does
/// shortly after, so this looks until a deadline.
fn no_process_left(exe: &Path, case: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_of(exe);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "case {case}: processes left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn processes_of(exe: &Path) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let running = std::fs::read_link(entry.path().join("exe")).ok();
        // A zombie has no executable, and runs nothing.
        if running.as_deref() == Some(exe) {
            found.push(pid);
        }
    }
    found
}
