//! `concurrent_futures::multiprocessing` across real processes: `Process`,
//! handles in process-pool tasks, dead holders and killed producers, and
//! what is left behind. Every child is a `Process` or a pool worker (this
//! test binary is caught as one before `main`); tests synchronise through
//! the primitives themselves, never with sleeps that guess.

use std::collections::HashMap;
use std::time::Duration;

use concurrent_futures::multiprocessing::{
    pipe, Array, Connection, Lock, LockError, Process, Queue, Value,
};
use concurrent_futures::{Error, ProcessPoolExecutor};

/// Blocks for ever (until killed).
fn forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn dev_shm_entries() -> usize {
    std::fs::read_dir("/dev/shm").map_or(0, |dir| dir.count())
}

/// The state letter of process `pid` in `/proc`, `None` once it is gone.
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

#[test]
fn join_gives_the_return_value_and_reaps() {
    let p = Process::spawn(|(a, b): (u64, u64)| (a + b, std::process::id()), (2, 3)).unwrap();
    let pid = p.pid();
    let (sum, ran_in) = p.join().unwrap();
    assert_eq!((sum, ran_in), (5, pid));
    assert_ne!(pid, std::process::id());
    assert_eq!(
        state_of(pid),
        None,
        "process {pid} is left behind after join"
    );
}

#[test]
fn join_reports_panics_exits_and_signals() {
    let panicked = Process::spawn(|(): ()| -> u8 { panic!("boom") }, ()).unwrap();
    let pid = panicked.pid();
    match panicked.join() {
        Err(Error::Panicked {
            message,
            pid: Some(at),
            ..
        }) => assert_eq!((message.as_str(), at), ("boom", pid)),
        other => panic!("{other:?}"),
    }

    let exited = Process::spawn(|(): ()| -> u8 { std::process::exit(3) }, ()).unwrap();
    assert!(matches!(
        exited.join(),
        Err(Error::WorkerDied {
            exit_code: Some(3),
            ..
        })
    ));

    let (ready, wait) = pipe::<()>().unwrap();
    let killed = Process::spawn(
        |ready: Connection<()>| -> () {
            ready.send(()).unwrap();
            forever()
        },
        ready,
    )
    .unwrap();
    wait.recv().unwrap();
    assert!(killed.is_alive());
    let pid = killed.pid();
    killed.kill();
    assert!(matches!(
        killed.join(),
        Err(Error::WorkerDied {
            signal: Some(9),
            ..
        })
    ));
    assert_eq!(state_of(pid), None);
}

#[test]
fn terminate_and_join_timeout() {
    let (ready, wait) = pipe::<()>().unwrap();
    let mut p = Process::spawn(
        |ready: Connection<()>| -> () {
            ready.send(()).unwrap();
            forever()
        },
        ready,
    )
    .unwrap();
    wait.recv().unwrap();
    assert!(matches!(
        p.join_timeout(Duration::from_millis(20)),
        Err(Error::Timeout(_))
    ));
    assert!(p.is_alive());
    p.terminate();
    assert!(matches!(
        p.join(),
        Err(Error::WorkerDied {
            signal: Some(15),
            ..
        })
    ));
}

#[test]
fn a_dropped_process_is_reaped_not_left_a_zombie() {
    let (go, wait) = pipe::<()>().unwrap();
    let p = Process::spawn(|wait: Connection<()>| wait.recv().unwrap(), wait).unwrap();
    let pid = p.pid();
    drop(p); // detached: still running
    assert!(matches!(state_of(pid), Some(s) if s != 'Z'));
    go.send(()).unwrap();
    // The detached reaper reaps it once it ends: poll /proc for that (the
    // only observable), with a generous bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state_of(pid).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} was never reaped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn deposit((balance, lock): (Value<i64>, Lock)) {
    for _ in 0..1000 {
        let _held = lock.acquire().unwrap();
        balance.set(balance.get() + 1);
    }
}

fn withdraw((balance, lock): (Value<i64>, Lock)) {
    for _ in 0..1000 {
        let _held = lock.acquire().unwrap();
        balance.set(balance.get() - 1);
    }
}

#[test]
fn the_bank_balances_with_a_lock_and_with_the_value_s_own_lock() {
    let balance = Value::new(200i64).unwrap();
    let lock = Lock::new().unwrap();
    let d = Process::spawn(deposit, (balance.clone(), lock.clone())).unwrap();
    let w = Process::spawn(withdraw, (balance.clone(), lock.clone())).unwrap();
    d.join().unwrap();
    w.join().unwrap();
    assert_eq!(balance.get(), 200);

    fn add_under_own_lock((balance, n): (Value<i64>, i64)) {
        for _ in 0..1000 {
            *balance.lock().unwrap() += n;
        }
    }
    let a = Process::spawn(add_under_own_lock, (balance.clone(), 1)).unwrap();
    let b = Process::spawn(add_under_own_lock, (balance.clone(), 2)).unwrap();
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(balance.get(), 3200);
}

/// What a child holds when it is killed.
fn hold_and_die_lock((lock, ready): (Lock, Queue<u8>)) {
    let _held = lock.acquire().unwrap();
    ready.put(1).unwrap();
    forever()
}

fn hold_and_die_value((value, ready): (Value<u64>, Queue<u8>)) {
    let mut held = value.lock().unwrap();
    *held = 99;
    ready.put(1).unwrap();
    forever()
}

fn hold_and_die_array((array, ready): (Array<u8>, Queue<u8>)) {
    let mut held = array.lock().unwrap();
    held[0] = 7;
    ready.put(1).unwrap();
    forever()
}

#[test]
fn a_killed_holder_does_not_lock_a_lock_for_ever() {
    let lock = Lock::new().unwrap();
    let ready = Queue::bounded(1).unwrap();
    let p = Process::spawn(hold_and_die_lock, (lock.clone(), ready.clone())).unwrap();
    ready.get().unwrap();
    assert!(matches!(lock.try_acquire(), Err(LockError::WouldBlock)));
    p.kill();
    assert!(p.join().is_err());
    let guard = match lock.acquire_timeout(Duration::from_secs(10)) {
        Err(LockError::HolderDied(guard)) => guard,
        other => panic!("expected HolderDied, got {other:?}"),
    };
    drop(guard);
    // Told once; the lock then works as before.
    assert!(lock.acquire().is_ok());
}

#[test]
fn a_waiter_blocked_on_the_lock_is_handed_it_when_the_holder_dies() {
    let lock = Lock::new().unwrap();
    let ready = Queue::bounded(1).unwrap();
    let p = Process::spawn(hold_and_die_lock, (lock.clone(), ready.clone())).unwrap();
    ready.get().unwrap();
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || matches!(lock.acquire(), Err(LockError::HolderDied(_))))
    };
    p.kill();
    assert!(waiter.join().unwrap());
    drop(p);
}

#[test]
fn a_killed_holder_of_a_value_or_array_lock_is_reported() {
    let value = Value::new(1u64).unwrap();
    let ready = Queue::bounded(1).unwrap();
    let p = Process::spawn(hold_and_die_value, (value.clone(), ready.clone())).unwrap();
    ready.get().unwrap();
    p.kill();
    assert!(p.join().is_err());
    match value.lock() {
        Err(LockError::HolderDied(guard)) => assert_eq!(*guard, 99),
        other => panic!("{other:?}"),
    }
    assert_eq!(value.get(), 99);

    let array = Array::<u8>::zeroed(4).unwrap();
    let p = Process::spawn(hold_and_die_array, (array.clone(), ready.clone())).unwrap();
    ready.get().unwrap();
    p.kill();
    assert!(p.join().is_err());
    // get() goes on past a dead holder (any bytes are valid elements)…
    assert_eq!(array.get(0), Some(7));
    // …and the one who took it was told, so lock() is clean now.
    assert!(array.lock().is_ok());
}

fn produce_forever((queue, id, ready): (Queue<(u32, u64)>, u32, Queue<u8>)) {
    ready.put(1).unwrap();
    for seq in 0.. {
        queue.put((id, seq)).unwrap();
    }
}

fn produce((queue, id, n): (Queue<(u32, u64)>, u32, u64)) {
    for seq in 0..n {
        queue.put((id, seq)).unwrap();
    }
}

#[test]
fn producers_killed_in_the_middle_of_put_do_not_wedge_the_queue() {
    let queue: Queue<(u32, u64)> = Queue::bounded(8).unwrap();
    let ready = Queue::bounded(4).unwrap();
    // Two producers race for the ring (one always waits in put, the other
    // writes a slot, under its mutex); the consumer keeps them busy.
    for round in 0..6 {
        let a = Process::spawn(produce_forever, (queue.clone(), 1, ready.clone())).unwrap();
        let b = Process::spawn(produce_forever, (queue.clone(), 2, ready.clone())).unwrap();
        ready.get().unwrap();
        ready.get().unwrap();
        for _ in 0..(500 * round + 50) {
            queue.get().unwrap();
        }
        a.kill();
        b.kill();
        let _ = (a.join(), b.join());
        // Drain whatever they had published, then the queue works.
        while queue.try_get().unwrap().is_some() {}
        let c = Process::spawn(produce, (queue.clone(), 3, 100)).unwrap();
        for seq in 0..100 {
            assert_eq!(
                queue.get_timeout(Duration::from_secs(10)).unwrap(),
                (3, seq)
            );
        }
        c.join().unwrap();
    }
}

fn consume_forever((queue, ready): (Queue<(u32, u64)>, Queue<u8>)) {
    ready.put(1).unwrap();
    loop {
        queue.get().unwrap();
    }
}

#[test]
fn a_consumer_killed_while_it_waits_in_get_does_not_wedge_the_queue() {
    let queue: Queue<(u32, u64)> = Queue::bounded(2).unwrap();
    let ready = Queue::bounded(1).unwrap();
    let c = Process::spawn(consume_forever, (queue.clone(), ready.clone())).unwrap();
    ready.get().unwrap();
    c.kill();
    let _ = c.join();
    queue.put((0, 0)).unwrap();
    queue.put((0, 1)).unwrap();
    assert_eq!(queue.get().unwrap(), (0, 0));
}

#[test]
fn the_queue_is_fifo_per_producer_between_processes() {
    let queue: Queue<(u32, u64)> = Queue::bounded(10).unwrap();
    let producers: Vec<_> = (0..3)
        .map(|id| Process::spawn(produce, (queue.clone(), id, 2000)).unwrap())
        .collect();
    let mut next: HashMap<u32, u64> = HashMap::new();
    for _ in 0..6000 {
        let (id, seq) = queue.get().unwrap();
        let expected = next.entry(id).or_insert(0);
        assert_eq!(seq, *expected, "producer {id} out of order");
        *expected += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(queue.is_empty());
}

fn echo(end: Connection<(String, Queue<String>)>) {
    while let Ok((text, reply_to)) = end.recv() {
        reply_to.put(text.to_uppercase()).unwrap();
    }
}

#[test]
fn a_connection_carries_values_and_handles_between_processes() {
    let (here, there) = pipe().unwrap();
    let p = Process::spawn(echo, there).unwrap();
    let replies: Queue<String> = Queue::bounded(4).unwrap();
    for word in ["one", "two", "three"] {
        here.send((word.to_string(), replies.clone())).unwrap();
        assert_eq!(replies.get().unwrap(), word.to_uppercase());
    }
    drop(here);
    p.join().unwrap();
}

fn bump((counter, log, i): (Value<u64>, Queue<u64>, u64)) -> u64 {
    *counter.lock().unwrap() += i;
    log.put(i).unwrap();
    i * 2
}

#[test]
fn handles_travel_inside_pool_task_arguments() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let counter = Value::new(0u64).unwrap();
    let log: Queue<u64> = Queue::bounded(1024).unwrap();
    let f = pool.submit(bump, (counter.clone(), log.clone(), 5));
    assert_eq!(f.result().unwrap(), 10);
    let doubled: Vec<u64> = pool
        .map(bump, (1..=100).map(|i| (counter.clone(), log.clone(), i)))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(doubled, (1..=100).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(counter.get(), 5 + 5050);
    let mut logged: Vec<u64> = std::iter::from_fn(|| log.try_get().unwrap()).collect();
    logged.sort_unstable();
    assert_eq!(logged.len(), 101);
}

fn return_a_lock((): ()) -> Lock {
    Lock::new().unwrap()
}

#[test]
fn a_handle_in_a_task_result_is_a_clear_error() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    match pool.submit(return_a_lock, ()).result() {
        Err(Error::Encode {
            what: "result",
            reason,
        }) => {
            assert!(
                reason.contains("can only travel through this crate"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

fn make_handles_then_wait((ready, _keep): (Queue<u8>, Lock)) {
    let _mine = (
        Value::new(1u64).unwrap(),
        Array::<u8>::zeroed(4096).unwrap(),
        Queue::<u8>::bounded(10).unwrap(),
        Lock::new().unwrap(),
    );
    ready.put(1).unwrap();
    forever()
}

#[test]
fn nothing_is_left_in_dev_shm_even_after_sigkill() {
    let before = dev_shm_entries();
    {
        let ready = Queue::bounded(4).unwrap();
        let lock = Lock::new().unwrap();
        let children: Vec<_> = (0..3)
            .map(|_| Process::spawn(make_handles_then_wait, (ready.clone(), lock.clone())).unwrap())
            .collect();
        for _ in &children {
            ready.get().unwrap();
        }
        // Alive, holding handles: nothing is named.
        assert_eq!(dev_shm_entries(), before);
        for child in children {
            child.kill();
            assert!(matches!(
                child.join(),
                Err(Error::WorkerDied {
                    signal: Some(9),
                    ..
                })
            ));
        }
    }
    assert_eq!(dev_shm_entries(), before);
}
