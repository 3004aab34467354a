//! The parent's side of a task's outcomes, as the fuzz targets drive it:
//! blocks decoded through a real job (`process_pool::job`, the code the
//! drivers run), beside a reading of each entry on its own that says what
//! the job must have made of it.

use std::fmt::Debug;

use serde::de::DeserializeOwned;

use crate::future::Promise;
use crate::map::ChunkOutput;
use crate::process_pool::job::{Completion, Job, ProcessJob};
use crate::process_pool::wire::{self, outcome, Block, Bounds, Entry, PanicInfo, WireError};
use crate::Error;

/// The pid the targets' blocks are taken to come from.
pub(super) const PID: u32 = 1;

/// Decodes `blocks`, each with the `clean` flag its message gave (a
/// `Partial` is never clean; a `Done` is when it counts no failure), as the
/// parent decodes the outcomes of one task of `sent` items. One outcome
/// per item, in order: the items the blocks do not reach fail as the job
/// fails them (a protocol error).
///
/// # Panics
///
/// If the job's outcomes are not one per item.
pub(super) fn decode<R>(blocks: &[(Block<'_>, bool)], sent: usize) -> Vec<Result<R, Error>>
where
    R: DeserializeOwned + Send + 'static,
{
    let (promise, future) = Promise::<ChunkOutput<R>>::new();
    let mut job = Box::new(Job::new(
        0,
        0,
        Vec::new().into(),
        Bounds::zero_sized(sent),
        Completion::Chunk(promise),
    ));
    for (block, clean) in blocks {
        job.accept(block, PID, *clean);
    }
    job.finish();
    let output = match future.result() {
        Ok(output) => output,
        Err(e) => panic!("a finished job's future failed: {e}"),
    };
    let mut values = output.values.into_iter();
    let mut failures = output.failures.into_iter().peekable();
    let outcomes: Vec<Result<R, Error>> = (0..sent)
        .map(|index| match failures.next_if(|(at, _)| *at == index) {
            Some((_, error)) => Err(error),
            None => match values.next() {
                Some(value) => Ok(value),
                None => panic!("the job has no outcome for item {index} of {sent}"),
            },
        })
        .collect();
    assert!(values.next().is_none(), "the job has values for no item");
    assert!(
        failures.next().is_none(),
        "the job has failures for no item"
    );
    outcomes
}

/// Checks that `result` is what the parent must make of `entry`, judged
/// from the entry alone: a value decoded from its bytes (or a decode error
/// if they do not decode), or the error its failure's tag says.
///
/// # Panics
///
/// If it is not.
pub(super) fn check_entry<R>(entry: Result<Entry<'_>, WireError>, result: &Result<R, Error>)
where
    R: DeserializeOwned + PartialEq + Debug,
{
    let fits = match entry {
        Ok(Entry::Value(bytes)) => match wire::from_bytes::<R>(bytes) {
            Ok(value) => result.as_ref() == Ok(&value),
            Err(_) => matches!(result, Err(Error::Decode { what: "result", .. })),
        },
        Ok(Entry::Failed(outcome::PANICKED, detail)) => {
            match postcard::from_bytes::<PanicInfo>(detail) {
                Ok(info) => {
                    result.as_ref().err()
                        == Some(&Error::Panicked {
                            message: info.message,
                            location: info.location,
                            pid: Some(PID),
                        })
                }
                Err(_) => matches!(result, Err(Error::Protocol { pid: PID, .. })),
            }
        }
        Ok(Entry::Failed(outcome::BAD_ARGUMENT, detail)) => {
            result.as_ref().err()
                == Some(&Error::Decode {
                    what: "argument",
                    reason: String::from_utf8_lossy(detail).into_owned(),
                })
        }
        Ok(Entry::Failed(outcome::BAD_RESULT, detail)) => {
            result.as_ref().err()
                == Some(&Error::Encode {
                    what: "result",
                    reason: String::from_utf8_lossy(detail).into_owned(),
                })
        }
        // An error an MPI rank reports as it was (`wire::remote`).
        Ok(Entry::Failed(outcome::ERROR, detail)) => match wire::remote::decode(detail) {
            Some(error) => result.as_ref().err() == Some(&error),
            None => matches!(result, Err(Error::Protocol { pid: PID, .. })),
        },
        Ok(Entry::Failed(..)) | Err(_) => {
            matches!(result, Err(Error::Protocol { pid: PID, .. }))
        }
    };
    assert!(fits, "the entry {entry:?} was decoded as {result:?}");
}

/// Checks the parent's decoding of one block into `R`: with the block
/// taken as dirty, every item's outcome is what [`check_entry`] says;
/// taken as clean (what a `Done` that counts no failure makes of it), the
/// same, except that a block whose values decode one after another to
/// exactly their bytes may be read that way at once (the fast path, which
/// trusts the worker's count of failures and the ends it wrote).
///
/// # Panics
///
/// If either does not hold.
pub(super) fn check_block<R>(block: &Block<'_>)
where
    R: DeserializeOwned + PartialEq + Debug + Send + 'static,
{
    let len = block.len();
    let dirty = decode::<R>(&[(*block, false)], len);
    for (index, result) in dirty.iter().enumerate() {
        check_entry(block.entry(index), result);
    }
    let clean = decode::<R>(&[(*block, true)], len);
    if clean == dirty {
        return;
    }
    let bulk = block.values(len).and_then(|bytes| in_bulk::<R>(bytes, len));
    match bulk {
        Some(values) => {
            let exact = (0..len).all(|index| match block.entry(index) {
                Ok(Entry::Value(bytes)) => {
                    let mut de = wire::Deserializer::new(bytes);
                    R::deserialize(&mut de).is_ok() && de.rest().is_empty()
                }
                _ => false,
            });
            assert!(
                !exact,
                "values that each decode exactly were read differently at once: \
                 {clean:?}, one by one {dirty:?}"
            );
            let values: Vec<Result<R, Error>> = values.into_iter().map(Ok).collect();
            assert_eq!(clean, values, "the fast path is not a bulk decode");
        }
        None => panic!("a clean block that does not decode in bulk gave {clean:?}, not {dirty:?}"),
    }
}

/// `count` values decoded one after another from `bytes`, if they all
/// decode and end exactly at its end.
fn in_bulk<R: DeserializeOwned>(bytes: &[u8], count: usize) -> Option<Vec<R>> {
    let mut de = wire::Deserializer::new(bytes);
    let values = (0..count)
        .map(|_| R::deserialize(&mut de).ok())
        .collect::<Option<Vec<R>>>()?;
    de.rest().is_empty().then_some(values)
}
