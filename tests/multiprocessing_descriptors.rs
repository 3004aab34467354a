//! 10^4 multiprocessing handles through process-pool tasks leave the
//! descriptor count flat, in the parent and in the workers. Alone in its
//! test binary: `/proc/self/fd` counts every thread's descriptors, so no
//! other test may run beside it.

use concurrent_futures::multiprocessing::Value;
use concurrent_futures::ProcessPoolExecutor;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Counts one use of the value (its descriptor is closed when the
/// argument drops, after the call).
fn bump(value: Value<u32>) {
    *value.lock().unwrap() += 1;
}

/// The worker's pid and how many descriptors it has open between tasks.
fn worker_fds((): ()) -> (u32, usize) {
    (std::process::id(), open_fds())
}

#[test]
fn ten_thousand_handles_through_pool_tasks_leave_the_descriptor_count_flat() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let value = Value::new(0u32).unwrap();
    // Warm up: both workers started, their buffers in place. The probes
    // go out together, so that both workers take some.
    let probe = |pool: &ProcessPoolExecutor| -> std::collections::BTreeMap<u32, usize> {
        let probes: Vec<_> = (0..40).map(|_| pool.submit(worker_fds, ())).collect();
        probes.into_iter().map(|f| f.result().unwrap()).collect()
    };
    for _ in 0..20 {
        pool.submit(bump, value.clone()).result().unwrap();
    }
    let workers_before = probe(&pool);
    let before = open_fds();
    for round in 0..10 {
        let futures: Vec<_> = (0..500).map(|_| pool.submit(bump, value.clone())).collect();
        for f in futures {
            f.result().unwrap();
        }
        pool.map(bump, (0..500).map(|_| value.clone()))
            .collect::<Result<Vec<()>, _>>()
            .unwrap();
        assert_eq!(
            open_fds(),
            before,
            "the parent's descriptors grew by round {round}"
        );
    }
    assert_eq!(value.get(), 20 + 10_000);
    let workers_after = probe(&pool);
    for (pid, after) in &workers_after {
        if let Some(before) = workers_before.get(pid) {
            assert_eq!(after, before, "worker {pid}'s descriptors grew");
        }
    }
    assert!(
        workers_after
            .keys()
            .any(|pid| workers_before.contains_key(pid)),
        "the workers were replaced: {workers_before:?} then {workers_after:?}"
    );
}
