//! Soak: a million tasks through one process pool, with the parent's and
//! the workers' memory and the parent's descriptors sampled along the way.
//!
//! Ignored by default (it takes a while in a debug build). Run it with
//!
//! ```text
//! cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! It prints what it measured after every tenth of the run. Set
//! `CF_SOAK_TASKS` to run more (or fewer) tasks than a million.

use std::time::Instant;

use concurrent_futures::ProcessPoolExecutor;

mod common;
use common::{fd_count, wait_for_workers};

/// Tasks in all, unless `CF_SOAK_TASKS` says otherwise: half by `submit`,
/// half by `map`.
const TOTAL: u64 = 1_000_000;
/// The run is cut in rounds; the baseline is taken after the first (10%).
const ROUNDS: u64 = 10;
/// Futures outstanding at once in the `submit` half.
const BATCH: u64 = 1_000;
/// How much the resident memory of the parent, or of a worker, may grow
/// from the baseline to the end. 900 000 tasks run in between, so a leak
/// of 5 bytes a task or more shows.
const RSS_TOLERANCE: u64 = 4 << 20;
/// How many descriptors the parent may gain from the baseline to the end.
const FD_TOLERANCE: usize = 2;

fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (x >> 7)
}

/// Resident anonymous memory (heap, stacks: where a leak would show; not
/// the pages of the executable, which fill in as code first runs) of
/// process `pid` (`self` for this one), in bytes.
fn rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|field| field.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("the RssAnon field");
    kib * 1024
}

/// What one sample saw.
#[derive(Debug, Clone)]
struct Sample {
    tasks: u64,
    parent_rss: u64,
    worker_rss: Vec<u64>,
    fds: usize,
}

fn sample(pool: &ProcessPoolExecutor, workers: &[u32], tasks: u64) -> Sample {
    assert_eq!(
        pool.worker_pids(),
        workers,
        "no worker was replaced during the soak"
    );
    // glibc keeps freed memory in its arenas, and how much it keeps at a
    // given moment swings by megabytes with the last few allocations; hand
    // the free pages back first, so that what is measured is what is live.
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    Sample {
        tasks,
        parent_rss: rss("self"),
        worker_rss: workers.iter().map(|pid| rss(&pid.to_string())).collect(),
        fds: fd_count(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[test]
#[ignore = "a soak of a million tasks: run it on purpose (see the file's docs)"]
fn a_million_tasks_keep_memory_and_descriptors_flat() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let workers = wait_for_workers(&pool);
    let total = std::env::var("CF_SOAK_TASKS")
        .ok()
        .and_then(|tasks| tasks.parse::<u64>().ok())
        .unwrap_or(TOTAL);
    let per_round = total / ROUNDS;
    let start = Instant::now();
    let mut next = 0u64;
    let mut samples = Vec::new();
    for round in 0..ROUNDS {
        // Half the round by `submit`, a bounded batch at a time.
        let submit_end = next + per_round / 2;
        while next < submit_end {
            let batch = next..(next + BATCH).min(submit_end);
            let futures: Vec<_> = batch.clone().map(|x| pool.submit(work, x)).collect();
            for (x, future) in batch.zip(futures) {
                assert_eq!(future.result(), Ok(work(x)), "task {x}");
            }
            next = submit_end.min(next + BATCH);
        }
        // The other half by `map`, with automatic chunks.
        let map_end = (round + 1) * per_round;
        let mut expected = next..map_end;
        for result in pool.map(work, next..map_end) {
            let x = expected.next().expect("no more results than items");
            assert_eq!(result, Ok(work(x)), "item {x}");
        }
        assert_eq!(expected.next(), None, "a result for every item");
        next = map_end;
        samples.push(sample(&pool, &workers, next));
    }
    let took = start.elapsed();
    let (base, end) = (&samples[0], &samples[samples.len() - 1]);
    println!(
        "soak: {next} tasks in {took:.2?} ({:.2} µs a task)",
        took.as_secs_f64() * 1e6 / next as f64
    );
    for sample in &samples {
        let workers: Vec<String> = sample
            .worker_rss
            .iter()
            .map(|&rss| format!("{:.1} MiB", mib(rss)))
            .collect();
        println!(
            "soak: after {:>7} tasks: parent RssAnon {:.1} MiB, workers' RssAnon [{}], parent descriptors {}",
            sample.tasks,
            mib(sample.parent_rss),
            workers.join(", "),
            sample.fds
        );
    }
    let grew = |from: u64, to: u64| to.saturating_sub(from);
    assert!(
        grew(base.parent_rss, end.parent_rss) <= RSS_TOLERANCE,
        "the parent's memory grew from {:.1} to {:.1} MiB",
        mib(base.parent_rss),
        mib(end.parent_rss)
    );
    for (pid, (from, to)) in workers
        .iter()
        .zip(base.worker_rss.iter().zip(&end.worker_rss))
    {
        assert!(
            grew(*from, *to) <= RSS_TOLERANCE,
            "worker {pid}'s memory grew from {:.1} to {:.1} MiB",
            mib(*from),
            mib(*to)
        );
    }
    assert!(
        end.fds <= base.fds + FD_TOLERANCE,
        "descriptors went from {} to {}",
        base.fds,
        end.fds
    );
}
