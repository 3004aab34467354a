//! Property test of the process pool's encodings, end to end through
//! `ProcessPoolExecutor::map`: random chunks (`Chunksize::Fixed`) of random
//! values, with failures anywhere, decode to exactly the per-item outcomes
//! the rules give, in order.
//!
//! Each item fails, or not, in one of the ways a value can fail on its way
//! (its fate): the function panics; the result's `Serialize` fails in the
//! worker; the result's `Deserialize` fails in the parent; the argument's
//! `Deserialize` fails in the worker (after consuming its bytes: the worker
//! stops the task there, and the parent sends the rest again); or the
//! argument's `Serialize` fails in the parent (the item is never sent).

use std::fmt;
use std::num::NonZeroUsize;

use concurrent_futures::{Chunksize, Error, ProcessPoolExecutor};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// What happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Panics,
    ResultDoesNotEncode,
    ResultDoesNotDecode,
    ArgumentDoesNotDecode,
    ArgumentDoesNotEncode,
}

impl Fate {
    const ALL: [Fate; 6] = [
        Fate::Ok,
        Fate::Panics,
        Fate::ResultDoesNotEncode,
        Fate::ResultDoesNotDecode,
        Fate::ArgumentDoesNotDecode,
        Fate::ArgumentDoesNotEncode,
    ];

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Fate> {
        Fate::ALL.get(usize::from(code)).copied()
    }
}

/// An argument: a value, some text, and its fate, which its own serde
/// impls act on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arg {
    value: u32,
    text: String,
    fate: Fate,
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.fate == Fate::ArgumentDoesNotEncode {
            return Err(ser::Error::custom("this argument refuses to encode"));
        }
        (self.value, &self.text, self.fate.code()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // All of its bytes are read before it refuses.
        let (value, text, code) = <(u32, String, u8)>::deserialize(deserializer)?;
        let fate = Fate::from_code(code).ok_or_else(|| de::Error::custom("no such fate"))?;
        if fate == Fate::ArgumentDoesNotDecode {
            return Err(de::Error::custom("this argument refuses to decode"));
        }
        Ok(Arg { value, text, fate })
    }
}

/// A result, which carries its argument's fate on to its own serde impls.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    value: u64,
    text: String,
    fate: Fate,
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.fate == Fate::ResultDoesNotEncode {
            return Err(ser::Error::custom("this result refuses to encode"));
        }
        (self.value, &self.text, self.fate.code()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Out {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (value, text, code) = <(u64, String, u8)>::deserialize(deserializer)?;
        let fate = Fate::from_code(code).ok_or_else(|| de::Error::custom("no such fate"))?;
        if fate == Fate::ResultDoesNotDecode {
            return Err(de::Error::custom("this result refuses to decode"));
        }
        Ok(Out { value, text, fate })
    }
}

fn compute(arg: Arg) -> Out {
    if arg.fate == Fate::Panics {
        panic!("item {} panics", arg.value);
    }
    Out {
        value: u64::from(arg.value) * 3 + 1,
        text: arg.text.chars().rev().collect(),
        fate: arg.fate,
    }
}

/// What the rules say an item's outcome is.
#[derive(Debug)]
enum Expected {
    Value(Out),
    Panicked(String),
    Encode(&'static str),
    Decode(&'static str),
}

impl Expected {
    fn of(arg: &Arg) -> Expected {
        match arg.fate {
            Fate::Ok => Expected::Value(compute(arg.clone())),
            Fate::Panics => Expected::Panicked(format!("item {} panics", arg.value)),
            Fate::ResultDoesNotEncode => Expected::Encode("result"),
            Fate::ResultDoesNotDecode => Expected::Decode("result"),
            Fate::ArgumentDoesNotDecode => Expected::Decode("argument"),
            Fate::ArgumentDoesNotEncode => Expected::Encode("argument"),
        }
    }

    fn fits(&self, got: &Result<Out, Error>) -> bool {
        match (self, got) {
            (Expected::Value(want), Ok(got)) => want == got,
            (Expected::Panicked(want), Err(Error::Panicked { message, .. })) => message == want,
            (Expected::Encode(want), Err(Error::Encode { what, .. })) => want == what,
            (Expected::Decode(want), Err(Error::Decode { what, .. })) => want == what,
            _ => false,
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

fn arg() -> impl Strategy<Value = Arg> {
    let fate = prop_oneof![
        12 => Just(Fate::Ok),
        1 => Just(Fate::Panics),
        1 => Just(Fate::ResultDoesNotEncode),
        1 => Just(Fate::ResultDoesNotDecode),
        1 => Just(Fate::ArgumentDoesNotDecode),
        1 => Just(Fate::ArgumentDoesNotEncode),
    ];
    (any::<u32>(), "[a-zé]{0,12}", fate).prop_map(|(value, text, fate)| Arg { value, text, fate })
}

#[test]
fn random_chunks_with_failures_anywhere_decode_to_exactly_the_per_item_outcomes() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let case = (proptest::collection::vec(arg(), 0..160), 1usize..=48);
    let outcome = runner.run(&case, |(args, chunk)| {
        let chunk = NonZeroUsize::new(chunk).unwrap();
        let got: Vec<Result<Out, Error>> = pool
            .map(compute, args.clone())
            .chunksize(Chunksize::Fixed(chunk))
            .collect();
        prop_assert_eq!(got.len(), args.len(), "one outcome per item");
        for (index, (arg, got)) in args.iter().zip(&got).enumerate() {
            let want = Expected::of(arg);
            prop_assert!(
                want.fits(got),
                "item {} of {} (chunks of {}): {:?} gave {:?}, not {}",
                index,
                args.len(),
                chunk,
                arg,
                got,
                want
            );
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    pool.shutdown();
}

fn large_result(n: u32) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![n as u8; 900 * 1024])
}

fn same(x: u8) -> u8 {
    x
}

/// Found writing the `handshake` fuzz target: a slot whose outcomes fill
/// its 8 MiB of data was handed over as one `Partial` frame, over a
/// `max_message_size` under 8 MiB, so the worker exited (status 87) and the
/// item it was on (here 9 and 19) failed with `WorkerDied`. A full slot now
/// goes out in as many frames as the limit asks for.
#[test]
fn results_that_fill_a_slot_under_a_small_frame_limit() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_message_size(1 << 20)
        .build()
        .unwrap();
    let got: Vec<_> = pool
        .map(large_result, 0..20u32)
        .chunksize(Chunksize::Fixed(NonZeroUsize::new(20).unwrap()))
        .collect();
    for (index, result) in got.iter().enumerate() {
        assert!(result.is_ok(), "item {index}: {result:?}");
    }
}

/// The same with the ends: 65 536 outcomes fill a slot's ends, and their
/// `Partial` (327 685 bytes) was over a limit of 100 000 bytes, under which
/// the task's 70 000 one-byte arguments fit; item 65 536 failed with
/// `WorkerDied`.
#[test]
fn items_that_fill_a_slot_under_a_small_frame_limit() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_message_size(100_000)
        .build()
        .unwrap();
    let items: Vec<u8> = (0..70_000u32).map(|i| (i % 100) as u8).collect();
    let got: Vec<_> = pool
        .map(same, items)
        .chunksize(Chunksize::Fixed(NonZeroUsize::new(70_000).unwrap()))
        .collect();
    for (index, result) in got.iter().enumerate() {
        assert!(result.is_ok(), "item {index}: {result:?}");
    }
}

fn large_or_abort(x: u32) -> serde_bytes::ByteBuf {
    if x == 17 {
        std::process::abort();
    }
    large_result(x)
}

/// A worker that dies after it handed part of a full slot over in
/// `Partial` frames: the items before the one that aborts are all
/// delivered (some from the frames, some from the slot), the one that
/// aborts fails alone, the ones after it run on the replacement.
#[test]
fn a_death_after_partial_frames_costs_one_item() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_message_size(1 << 20)
        .build()
        .unwrap();
    let got: Vec<_> = pool
        .map(large_or_abort, 0..20u32)
        .chunksize(Chunksize::Fixed(NonZeroUsize::new(20).unwrap()))
        .collect();
    for (index, result) in got.iter().enumerate() {
        if index == 17 {
            assert!(
                matches!(
                    result,
                    Err(concurrent_futures::Error::WorkerDied {
                        signal: Some(6),
                        ..
                    })
                ),
                "item 17: {result:?}"
            );
        } else {
            assert_eq!(
                result.as_ref().ok(),
                Some(&large_result(index as u32)),
                "item {index}"
            );
        }
    }
}
