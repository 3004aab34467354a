//! procspawn, the Rust peer of the process-pool bench: its `Pool`, whose
//! workers are this binary re-executed and called through `ipc-channel`
//! (bincode over Unix sockets).
//!
//! Built only with the benches crate's `peers-procspawn` feature, which
//! `benches/scoreboard` turns on; without it every function here gives no
//! candidate, and [`init`] does nothing. procspawn needs `procspawn::init()`
//! early in `main`; our crate catches its own workers before `main`, so the
//! two coexist in one binary (a procspawn child carries no marker of ours,
//! and our workers never reach procspawn's).
//!
//! Included by `process_pool.rs` with
//! `#[path = "procspawn_peer.rs"] mod procspawn_peer;`.

use crate::harness::Candidate;

/// The label of procspawn's rows.
pub const NAME: &str = "procspawn";

/// Whether procspawn is measured in this build.
pub const ENABLED: bool = cfg!(feature = "peers-procspawn");

/// Turns a procspawn child into one: call right after
/// `concurrent_futures::init()`.
pub fn init() {
    #[cfg(feature = "peers-procspawn")]
    procspawn::init();
}

#[cfg(feature = "peers-procspawn")]
mod enabled {
    use std::hint::black_box;

    use procspawn::Pool;
    use serde_bytes::ByteBuf;

    use super::NAME;
    use crate::harness::Candidate;

    fn pool(workers: usize) -> Option<Pool> {
        match Pool::new(workers) {
            Ok(pool) => Some(pool),
            Err(error) => {
                eprintln!("{NAME}: cannot start a pool of {workers}: {error}");
                None
            }
        }
    }

    pub(crate) fn round_trip(tasks: u64) -> Vec<Candidate<'static>> {
        let Some(pool) = pool(1) else {
            return Vec::new();
        };
        vec![Candidate::new(
            format!("{NAME} Pool(1)"),
            tasks,
            move || {
                for i in 0..tasks {
                    let value = pool.spawn(black_box(i), |x: u64| x).join();
                    assert_eq!(value.ok(), Some(i));
                }
            },
        )]
    }

    pub(crate) fn submit_all(workers: usize, tasks: u64) -> Vec<Candidate<'static>> {
        let Some(pool) = pool(workers) else {
            return Vec::new();
        };
        vec![Candidate::new(
            format!("{NAME} Pool({workers}), N={tasks}"),
            tasks,
            move || {
                let handles: Vec<_> = (0..tasks).map(|i| pool.spawn(i, |x: u64| x)).collect();
                let sum: u64 = handles
                    .into_iter()
                    .map(|handle| handle.join().expect("a no-op task"))
                    .sum();
                assert_eq!(sum, tasks * (tasks - 1) / 2);
            },
        )]
    }

    pub(crate) fn map_chunked(workers: usize, items: u64, chunk: usize) -> Vec<Candidate<'static>> {
        let Some(pool) = pool(workers) else {
            return Vec::new();
        };
        vec![Candidate::new(
            format!("{NAME} Pool({workers}), a task per {chunk} items"),
            items,
            move || {
                let mut handles = Vec::new();
                let mut next = 0;
                while next < items {
                    let end = (next + chunk as u64).min(items);
                    let chunk: Vec<u64> = (next..end).collect();
                    handles.push(pool.spawn(chunk, |chunk: Vec<u64>| {
                        chunk.into_iter().map(|x| x * 2).collect::<Vec<u64>>()
                    }));
                    next = end;
                }
                let mut out = Vec::with_capacity(items as usize);
                for handle in handles {
                    out.extend(handle.join().expect("a chunk"));
                }
                assert_eq!(out.len() as u64, items);
                assert_eq!(out[out.len() - 1], 2 * (items - 1));
            },
        )]
    }

    pub(crate) fn start(workers: usize) -> Vec<Candidate<'static>> {
        vec![Candidate::new(
            format!("{NAME} Pool({workers})"),
            1,
            move || {
                let pool = Pool::new(workers).expect("a procspawn pool");
                assert_eq!(pool.spawn(7u64, |x: u64| x).join().ok(), Some(7));
                pool.shutdown();
            },
        )]
    }

    pub(crate) fn bytes(size: usize) -> Vec<Candidate<'static>> {
        let Some(pool) = pool(1) else {
            return Vec::new();
        };
        let mut buf = Some(ByteBuf::from(vec![7u8; size]));
        vec![Candidate::new(
            format!("{NAME} Pool(1), serde_bytes::ByteBuf"),
            2 * size as u64,
            move || {
                let arg = buf.take().expect("the bytes are back");
                let result = pool
                    .spawn(arg, |bytes: ByteBuf| bytes)
                    .join()
                    .expect("a result");
                assert_eq!(result.len(), size);
                buf = Some(result);
            },
        )]
    }
}

#[cfg(not(feature = "peers-procspawn"))]
mod enabled {
    use crate::harness::Candidate;

    pub(crate) fn round_trip(_tasks: u64) -> Vec<Candidate<'static>> {
        Vec::new()
    }

    pub(crate) fn submit_all(_workers: usize, _tasks: u64) -> Vec<Candidate<'static>> {
        Vec::new()
    }

    pub(crate) fn map_chunked(
        _workers: usize,
        _items: u64,
        _chunk: usize,
    ) -> Vec<Candidate<'static>> {
        Vec::new()
    }

    pub(crate) fn start(_workers: usize) -> Vec<Candidate<'static>> {
        Vec::new()
    }

    pub(crate) fn bytes(_size: usize) -> Vec<Candidate<'static>> {
        Vec::new()
    }
}

/// Workload 1: a no-op task on `Pool(1)`, its result, repeat.
pub fn round_trip(tasks: u64) -> Vec<Candidate<'static>> {
    enabled::round_trip(tasks)
}

/// Workload 2: `tasks` no-op tasks on `Pool(workers)`, then every result.
pub fn submit_all(workers: usize, tasks: u64) -> Vec<Candidate<'static>> {
    enabled::submit_all(workers, tasks)
}

/// Workload 3: `x * 2` over `0..items`, one task per `chunk` items (the
/// map procspawn lacks, written the plain way).
pub fn map_chunked(workers: usize, items: u64, chunk: usize) -> Vec<Candidate<'static>> {
    enabled::map_chunked(workers, items, chunk)
}

/// Workload 4: `Pool::new(workers)`, one task, its result, shutdown.
pub fn start(workers: usize) -> Vec<Candidate<'static>> {
    enabled::start(workers)
}

/// Workload 5: `size` bytes to a worker and back.
pub fn bytes(size: usize) -> Vec<Candidate<'static>> {
    enabled::bytes(size)
}
