//! A producer and a consumer joined by a bounded queue: the producer blocks
//! whenever the queue is full, so it can never run more than the queue's
//! capacity ahead of the consumer. Twice: with real processes and a
//! `multiprocessing::Queue`, as the tutorial has it, then with two tasks on
//! the thread pool and a bounded channel.
//!
//! Ported from "Share memory between processes # 2" of the "Multithreading
//! & Multiprocessing in python" tutorial (`produce` and `consume`, two
//! `multiprocessing.Process`es joined by `multiprocessing.Queue(10)`), and
//! the `Process` + `Queue` squares example of the "Python Multiprocessing"
//! tutorial. Fewer items (30), and a consumer slower than the producer, so
//! that the bound shows.
//!
//! Run with `cargo run --release --example producer_consumer`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use concurrent_futures::multiprocessing::{Process, Queue, Value};
use concurrent_futures::{Error, ThreadPoolExecutor};

const ITEMS: usize = 30;
/// The thread version's channel.
const CAPACITY: usize = 5;
/// The process version's queue, as in the tutorial.
const QUEUE_CAPACITY: usize = 10;
/// The consumer's work per item; the producer has none, so it runs ahead
/// until the channel is full.
const CONSUME_TIME: Duration = Duration::from_millis(10);

/// Sends `0..ITEMS`; returns how many it sent.
fn produce(queue: SyncSender<usize>, produced: &AtomicUsize) -> usize {
    for i in 0..ITEMS {
        println!("in produce {i:>2}");
        // ORDERING: a statistic read by the consumer; the channel itself
        // carries the data.
        produced.fetch_add(1, Ordering::Relaxed);
        // Blocks while the channel holds CAPACITY items.
        if queue.send(i).is_err() {
            return i; // the consumer is gone
        }
    }
    ITEMS
}

/// Receives until the producer is done; returns the items and how far at
/// most the producer was ahead: how many items it had produced (or was
/// sending) that were not consumed yet.
fn consume(queue: Receiver<usize>, produced: &AtomicUsize) -> (Vec<usize>, usize) {
    let mut received = Vec::new();
    let mut most_ahead = 0;
    // The loop ends when the producer has dropped its end of the channel.
    for item in queue {
        received.push(item);
        // ORDERING: see `produce`.
        let ahead = produced.load(Ordering::Relaxed) - received.len();
        most_ahead = most_ahead.max(ahead);
        println!("                 in consume {item:>2}   (producer {ahead} ahead)");
        sleep(CONSUME_TIME);
    }
    (received, most_ahead)
}

/// The tutorial's `produce`, in its own process: puts `0..ITEMS` and
/// counts them in `produced`.
fn produce_process((queue, produced): (Queue<usize>, Value<usize>)) -> usize {
    for i in 0..ITEMS {
        println!("in produce {i:>2}   (process {})", std::process::id());
        *produced
            .lock()
            .expect("the consumer died holding the counter") += 1;
        // Blocks while the queue holds QUEUE_CAPACITY items.
        queue.put(i).expect("a usize always fits the queue");
    }
    ITEMS
}

/// The tutorial's `consume`, in its own process: gets ITEMS items; returns
/// them and how far at most the producer was ahead.
fn consume_process((queue, produced): (Queue<usize>, Value<usize>)) -> (Vec<usize>, usize) {
    let mut received = Vec::new();
    let mut most_ahead = 0;
    for _ in 0..ITEMS {
        let item = queue.get().expect("the producer only puts usizes");
        received.push(item);
        let ahead = produced.get() - received.len();
        most_ahead = most_ahead.max(ahead);
        println!("                              in consume {item:>2}   (producer {ahead} ahead)");
        sleep(CONSUME_TIME);
    }
    (received, most_ahead)
}

fn with_processes() -> Result<(), Error> {
    println!("== two processes, a multiprocessing::Queue of {QUEUE_CAPACITY}\n");
    let queue = Queue::bounded(QUEUE_CAPACITY)?;
    let produced = Value::new(0usize)?;
    let consumer = Process::spawn(consume_process, (queue.clone(), produced.clone()))?;
    let producer = Process::spawn(produce_process, (queue.clone(), produced.clone()))?;
    let sent = producer.join()?;
    let (received, most_ahead) = consumer.join()?;
    let in_order = received.iter().copied().eq(0..ITEMS);
    println!(
        "\nproduced {sent}, consumed {}, in order: {in_order}",
        received.len()
    );
    println!(
        "the producer was at most {most_ahead} items ahead: never more than the \
         {QUEUE_CAPACITY} the queue holds (counting the one it was putting)\n"
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    concurrent_futures::init();
    with_processes()?;
    println!("== two tasks on the thread pool, a sync_channel of {CAPACITY}\n");

    // Both tasks run at once, so the pool needs two threads: with one, the
    // producer would wait for ever for a consumer that never starts.
    let pool = ThreadPoolExecutor::new(2);
    let (sender, receiver) = sync_channel(CAPACITY);
    let produced = Arc::new(AtomicUsize::new(0));

    let counter = Arc::clone(&produced);
    let consumer = pool.submit(move || consume(receiver, &counter));
    let counter = Arc::clone(&produced);
    let producer = pool.submit(move || produce(sender, &counter));

    let sent = producer.result()?;
    let (received, most_ahead) = consumer.result()?;
    let in_order = received.iter().copied().eq(0..ITEMS);
    println!(
        "\nproduced {sent}, consumed {}, in order: {in_order}",
        received.len()
    );
    println!(
        "the producer was at most {most_ahead} items ahead: the {CAPACITY} the channel holds, \
         and the one it was waiting to send"
    );
    Ok(())
}
