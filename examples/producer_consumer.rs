//! A producer and a consumer, two tasks on the thread pool joined by a
//! bounded channel: the producer blocks whenever the channel is full, so it
//! can never run more than the channel's capacity ahead of the consumer.
//!
//! Ported from "Share memory between processes # 2" of the "Multithreading
//! & Multiprocessing in python" tutorial (`produce` and `consume` joined by
//! `multiprocessing.Queue(10)`), with `std::sync::mpsc::sync_channel` for
//! the queue and pool tasks for the processes. Fewer items (30), a smaller
//! queue (5), and a consumer slower than the producer, so that the bound
//! shows.
//!
//! Run with `cargo run --release --example producer_consumer`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use concurrent_futures::{Error, ThreadPoolExecutor};

const ITEMS: usize = 30;
const CAPACITY: usize = 5;
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

fn main() -> Result<(), Error> {
    concurrent_futures::init();

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
