//! What a task's panic does in a program built with `panic = "abort"`:
//! on the process pool it kills the worker with `SIGABRT`, reported as
//! [`Error::WorkerDied`](concurrent_futures::Error::WorkerDied), and the
//! pool goes on with a new worker; on the thread pool it aborts the whole
//! program. The same program shows that `init()` is not needed on Linux:
//! it uses the process pool without calling it first, and `main` runs once.
//!
//! # How the program is built
//!
//! A test binary cannot change its own panic strategy, so this test builds
//! `tests/programs/panic_abort.rs` with `-C panic=abort`, the flag a
//! `panic = "abort"` profile sets. Building it with cargo would compile
//! every dependency again for that profile (tens of seconds on the CI's two
//! cores, and a second target directory, since the running `cargo test`
//! holds the first one's lock). Instead the test calls the very `rustc`
//! that built this test (beside `env!("CARGO")`) on the one file, linking
//! the crate's rlib and its dependencies that `cargo test` just built in
//! `target/<profile>/deps`: about a second. Crates compiled for unwinding
//! may be linked into a `panic=abort` program (std is); the program's
//! panic runtime is then the aborting one, so a panic anywhere in it
//! aborts, exactly as with the profile.

#![cfg(target_os = "linux")]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::TempDir;

/// The `rustc` of the toolchain whose cargo built this test.
fn rustc() -> PathBuf {
    let cargo = Path::new(env!("CARGO"));
    let beside = cargo.with_file_name(format!("rustc{}", std::env::consts::EXE_SUFFIX));
    if beside.exists() {
        beside
    } else {
        PathBuf::from("rustc")
    }
}

/// The crate's rlibs in `deps`, newest first: the one `cargo test` just
/// built for this test comes first; older ones (other features, earlier
/// sources) are fallbacks.
fn crate_rlibs(deps: &Path) -> Vec<PathBuf> {
    let mut rlibs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .expect("read the deps directory")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let wanted = name.starts_with("libconcurrent_futures-") && name.ends_with(".rlib");
            let modified = entry.metadata().ok()?.modified().ok()?;
            wanted.then(|| (modified, entry.path()))
        })
        .collect();
    rlibs.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    rlibs.into_iter().map(|(_, path)| path).collect()
}

/// Builds the program into `dir` (each test its own, removed with it:
/// the build takes a fraction of a second).
fn build_program(dir: &TempDir) -> PathBuf {
    let exe = dir.0.join("program");
    let test_exe = std::env::current_exe().expect("this test's path");
    let deps = test_exe.parent().expect("the deps directory");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/panic_abort.rs");
    let mut failures = String::new();
    for rlib in crate_rlibs(deps) {
        let built = Command::new(rustc())
            .args(["--edition", "2021", "--crate-type", "bin"])
            .args(["--crate-name", "panic_abort_program"])
            .args(["-C", "panic=abort", "-C", "debuginfo=0"])
            .arg("-L")
            .arg(format!("dependency={}", deps.display()))
            .arg("--extern")
            .arg(format!("concurrent_futures={}", rlib.display()))
            .arg("-o")
            .arg(&exe)
            .arg(&source)
            .output()
            .expect("run rustc");
        if built.status.success() {
            return exe;
        }
        failures.push_str(&format!(
            "with {}:\n{}\n",
            rlib.display(),
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    panic!("could not build the panic=abort program:\n{failures}");
}

/// Builds the program and runs it in `mode`.
fn run(name: &str, mode: &str) -> Output {
    let dir = TempDir::new("panic-abort", name);
    Command::new(build_program(&dir))
        .arg(mode)
        .output()
        .expect("run the panic=abort program")
}

#[test]
fn on_the_process_pool_a_panic_kills_its_worker_with_sigabrt_and_the_pool_goes_on() {
    let output = run("processes", "processes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let died = format!("worker died, signal Some({})", libc::SIGABRT);
    let expected = [
        String::from("main ran"),
        format!("item 13: {died}"),
        String::from("item 21: ok 21"),
        String::from("item 10: ok 10"),
        String::from("item 11: ok 11"),
        String::from("item 12: ok 12"),
        format!("item 13: {died}"),
        String::from("item 14: ok 14"),
        String::from("item 15: ok 15"),
        String::from("done"),
    ];
    assert_eq!(lines, expected, "stderr:\n{stderr}");
    // The panic's message is not in the error (the worker died before it
    // could send anything), but the panic hook printed it on the worker's
    // standard error, which is the program's.
    assert!(stderr.contains("thirteen is unlucky"), "{stderr}");
}

#[test]
fn on_the_thread_pool_a_panic_aborts_the_whole_program() {
    let output = run("threads", "threads");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["main ran"]);
    assert!(stderr.contains("thirteen is unlucky"), "{stderr}");
}
