//! The `encodings` target: the bytes of the region protocol (see
//! `process_pool::wire`) decoded as each side decodes them — a `Partial`
//! payload and a slot of the shared region as the parent reads outcomes,
//! a task's bulk arguments as the worker reads them.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{parent, Input, TaskArgument, TaskResult, ALLOCATION_SLACK};
use crate::process_pool::wire::{self, Block, Entry};

/// The most the decoders may allocate at once for a value whose length
/// prefix claims more than the input holds: serde's cap on what a sequence
/// reserves up front (1 MiB).
pub const PREALLOCATION_CAP: usize = 1 << 20;

/// How many bytes of allocation, at once, each byte of an `encodings` input
/// may cost (a value of a few bytes becomes an outcome of some 64 bytes,
/// and vectors double).
pub const ALLOCATION_PER_BYTE: usize = 256;

/// Runs the `encodings` target on `data`. The same bytes are taken three
/// ways, each decoded into several value types:
///
/// 1. a `Partial` frame's payload (`Block::from_payload`): a count (first
///    two bytes, little-endian), then the payload;
/// 2. a slot of the shared region (`Block::from_slot`): the number of ends
///    (a byte), the count of outcomes (a byte, which may be more than the
///    ends), the ends (little-endian u32s), then the data;
/// 3. a task's arguments (one decoder, `count` items, as the
///    worker reads them): a count (four bytes), then the payload.
///
/// Each block is decoded as the parent decodes it ([`check_block`]); the
/// arguments as [`check_arguments`] says. `largest_allocation` returns the
/// largest single allocation since it was last called (`|| 0` skips the
/// check).
///
/// # Panics
///
/// If a check fails, or one allocation was larger than
/// [`PREALLOCATION_CAP`] plus [`ALLOCATION_PER_BYTE`] per input byte plus
/// [`ALLOCATION_SLACK`].
pub fn encodings(data: &[u8], mut largest_allocation: impl FnMut() -> usize) {
    let bound = PREALLOCATION_CAP + ALLOCATION_PER_BYTE * data.len() + ALLOCATION_SLACK;
    let within = |what: &str, largest: usize| {
        assert!(
            largest <= bound,
            "{what} allocated {largest} bytes at once for an input of {} bytes",
            data.len()
        );
    };
    largest_allocation();

    let mut input = Input(data);
    let count = u16::from_le_bytes(input.bytes());
    if let Ok(block) = Block::from_payload(input.0, usize::from(count)) {
        check_block(&block);
    }
    within("a Partial payload", largest_allocation());

    let mut input = Input(data);
    let [ends, count] = input.bytes::<2>();
    let ends: Vec<u32> = (0..ends).map(|_| input.u32()).collect();
    match Block::from_slot(&ends, input.0, usize::from(count)) {
        Ok(block) => {
            assert_eq!(block.len(), usize::from(count));
            check_block(&block);
            check_slot_as_payload(&block);
        }
        Err(_) => assert!(
            usize::from(count) > ends.len(),
            "a slot refused {count} outcomes"
        ),
    }
    within("a slot", largest_allocation());

    let mut input = Input(data);
    let count = input.u32();
    check_arguments(input.0, count);
    within("task arguments", largest_allocation());
}

/// Decodes `block` as the parent does, into several result types: every
/// entry, `values` of every prefix, and the outcomes a job makes of it.
///
/// # Panics
///
/// If `values` gives other bytes than the entries say, or the job's
/// outcomes are not the entries' ([`parent::check_block`]).
pub(super) fn check_block(block: &Block<'_>) {
    let entries: Vec<_> = (0..block.len()).map(|i| block.entry(i)).collect();
    for count in 0..=block.len() + 1 {
        let values = block.values(count);
        if count == 0 || count > block.len() {
            assert_eq!(values, None, "values of {count} of {}", block.len());
            continue;
        }
        match &entries[..count] {
            all if all.iter().all(|e| matches!(e, Ok(Entry::Value(_)))) => {
                let joined: Vec<u8> = all
                    .iter()
                    .flat_map(|e| match e {
                        Ok(Entry::Value(bytes)) => bytes.to_vec(),
                        _ => Vec::new(),
                    })
                    .collect();
                assert_eq!(values, Some(&joined[..]), "values of {count} values");
            }
            [.., Ok(Entry::Failed(..))] => {
                assert_eq!(values, None, "values up to a failure");
            }
            // Earlier failures are the caller's to know (the worker counts
            // them); bytes out of bounds give entries errors, `values`
            // whatever lies within the data.
            _ => {}
        }
    }
    // Whether a prefix is free of failures, as the bulk paths ask it (by
    // the ends alone: an entry out of bounds is no failure), and the
    // ends it moves for an MPI reply: rising, within the data, each the
    // entry's own end.
    for count in 0..=block.len() {
        let failures = entries[..count]
            .iter()
            .any(|e| matches!(e, Ok(Entry::Failed(..))));
        if failures {
            assert!(!block.none_failed(count), "a failure among {count}");
        }
        for size in [1, 2, 4, 8, 16] {
            if block.uniform_values(count, size) {
                assert!(count > 0);
                for (index, entry) in entries[..count].iter().enumerate() {
                    match entry {
                        Ok(Entry::Value(bytes)) => assert_eq!(bytes.len(), size),
                        other => panic!("outcome {index} is {other:?} among uniform values"),
                    }
                }
            }
        }
        let mut ends = vec![7];
        if block.append_value_ends(count, 100, &mut ends) {
            assert!(block.none_failed(count));
            assert_eq!(ends.len(), count + 1);
            let mut start = 100;
            for (end, entry) in ends[1..].iter().zip(&entries[..count]) {
                assert!(*end >= start, "ends that fall");
                match entry {
                    Ok(Entry::Value(bytes)) => assert_eq!((*end - start) as usize, bytes.len()),
                    other => panic!("an entry {other:?} among ends that rise within the data"),
                }
                start = *end;
            }
        } else {
            assert_eq!(ends, [7], "a refusal leaves the ends as they were");
        }
    }
    parent::check_block::<TaskResult>(block);
    parent::check_block::<Vec<u8>>(block);
    parent::check_block::<(bool, Option<i16>, char)>(block);
    parent::check_block::<Shape>(block);
}

/// A slot's block, handed over as a `Partial` payload the way the worker
/// does it when the slot is full, reads back with the same entries, if
/// every entry of the slot is well formed.
fn check_slot_as_payload(block: &Block<'_>) {
    let mut payload = Vec::new();
    block.write_payload(&mut payload);
    let again = match Block::from_payload(&payload, block.len()) {
        Ok(again) => again,
        Err(e) => panic!("a slot's block written as a payload does not read back: {e}"),
    };
    let entries: Vec<_> = (0..block.len()).map(|i| block.entry(i)).collect();
    if entries.iter().all(Result::is_ok) {
        for (index, entry) in entries.iter().enumerate() {
            assert_eq!(
                again.entry(index).ok(),
                entry.as_ref().ok().copied(),
                "entry {index} changed on its way to a payload"
            );
        }
    }
}

/// A value type with an enum, a map-free struct and a nested sequence, for
/// the decoders' other paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Shape {
    Point,
    Circle { radius: u32 },
    Path(Vec<(i8, i8)>),
}

/// Decodes `payload` as a task's `count` arguments the way the worker does
/// (one decoder, item after item, stopping at the first that does not
/// decode), as several argument types; the arguments that decoded encode
/// again (`push_value`) into a payload that decodes to the same values and
/// ends exactly at its end.
///
/// # Panics
///
/// If one does not.
pub(super) fn check_arguments(payload: &[u8], count: u32) {
    plain::<u64>(payload, count);
    plain::<bool>(payload, count);
    plain::<i16>(payload, count);
    plain::<f32>(payload, count);
    arguments::<TaskArgument>(payload, count);
    arguments::<Vec<u8>>(payload, count);
    arguments::<(bool, Option<i16>, char)>(payload, count);
    arguments::<Shape>(payload, count);
}

/// [`check_arguments`] for one type; each of its values takes at least one
/// byte, so the walk ends within the payload whatever `count` says.
fn arguments<A>(payload: &[u8], count: u32)
where
    A: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut de = wire::Deserializer::new(payload);
    let mut decoded = Vec::new();
    for _ in 0..count {
        match A::deserialize(&mut de) {
            Ok(argument) => decoded.push(argument),
            Err(_) => break,
        }
    }
    let mut again = Vec::new();
    for argument in &decoded {
        if let Err(reason) = wire::push_value(&mut again, argument) {
            panic!("a decoded argument {argument:?} does not encode again: {reason}");
        }
    }
    assert!(
        again.len() <= payload.len(),
        "arguments took more bytes encoded again"
    );
    let mut de = wire::Deserializer::new(&again);
    for argument in &decoded {
        assert_eq!(
            A::deserialize(&mut de).ok().as_ref(),
            Some(argument),
            "an argument changed on its way"
        );
    }
    assert!(
        de.rest().is_empty(),
        "arguments encoded again do not end where they should"
    );
}

/// The worker's plain-number loop reads a payload only if the per-item
/// decoder reads exactly `count` of those numbers from all of it, and then
/// reads the same numbers.
fn plain<T>(payload: &[u8], count: u32)
where
    T: DeserializeOwned + PartialEq + Debug + Copy + 'static,
{
    let count = count as usize;
    let mut de = wire::Deserializer::new(payload);
    let mut decoded = Vec::new();
    while decoded.len() < count {
        match T::deserialize(&mut de) {
            Ok(value) => decoded.push(value),
            Err(_) => break,
        }
    }
    let whole = decoded.len() == count && de.rest().is_empty();
    let accepted = wire::bulk::plain_payload::<T>(payload, count);
    assert_eq!(
        accepted.is_some(),
        whole,
        "{count} plain values of {} bytes",
        payload.len()
    );
    if accepted.is_some() {
        for (index, value) in decoded.iter().enumerate() {
            // SAFETY: `plain_payload` accepted `payload` for `count`
            // values, and `index` is one of them.
            let read: T = unsafe { wire::bulk::read_plain(payload, index) };
            // Compared bit for bit: a NaN is not equal to itself.
            assert!(
                read == *value || format!("{read:?}") == format!("{value:?}"),
                "value {index}"
            );
        }
    }
}
