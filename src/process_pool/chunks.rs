//! How a process-pool [`Map`](crate::map::Map) runs its chunks: each one
//! task message with all its items, its arguments encoded in bulk (plain
//! numbers, `wire::bulk`) or one by one, each failure its item's alone.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::arena::ArenaBlock;
use super::dispatch::Shared;
use super::job::{Completion, Job};
use super::payload::Payload;
use super::wire;
use crate::future::Promise;
use crate::map::{ChunkOutput, ChunkRunner, Space, Submitted};
use crate::multiprocessing::transfer;
use crate::Error;

/// How a process-pool [`Map`] runs a chunk: one task message with all its
/// items.
pub(super) struct ProcessChunks<R: Send + 'static> {
    shared: Arc<Shared>,
    /// The trampoline's and the function's offsets, or why `f` was refused.
    addresses: Result<(u64, u64), Error>,
    /// Bytes per item of the last chunk's payload, to size the next one
    /// (0 before the first).
    bytes_per_item: std::cell::Cell<usize>,
    /// Vectors of values the map has handed out, for the next chunks'
    /// values (see `ChunkRunner::recycle`).
    spare_values: std::cell::RefCell<Vec<Vec<R>>>,
}

impl<R: Send + 'static> ProcessChunks<R> {
    /// The runner of a map of `shared`'s pool calling the function at
    /// `addresses` (or failing every chunk with why it was refused).
    pub(super) fn new(shared: Arc<Shared>, addresses: Result<(u64, u64), Error>) -> Self {
        // The vectors an earlier map of the same result type left.
        let spare = shared.value_spares.lock().take::<R>(KEPT_VALUES);
        ProcessChunks {
            shared,
            addresses,
            bytes_per_item: std::cell::Cell::new(0),
            spare_values: std::cell::RefCell::new(spare),
        }
    }
}

impl<R: Send + 'static> ProcessChunks<R> {
    /// Encodes a chunk's arguments item by item into a byte buffer (any
    /// type but the plain numbers, which are taken whole), emptying
    /// `items`: the payload, where each argument ends, the items whose
    /// argument did not encode, and the descriptors of the handles in
    /// the arguments.
    fn encode_chunk<A: Serialize>(&self, items: &mut Vec<A>) -> EncodedChunk {
        let len = items.len();
        // Sized from the last chunk (growing a large payload by doubling
        // copied it over and again), within reason: a guess never
        // reserves more than a few MiB up front.
        const MAX_GUESS: usize = 4 << 20;
        let per_item = match self.bytes_per_item.get() {
            0 => 4 + std::mem::size_of::<A>(),
            known => known + known / 8,
        };
        let want = len.saturating_mul(per_item).min(MAX_GUESS);
        let mut payload = self.shared.payload_buffer(want);
        payload.reserve(want);
        let mut bounds = wire::Bounds::with_buffer(self.shared.bounds_buffer());
        // One descriptor table for the chunk (its items' handles index it).
        let (unsent, fds) =
            transfer::capture(|| encode_arguments(&mut payload, &mut bounds, items));
        // Their buffer stays with the map, for the next chunk.
        items.clear();
        if len > 0 {
            self.bytes_per_item.set(payload.len().div_ceil(len));
        }
        (Payload::Bytes(payload), bounds, unsent, fds)
    }
}

impl<R: DeserializeOwned + Send + 'static> ProcessChunks<R> {
    /// Submits a chunk's job: its encoded arguments, to call the function
    /// at `(call, func)`, completing `promise`. Chunks run in workers only,
    /// never in the parent: that is what the pool is for.
    fn submit_chunk(
        &self,
        promise: Promise<ChunkOutput<R>>,
        (call, func): (u64, u64),
        (payload, bounds, unsent, fds): EncodedChunk,
    ) {
        let values = self.spare_values.borrow_mut().pop().unwrap_or_default();
        let mut job = Job::new(call, func, payload, bounds, Completion::Chunk(promise));
        job.reuse_values(values);
        job.unsent = unsent;
        job.fds = fds;
        if let Err((job, error)) = self.shared.submit(Box::new(job)) {
            job.abandon(error);
        }
    }
}

/// A chunk's encoded arguments: see [`ProcessChunks::encode_chunk`].
type EncodedChunk = (
    Payload,
    wire::Bounds,
    Vec<(usize, Error)>,
    Vec<std::os::fd::OwnedFd>,
);

/// The functions whose time per item a pool remembers at most.
const REMEMBERED_FUNCTIONS: usize = 256;

/// Value vectors a map keeps for its next chunks: as many as chunks are in
/// flight, at most, a few.
const KEPT_VALUES: usize = 6;

impl<R: Send + 'static> Drop for ProcessChunks<R> {
    fn drop(&mut self) {
        // Its vectors go to the pool, for the next map's values.
        let spare = std::mem::take(self.spare_values.get_mut());
        if !spare.is_empty() {
            let mut kept = self.shared.value_spares.lock();
            for values in spare {
                kept.keep(values);
            }
        }
    }
}

/// Encodes one argument; its `Serialize` may fail or panic, either of which
/// fails that item alone.
pub(super) fn encode_argument<A: Serialize>(payload: &mut Vec<u8>, arg: &A) -> Result<(), String> {
    let start = payload.len();
    match crate::unwind::catch(|| wire::push_value(payload, arg), None) {
        Ok(outcome) => outcome,
        Err(error) => {
            payload.truncate(start);
            Err(match error {
                Error::Panicked { message, .. } => format!("its Serialize panicked: {message}"),
                error => error.to_string(),
            })
        }
    }
}

/// Encodes a chunk's arguments one after another, and where each ends in
/// `bounds`; those that fail (or panic) are left out, and come back by
/// index with why.
fn encode_arguments<A: Serialize>(
    payload: &mut Vec<u8>,
    bounds: &mut wire::Bounds,
    items: &[A],
) -> Vec<(usize, Error)> {
    let mut refused = Vec::new();
    let mut unsent = Vec::new();
    let mut state = wire::RunState {
        pos: payload.len(),
        ..Default::default()
    };
    // One catch for the chunk, entered again after a panic.
    while state.index < items.len() {
        let caught = crate::unwind::catch(
            || wire::encode_run(payload, bounds, items, &mut state, &mut refused),
            None,
        );
        if let Err(error) = caught {
            let reason = match error {
                Error::Panicked { message, .. } => format!("its Serialize panicked: {message}"),
                error => error.to_string(),
            };
            unsent.push((state.index, reason));
            state.index += 1;
        }
    }
    payload.truncate(state.pos);
    // The ones refused, with their reasons, among the ones that panicked,
    // by index.
    let mut unsent: Vec<(usize, Error)> = unsent
        .into_iter()
        .chain(refused.into_iter().map(|(index, e)| {
            let reason = crate::serde_message::encode_reason(&e, &items[index], wire::why);
            (index, reason)
        }))
        .map(|(index, reason)| {
            (
                index,
                Error::Encode {
                    what: "argument",
                    reason,
                },
            )
        })
        .collect();
    unsent.sort_by_key(|(index, _)| *index);
    unsent
}

impl<A, R> ChunkRunner<A, R> for ProcessChunks<R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    fn run_chunk(&self, items: &mut Vec<A>) -> Submitted<R> {
        let (promise, future) = Promise::new();
        let (call, func) = match &self.addresses {
            Ok(addresses) => *addresses,
            Err(error) => {
                items.clear();
                promise.complete(Err(error.clone()));
                return future.into();
            }
        };
        let len = items.len();
        // Plain numbers are their own encoding: the job takes the vector
        // whole, and the map gathers the next chunk into a kept one.
        let numbers = wire::bulk::take_numbers(items, || self.shared.numbers_buffer(len));
        let (payload, bounds, unsent, fds) = match numbers {
            Some((numbers, size)) => {
                let mut bounds = wire::Bounds::with_buffer(self.shared.bounds_buffer());
                bounds.push_run(0, size, len);
                (Payload::Numbers(numbers), bounds, Vec::new(), Vec::new())
            }
            None => self.encode_chunk(items),
        };
        self.submit_chunk(promise, (call, func), (payload, bounds, unsent, fds));
        future.into()
    }

    fn space(&self, len: usize) -> Option<Space<A>> {
        // Plain numbers but `bool` (a worker reads the arena as it is, and
        // every bit pattern of the others is a valid number), for a pool
        // with an arena that has a free run of units long enough.
        let size = wire::bulk::plain_size::<A>()?;
        if std::any::TypeId::of::<A>() == std::any::TypeId::of::<bool>() || self.addresses.is_err()
        {
            return None;
        }
        let arena = self.shared.config.spawn.arena.as_ref()?;
        let block = arena.block(len.checked_mul(size)?)?;
        let start = std::ptr::NonNull::new(block.start().cast::<A>())?;
        // SAFETY: the block is this space's alone until its job is done
        // (the allocator hands each unit out once); it starts page-aligned
        // (aligned for any number) with room for `len * size` bytes, `len`
        // items of `A`; plain numbers have no destructor.
        Some(unsafe { Space::new(start, len, Box::new(block)) })
    }

    fn run_space(&self, space: Space<A>) -> Submitted<R> {
        let (promise, future) = Promise::new();
        let (len, owner) = space.into_parts();
        let (Ok(addresses), Some(size), Ok(mut block)) = (
            &self.addresses,
            wire::bulk::plain_size::<A>(),
            owner.downcast::<ArenaBlock>(),
        ) else {
            // `space` gives only arena blocks, for plain numbers, with
            // addresses: this is not reached.
            let reason = String::from("a chunk was gathered into room this pool did not give");
            promise.complete(Err(Error::InvalidArgument { reason }));
            return future.into();
        };
        block.set_len(len * size);
        let mut bounds = wire::Bounds::with_buffer(self.shared.bounds_buffer());
        bounds.push_run(0, size as u32, len);
        let payload = Payload::Shared(*block);
        self.submit_chunk(
            promise,
            *addresses,
            (payload, bounds, Vec::new(), Vec::new()),
        );
        future.into()
    }

    fn target_chunk_time(&self) -> Duration {
        if let Some(links) = &self.shared.config.links {
            return links.target_chunk_time();
        }
        // A chunk costs the parent a pipe round trip, two wake-ups and its
        // bookkeeping: about 25 us of CPU on the development machine, which
        // at 2 ms a chunk was 1.1 ns of the parent's CPU per item of the
        // primes seed (a quarter of its budget), 0.55 ns at 4 ms. Longer
        // chunks would cost more at the end of an input of unknown length,
        // where one worker may finish a chunk after the others are done.
        Duration::from_millis(4)
    }

    fn recycle(&self, values: Vec<R>) {
        // As many as chunks are in flight at most, a few.
        let mut spare = self.spare_values.borrow_mut();
        if spare.len() < KEPT_VALUES {
            spare.push(values);
        }
    }

    fn remembered_per_item(&self) -> Option<f64> {
        let (_, func) = self.addresses.as_ref().ok()?;
        self.shared.per_item.lock().get(func).copied()
    }

    fn remember_per_item(&self, seconds: f64) {
        if let Ok((_, func)) = &self.addresses {
            let mut known = self.shared.per_item.lock();
            // A program maps a few functions, not thousands: a bound for
            // the one that makes them up as it goes.
            if known.len() >= REMEMBERED_FUNCTIONS && !known.contains_key(func) {
                known.clear();
            }
            known.insert(*func, seconds);
        }
    }

    fn default_window(&self) -> usize {
        // Per worker: the chunk it runs and the one it has next (so that it
        // never waits for the parent between chunks), and one more: the
        // chunk the consumer hands out.
        2 * self.shared.config.max_workers + 1
    }
}
