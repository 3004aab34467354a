//! `concurrent_futures::multiprocessing`: every promise of issue 14, through
//! the public API. Tests that need other processes use `Process::spawn` or
//! the process pool (the crate catches their workers before `main`).

use std::time::{Duration, Instant};

use concurrent_futures::multiprocessing::{
    cpu_count, pipe, Array, Connection, Lock, LockError, Queue, Value,
};
use concurrent_futures::Error;

#[test]
fn a_value_gets_sets_and_locks() {
    let v = Value::new(200i64).unwrap();
    v.set(v.get() + 1);
    *v.lock().unwrap() += 1;
    assert_eq!(v.get(), 202);
    let clone = v.clone();
    clone.set(7);
    assert_eq!(v.get(), 7);
}

#[test]
fn get_while_holding_the_guard_panics_rather_than_hangs() {
    let v = Value::new(1u8).unwrap();
    let _guard = v.lock().unwrap();
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.get()));
    assert!(got.is_err());
}

#[test]
fn an_array_is_a_locked_slice() {
    let a: Array<i32> = Array::zeroed(5).unwrap();
    assert_eq!(a.to_vec(), [0; 5]);
    a.set(4, 9).unwrap();
    assert!(matches!(a.set(5, 1), Err(Error::InvalidArgument { .. })));
    assert_eq!(a.get(4), Some(9));
    assert_eq!(a.get(5), None);
    a.lock().unwrap()[0] = 3;
    assert_eq!(a.to_vec(), [3, 0, 0, 0, 9]);
    assert_eq!(Array::from_slice(&[1u64, 2]).unwrap().to_vec(), [1, 2]);
}

#[test]
fn zero_sized_types_are_refused() {
    assert!(matches!(Value::new(()), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        Array::<()>::zeroed(3),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_lock_excludes_other_threads_and_times_out() {
    let lock = Lock::new().unwrap();
    let held = lock.acquire().unwrap();
    assert!(matches!(lock.try_acquire(), Err(LockError::Deadlock)));
    assert!(matches!(lock.acquire(), Err(LockError::Deadlock)));
    let other = lock.clone();
    let would_block =
        std::thread::spawn(move || matches!(other.try_acquire(), Err(LockError::WouldBlock)));
    assert!(would_block.join().unwrap());
    let other = lock.clone();
    let start = Instant::now();
    let timed_out = std::thread::spawn(move || {
        matches!(
            other.acquire_timeout(Duration::from_millis(50)),
            Err(LockError::TimedOut)
        )
    })
    .join()
    .unwrap();
    assert!(timed_out);
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(held);
    assert!(lock.try_acquire().is_ok());
}

#[test]
fn a_queue_is_fifo_bounded_and_timed() {
    let q: Queue<u64> = Queue::bounded(3).unwrap();
    assert!(q.is_empty());
    for i in 0..3 {
        q.put(i).unwrap();
    }
    assert_eq!(q.len(), 3);
    assert!(matches!(
        q.put_timeout(9, Duration::from_millis(20)),
        Err(Error::Timeout(_))
    ));
    assert_eq!(
        (q.get().unwrap(), q.get().unwrap(), q.get().unwrap()),
        (0, 1, 2)
    );
    assert_eq!(q.try_get().unwrap(), None);
    assert!(matches!(
        q.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout(_))
    ));
    assert!(matches!(
        Queue::<u8>::bounded(0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_queue_wraps_around_many_times_between_threads() {
    let q: Queue<(u32, String)> = Queue::bounded(4).unwrap();
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || {
            for i in 0..10_000u32 {
                q.put((i, i.to_string())).unwrap();
            }
        })
    };
    for i in 0..10_000u32 {
        assert_eq!(q.get().unwrap(), (i, i.to_string()));
    }
    producer.join().unwrap();
}

#[test]
fn an_oversized_item_is_a_clear_error() {
    let q: Queue<Vec<u8>> = Queue::with_item_size(2, 64).unwrap();
    match q.put(vec![0; 1000]) {
        Err(Error::Encode { reason, .. }) => {
            assert!(reason.contains("item size of 64"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    q.put(vec![1; 10]).unwrap();
    assert_eq!(q.get().unwrap(), vec![1; 10]);
}

#[test]
fn a_handle_in_a_queue_item_is_refused_clearly() {
    let q: Queue<Lock> = Queue::bounded(2).unwrap();
    match q.put(Lock::new().unwrap()) {
        Err(Error::Encode { reason, .. }) => {
            assert!(reason.contains("cannot go through a Queue"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(q.is_empty());
}

#[test]
fn a_pipe_is_duplex_and_reports_a_closed_end() {
    let (a, b): (Connection<String>, Connection<String>) = pipe().unwrap();
    a.send("ping".into()).unwrap();
    assert_eq!(b.recv().unwrap(), "ping");
    b.send("pong".into()).unwrap();
    assert_eq!(a.recv().unwrap(), "pong");
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(10)),
        Err(Error::Timeout(_))
    ));
    drop(b);
    assert_eq!(a.recv(), Err(Error::Disconnected));
    assert_eq!(a.send("x".into()), Err(Error::Disconnected));
}

#[test]
fn a_pipe_carries_large_messages() {
    let (a, b) = pipe::<Vec<u8>>().unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let sender = std::thread::spawn({
        let big = big.clone();
        move || a.send(big).unwrap()
    });
    assert_eq!(b.recv().unwrap(), big);
    sender.join().unwrap();
}

#[test]
fn handles_travel_through_a_connection() {
    let (a, b) = pipe::<(Value<u32>, Lock, Queue<u8>, Array<u16>)>().unwrap();
    let v = Value::new(1u32).unwrap();
    let q = Queue::bounded(1).unwrap();
    let arr = Array::from_slice(&[5u16]).unwrap();
    a.send((v.clone(), Lock::new().unwrap(), q.clone(), arr.clone()))
        .unwrap();
    let (v2, lock2, q2, arr2) = b.recv().unwrap();
    v2.set(41);
    q2.put(7).unwrap();
    arr2.set(0, 6).unwrap();
    drop(lock2.acquire().unwrap());
    assert_eq!((v.get(), q.get().unwrap(), arr.get(0)), (41, 7, Some(6)));
}

#[test]
fn a_connection_travels_through_a_connection() {
    let (a, b) = pipe::<Connection<u8>>().unwrap();
    let (c, d) = pipe::<u8>().unwrap();
    a.send(c).unwrap();
    let c2 = b.recv().unwrap();
    c2.send(3).unwrap();
    assert_eq!(d.recv().unwrap(), 3);
}

#[test]
fn serializing_a_handle_elsewhere_is_an_error() {
    let lock = Lock::new().unwrap();
    let bytes = postcard::to_allocvec(&lock);
    assert!(bytes.is_err(), "a handle serialized to {bytes:?}");
    let value = Value::new(1u8).unwrap();
    assert!(postcard::to_allocvec(&(1u8, value)).is_err());
    // Nor does a bare index decode as a handle.
    assert!(postcard::from_bytes::<Lock>(&[0]).is_err());
}

#[test]
fn cpu_count_counts_the_system_s_cpus() {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let expected: usize = online
        .trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum();
    assert_eq!(cpu_count(), expected);
}
