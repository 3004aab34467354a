//! The tasks the drivers hand to workers: one `submit`ted call, or one
//! chunk of a `map`, and how their outcomes are decoded.
//!
//! A job keeps its encoded arguments until it is complete, and counts the
//! items resolved so far: a worker that dies in the middle of a job
//! resolves the items it finished (their outcomes outlive it in the shared
//! region), fails the one it was running, and leaves the rest to be sent
//! again, from where they start in the payload, to the replacement worker.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::payload::Payload;
use super::wire::{self, outcome, Block, Bounds, Entry, ItemEnds, Message, PanicInfo};
use crate::future::{Canceller, Claim, Promise};
use crate::map::ChunkOutput;
use crate::queue::Abandon;
use crate::Error;

/// A task for a worker process, type-erased for the queue.
pub(crate) trait ProcessJob: Abandon {
    /// Marks the job as handed to a worker: running at once (`claim` is
    /// `None`: the worker has nothing before it), or handed behind the
    /// task the worker runs now. `false` if it was cancelled.
    fn begin(&mut self, claim: Option<Arc<dyn Claim>>) -> bool;
    /// Cancels the job's future if its task has not started.
    fn canceller(&self) -> Canceller;
    /// The worker started the handed job; `false` if it was withdrawn.
    fn start(&mut self) -> bool;
    /// Back to pending: its worker died before starting it. `false` if it
    /// was cancelled meanwhile.
    fn unhand(&mut self) -> bool;
    /// The Task message for `slot` and its payload: the arguments not yet
    /// resolved.
    fn message(&self, slot: u8) -> (Message, &[u8]);
    /// Where the arguments not yet resolved lie in the pool's argument
    /// arena, and their length, if the job's payload lies there (a local
    /// link then sends only that: `Message::TaskShared`).
    fn shared_arguments(&self) -> Option<(u64, u64)> {
        None
    }
    /// The outcomes of the next items; `clean` if the worker said none of
    /// them failed.
    fn accept(&mut self, block: &Block<'_>, pid: u32, clean: bool);
    /// The items sent with the last message and not resolved yet.
    fn unresolved(&self) -> usize;
    /// Items of the last message resolved so far.
    fn resolved_in_message(&self) -> usize;
    /// Fails the next item with `error`, if any (it was running when its
    /// worker died), and moves the payload past the items resolved, for
    /// what is left to be sent again.
    fn fail_next(&mut self, error: Option<Error>);
    /// Fails the next item with `error`, nothing else.
    fn fail_next_only(&mut self, error: Error);
    /// Moves the payload past the items resolved, for the rest to be sent
    /// again (the worker stopped at an argument it could not decode).
    fn rest_again(&mut self) {
        self.fail_next(None);
    }
    /// Adds the time the worker spent.
    fn add_elapsed(&mut self, elapsed: Duration);
    /// Completes the future: every item has an outcome.
    fn finish(self: Box<Self>);
    /// Fails every item not resolved with `error` and completes.
    fn fail_rest(self: Box<Self>, error: Error);
    /// The payload, once the job is done with it, for the pool to reuse.
    fn take_payload(&mut self) -> Payload;
    /// The item bounds' buffer, once the job is done with it, for the pool
    /// to reuse.
    fn take_bounds(&mut self) -> Vec<u32> {
        Vec::new()
    }
    /// The descriptors of the multiprocessing handles in the arguments,
    /// sent beside every message of the job (a part sent again after its
    /// worker died needs them again: its handles index the same table).
    fn descriptors(&self) -> &[OwnedFd];
    /// Where each argument of the next message ends, counted from the
    /// start of its payload (a link that must be able to send the rest of
    /// a message again on its far side sends these along).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    fn item_ends(&self) -> ItemEnds;
}

/// What a job completes: one call's future, or one chunk's.
pub(crate) enum Completion<R> {
    Single(Promise<R>),
    Chunk(Promise<ChunkOutput<R>>),
}

impl<R: Send + 'static> Completion<R> {
    fn canceller(&self) -> Canceller {
        match self {
            Completion::Single(p) => p.canceller(),
            Completion::Chunk(p) => p.canceller(),
        }
    }
}

impl<R> Completion<R> {
    fn start(&self) -> bool {
        match self {
            Completion::Single(p) => p.start(),
            Completion::Chunk(p) => p.start(),
        }
    }
    fn hand(&self, claim: Arc<dyn Claim>) -> bool {
        match self {
            Completion::Single(p) => p.hand(claim),
            Completion::Chunk(p) => p.hand(claim),
        }
    }
    fn unhand(&self) -> bool {
        match self {
            Completion::Single(p) => p.unhand(),
            Completion::Chunk(p) => p.unhand(),
        }
    }
}

/// A job: one call (`len` 1) or one chunk.
pub(crate) struct Job<R> {
    pub(crate) call: u64,
    pub(crate) func: u64,
    /// The arguments of the items sent, one after another.
    pub(crate) payload: Payload,
    /// Where the arguments not yet resolved start in `payload`.
    pub(crate) offset: usize,
    /// The number of items sent (encoded in `payload`).
    pub(crate) sent: usize,
    /// The items not sent (their argument did not encode), by index in
    /// the chunk (ascending), and why.
    pub(crate) unsent: Vec<(usize, Error)>,
    /// Where each sent item's argument ends in `payload`: where the items
    /// to send again start.
    pub(crate) bounds: Bounds,
    /// The descriptors of the handles in the arguments.
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) completion: Completion<R>,
    /// Items resolved, counted among the sent ones.
    pub(crate) resolved: usize,
    /// `resolved` when the last message was sent.
    pub(crate) message_start: usize,
    pub(crate) values: Vec<R>,
    /// Failures by index among the sent items.
    pub(crate) failures: Vec<(usize, Error)>,
    pub(crate) elapsed: Duration,
    pub(crate) running: bool,
}

impl<R> Job<R> {
    pub(crate) fn new(
        call: u64,
        func: u64,
        payload: Payload,
        bounds: Bounds,
        completion: Completion<R>,
    ) -> Self {
        let sent = bounds.len();
        Job {
            call,
            func,
            payload,
            offset: 0,
            sent,
            unsent: Vec::new(),
            bounds,
            fds: Vec::new(),
            completion,
            resolved: 0,
            message_start: 0,
            // A chunk's job is given its vector (`reuse_values`); a
            // single call's value is one push.
            values: Vec::new(),
            failures: Vec::new(),
            elapsed: Duration::ZERO,
            running: false,
        }
    }

    /// Takes `values` for the values to go into (a kept vector, rather
    /// than fresh memory), with room for every item, if none has arrived
    /// yet.
    pub(crate) fn reuse_values(&mut self, mut values: Vec<R>) {
        if self.values.is_empty() {
            values.clear();
            values.reserve(self.sent);
            self.values = values;
        }
    }

    fn fail(&mut self, error: Error) {
        self.failures.push((self.resolved, error));
        self.resolved += 1;
    }
}

impl<R> ProcessJob for Job<R>
where
    R: DeserializeOwned + Send + 'static,
{
    fn canceller(&self) -> Canceller {
        self.completion.canceller()
    }

    fn begin(&mut self, claim: Option<Arc<dyn Claim>>) -> bool {
        if self.running {
            return true;
        }
        self.message_start = self.resolved;
        match claim {
            None => {
                self.running = self.completion.start();
                self.running
            }
            Some(claim) => self.completion.hand(claim),
        }
    }

    fn start(&mut self) -> bool {
        if !self.running {
            self.running = self.completion.start();
        }
        self.running
    }

    fn unhand(&mut self) -> bool {
        self.running || self.completion.unhand()
    }

    fn message(&self, slot: u8) -> (Message, &[u8]) {
        let count = u32::try_from(self.sent - self.resolved).unwrap_or(u32::MAX);
        let message = Message::Task {
            call: self.call,
            func: self.func,
            count,
            slot,
        };
        let payload = self.payload.bytes();
        (message, &payload[self.offset.min(payload.len())..])
    }

    fn shared_arguments(&self) -> Option<(u64, u64)> {
        self.payload.shared_from(self.offset)
    }

    fn accept(&mut self, block: &Block<'_>, pid: u32, clean: bool) {
        let take = block.len().min(self.sent - self.resolved);
        // A `Partial` frame does not say whether it holds a failure. For
        // plain numbers its ends do: if they are exactly one number's size
        // apart, every outcome is a value where the per-item path would
        // find it (one pass over them, far cheaper than that path). Other
        // types take the bulk path only on the worker's word (`clean`),
        // which trusts its ends.
        let uniform =
            || wire::bulk::plain_size::<R>().is_some_and(|size| block.uniform_values(take, size));
        if (clean || uniform()) && self.accept_clean(block, take) {
            return;
        }
        let mut index = 0;
        // The user's Deserialize may panic: that item fails alone. One
        // catch for the block, entered again after a panic.
        while index < take {
            let caught = crate::unwind::catch(
                || {
                    while index < take {
                        let entry = block.entry(index);
                        index += 1;
                        match entry {
                            Ok(Entry::Value(bytes)) => match wire::from_bytes::<R>(bytes) {
                                Ok(value) => {
                                    self.values.push(value);
                                    self.resolved += 1;
                                }
                                Err(e) => self.fail(undecodable_result::<R>(&e, bytes)),
                            },
                            Ok(Entry::Failed(tag, detail)) => {
                                self.fail(failed_outcome(pid, tag, detail))
                            }
                            Err(e) => {
                                let reason = format!("a result block is malformed: {e}");
                                self.fail(Error::Protocol { pid, reason });
                            }
                        }
                    }
                },
                None,
            );
            if let Err(error) = caught {
                let reason = match error {
                    Error::Panicked { message, .. } => {
                        format!("its Deserialize panicked: {message}")
                    }
                    error => error.to_string(),
                };
                self.fail(Error::Decode {
                    what: "result",
                    reason,
                });
            }
        }
    }

    fn unresolved(&self) -> usize {
        self.sent - self.resolved
    }

    fn resolved_in_message(&self) -> usize {
        self.resolved - self.message_start
    }

    fn fail_next(&mut self, error: Option<Error>) {
        if let Some(error) = error {
            if self.resolved < self.sent {
                self.fail(error);
            }
        }
        self.advance();
    }

    fn fail_next_only(&mut self, error: Error) {
        if self.resolved < self.sent {
            self.fail(error);
        }
    }

    fn add_elapsed(&mut self, elapsed: Duration) {
        self.elapsed += elapsed;
    }

    fn finish(mut self: Box<Self>) {
        let missing = self.sent - self.resolved;
        if missing > 0 {
            let reason = format!("the worker sent {missing} outcomes fewer than items");
            let pid = 0;
            while self.resolved < self.sent {
                self.fail(Error::Protocol {
                    pid,
                    reason: reason.clone(),
                });
            }
        }
        let mut this = *self;
        // The arguments' descriptors are closed before anyone hears of the
        // results.
        drop(std::mem::take(&mut this.fds));
        match this.completion {
            Completion::Single(promise) => {
                let outcome = match (
                    this.failures.into_iter().next(),
                    this.values.into_iter().next(),
                ) {
                    (Some((_, error)), _) => Err(error),
                    (None, Some(value)) => Ok(value),
                    (None, None) => match this.unsent.into_iter().next() {
                        Some((_, error)) => Err(error),
                        None => Err(Error::Protocol {
                            pid: 0,
                            reason: String::from("no outcome"),
                        }),
                    },
                };
                promise.complete(outcome);
            }
            Completion::Chunk(promise) => {
                let failures = if this.unsent.is_empty() {
                    this.failures
                } else {
                    merge(this.failures, this.unsent)
                };
                promise.complete(Ok(ChunkOutput {
                    values: this.values,
                    failures,
                    elapsed: this.elapsed,
                }));
            }
        }
    }

    fn fail_rest(mut self: Box<Self>, error: Error) {
        while self.resolved < self.sent {
            self.fail(error.clone());
        }
        self.finish();
    }

    fn take_payload(&mut self) -> Payload {
        std::mem::take(&mut self.payload)
    }

    fn take_bounds(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.bounds).into_buffer()
    }

    fn descriptors(&self) -> &[OwnedFd] {
        &self.fds
    }

    fn item_ends(&self) -> ItemEnds {
        self.bounds.ends_from(self.resolved, self.offset)
    }
}

impl<R: DeserializeOwned + 'static> Job<R> {
    /// The fast path for outcomes that are all values: one decoder over
    /// their bytes, no per-item lookups. `false`, with nothing taken, if
    /// any value fails to decode or they do not end exactly where the
    /// worker said (a type whose `Deserialize` does not read back what its
    /// `Serialize` wrote): the per-item path then finds out which.
    fn accept_clean(&mut self, block: &Block<'_>, take: usize) -> bool {
        let Some(bytes) = block.values(take) else {
            return false;
        };
        let before = self.values.len();
        let values = &mut self.values;
        let decoded = crate::unwind::catch(|| wire::decode_all(bytes, take, values), None);
        if decoded == Ok(true) {
            self.resolved += take;
            true
        } else {
            self.values.truncate(before);
            false
        }
    }
}

impl<R> Job<R> {
    /// Moves `offset` past the items resolved: where the next message's
    /// arguments start.
    fn advance(&mut self) {
        self.offset = self.bounds.offset_after(self.resolved, self.payload.len());
        self.message_start = self.resolved;
    }
}

/// Sent-item failures and unsent ones, merged into chunk indices.
fn merge(failures: Vec<(usize, Error)>, unsent: Vec<(usize, Error)>) -> Vec<(usize, Error)> {
    let mut out = Vec::with_capacity(failures.len() + unsent.len());
    let mut unsent = unsent.into_iter().peekable();
    let mut shift = 0;
    for (sent_index, error) in failures {
        while let Some(before) = unsent.next_if(|(at, _)| *at <= sent_index + shift) {
            out.push(before);
            shift += 1;
        }
        out.push((sent_index + shift, error));
    }
    out.extend(unsent);
    out
}

impl<R: Send> Abandon for Job<R> {
    fn abandon(self: Box<Self>, error: Error) {
        match self.completion {
            Completion::Single(p) => p.abandon(error),
            Completion::Chunk(p) => p.abandon(error),
        }
    }
}

#[cold]
fn undecodable_result<R: DeserializeOwned>(error: &postcard::Error, bytes: &[u8]) -> Error {
    Error::Decode {
        what: "result",
        reason: crate::serde_message::decode_reason::<R, _>(
            error,
            &mut wire::Deserializer::new(bytes),
            wire::why,
        ),
    }
}

/// The error for a failed outcome.
#[cold]
#[inline(never)]
pub(crate) fn failed_outcome(pid: u32, tag: u8, bytes: &[u8]) -> Error {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match tag {
        outcome::PANICKED => match postcard::from_bytes::<PanicInfo>(bytes) {
            Ok(info) => Error::Panicked {
                message: info.message,
                location: info.location,
                pid: Some(pid),
            },
            Err(e) => Error::Protocol {
                pid,
                reason: format!("an undecodable panic report: {e}"),
            },
        },
        outcome::BAD_ARGUMENT => Error::Decode {
            what: "argument",
            reason: text(),
        },
        outcome::BAD_RESULT => Error::Encode {
            what: "result",
            reason: text(),
        },
        outcome::ERROR => wire::remote::decode(bytes).unwrap_or_else(|| Error::Protocol {
            pid,
            reason: String::from("an undecodable error report"),
        }),
        tag => Error::Protocol {
            pid,
            reason: format!("an unknown outcome tag {tag}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_items_are_merged_in_place() {
        let e = |n: u32| Error::Protocol {
            pid: n,
            reason: String::new(),
        };
        // Chunk of 6: items 1 and 4 unsent; sent items 0, 2, 3, 5 → sent
        // indices 0..4; sent index 1 (item 2) and 3 (item 5) failed.
        let merged = merge(vec![(1, e(2)), (3, e(5))], vec![(1, e(1)), (4, e(4))]);
        let at: Vec<usize> = merged.iter().map(|(at, _)| *at).collect();
        assert_eq!(at, [1, 2, 4, 5]);
        let pids: Vec<u32> = merged
            .iter()
            .map(|(_, e)| match e {
                Error::Protocol { pid, .. } => *pid,
                _ => 99,
            })
            .collect();
        assert_eq!(pids, [1, 2, 4, 5]);
    }
}
