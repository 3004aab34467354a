//! Tests of `Map`'s own logic, with a runner that runs chunks at once.

use super::{ChunkOutput, ChunkRunner, Map, Submitted};
use crate::future::Promise;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs each chunk at once, each item taking 1 µs by its report, and
/// keeps the chunks' lengths and what the maps remember.
#[derive(Clone, Default)]
struct Recorder {
    lengths: Arc<Mutex<Vec<usize>>>,
    remembered: Arc<Mutex<Option<f64>>>,
}

impl ChunkRunner<u64, u64> for Recorder {
    fn run_chunk(&self, items: &mut Vec<u64>) -> Submitted<u64> {
        self.lengths.lock().unwrap().push(items.len());
        let (promise, future) = Promise::new();
        let mut output = ChunkOutput::run(std::mem::take(items), |x| x + 1);
        output.elapsed = Duration::from_micros(output.len() as u64);
        promise.complete(Ok(output));
        future.into()
    }
    fn target_chunk_time(&self) -> Duration {
        Duration::from_millis(4)
    }
    fn default_window(&self) -> usize {
        2
    }
    fn remembered_per_item(&self) -> Option<f64> {
        *self.remembered.lock().unwrap()
    }
    fn remember_per_item(&self, seconds: f64) {
        *self.remembered.lock().unwrap() = Some(seconds);
    }
}

#[test]
fn a_later_map_of_the_same_function_starts_from_what_the_last_one_measured() {
    let runner = Recorder::default();
    let sum: u64 = Map::new(Box::new(runner.clone()), 0..100_000u64)
        .map(Result::unwrap)
        .sum();
    assert_eq!(sum, (1..=100_000).sum());
    let first = std::mem::take(&mut *runner.lengths.lock().unwrap());
    assert_eq!(first[0], 1, "a first map probes with one item");
    let remembered = runner.remembered.lock().unwrap().expect("it remembers");
    assert!((remembered - 1e-6).abs() < 1e-7, "{remembered}");
    let again: Vec<u64> = Map::new(Box::new(runner.clone()), 0..10_000u64)
        .map(Result::unwrap)
        .collect();
    assert_eq!(again, (1..=10_000).collect::<Vec<_>>());
    let second = runner.lengths.lock().unwrap().clone();
    // A quarter of 4 ms at 1 µs an item, then the full 4 ms (shrunk
    // towards the end of the input).
    assert_eq!(second[0], 1_000, "{second:?}");
    assert!(second.iter().all(|&len| len > 1), "{second:?}");
}

#[test]
fn a_drained_lane_gives_its_buffer_back() {
    let values: Vec<u64> = (0..1000).collect();
    let address = values.as_ptr();
    let mut lane = values.into_iter();
    assert_eq!(lane.by_ref().count(), 1000);
    let buffer = super::buffer_of(lane);
    assert!(buffer.is_empty());
    assert_eq!((buffer.capacity(), buffer.as_ptr()), (1000, address));
}
