//! A value's own serde error reaches the user with its message: postcard,
//! the wire format, keeps only a code, and the process pool recovers the
//! words on the failure path (`src/serde_message.rs`). Each direction is
//! tested: an argument that fails to encode (in the parent) or to decode
//! (in the worker), a result that fails to encode (in the worker) or to
//! decode (in the parent), through `submit` and through `map`'s chunks;
//! and the values that do travel still arrive.
//!
//! The workers are this very test binary, re-executed.

#![cfg(target_os = "linux")]

use concurrent_futures::{Error, ProcessPoolExecutor};
use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};

/// A port number that refuses 0 both ways, saying why.
#[derive(Debug, PartialEq)]
struct Port(u16);

const ENCODE_WORDS: &str = "port 0 is reserved and cannot be sent";
const DECODE_WORDS: &str = "port 0 is reserved and cannot be received";

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return Err(ser::Error::custom(ENCODE_WORDS));
        }
        serializer.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u16::deserialize(deserializer)? {
            0 => Err(de::Error::custom(DECODE_WORDS)),
            port => Ok(Port(port)),
        }
    }
}

/// Serializes like a `u16`, 0 included, and deserializes like a
/// [`Port`]: a 0 sent this way is refused on the far side, with
/// `DECODE_WORDS`.
#[derive(Debug, PartialEq)]
struct SneakyPort(u16);

impl Serialize for SneakyPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for SneakyPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Port::deserialize(deserializer).map(|port| SneakyPort(port.0))
    }
}

/// A nested home for a `Port`, so the message has to climb out of a
/// struct, a vector and an option.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Service {
    name: String,
    ports: Vec<Option<Port>>,
}

fn port_number(port: Port) -> u16 {
    port.0
}

fn make_port(n: u16) -> Port {
    Port(n)
}

fn service_with(n: u16) -> Service {
    Service {
        name: String::from("web"),
        ports: vec![Some(Port(80)), None, Some(Port(n))],
    }
}

/// The outcome's error, which must be `Encode` or `Decode` of `what` and
/// say `words` in its Display.
fn assert_says<T: std::fmt::Debug>(outcome: Result<T, Error>, kind: &str, what: &str, words: &str) {
    let error = outcome.expect_err("the value should not have travelled");
    let (found_kind, found_what) = match &error {
        Error::Encode { what, .. } => ("encode", *what),
        Error::Decode { what, .. } => ("decode", *what),
        other => panic!("expected a {kind} error, got {other:?}"),
    };
    assert_eq!((found_kind, found_what), (kind, what), "{error}");
    let text = error.to_string();
    assert!(text.contains(words), "the message is lost: {text}");
}

#[test]
fn an_argument_that_fails_to_encode_says_why() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_says(
        pool.submit(port_number, Port(0)).result(),
        "encode",
        "argument",
        ENCODE_WORDS,
    );
    // Inside a map's chunk: that item alone, with the words.
    let mut outcomes: Vec<_> = pool.map(port_number, [Port(1), Port(0), Port(3)]).collect();
    assert_says(outcomes.remove(1), "encode", "argument", ENCODE_WORDS);
    assert_eq!(outcomes, [Ok(1), Ok(3)]);
}

fn sneaky_port_number(port: SneakyPort) -> u16 {
    port.0
}

fn make_sneaky_port(n: u16) -> SneakyPort {
    SneakyPort(n)
}

#[test]
fn an_argument_that_fails_to_decode_in_the_worker_says_why() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_says(
        pool.submit(sneaky_port_number, SneakyPort(0)).result(),
        "decode",
        "argument",
        DECODE_WORDS,
    );
    let mut outcomes: Vec<_> = pool
        .map(sneaky_port_number, [SneakyPort(8), SneakyPort(0)])
        .collect();
    assert_says(outcomes.remove(1), "decode", "argument", DECODE_WORDS);
    assert_eq!(outcomes, [Ok(8)]);
}

#[test]
fn a_result_that_fails_to_encode_in_the_worker_says_why() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_says(
        pool.submit(make_port, 0).result(),
        "encode",
        "result",
        ENCODE_WORDS,
    );
    assert_says(
        pool.submit(service_with, 0).result(),
        "encode",
        "result",
        ENCODE_WORDS,
    );
    let mut outcomes: Vec<_> = pool.map(make_port, [5, 0]).collect();
    assert_says(outcomes.remove(1), "encode", "result", ENCODE_WORDS);
    assert_eq!(outcomes, [Ok(Port(5))]);
}

#[test]
fn a_result_that_fails_to_decode_in_the_parent_says_why() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_says(
        pool.submit(make_sneaky_port, 0).result(),
        "decode",
        "result",
        DECODE_WORDS,
    );
    let mut outcomes: Vec<_> = pool.map(make_sneaky_port, [4, 0, 6]).collect();
    assert_says(outcomes.remove(1), "decode", "result", DECODE_WORDS);
    assert_eq!(outcomes, [Ok(SneakyPort(4)), Ok(SneakyPort(6))]);
}

#[test]
fn values_that_travel_are_untouched() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(
        pool.submit(service_with, 443).result(),
        Ok(service_with(443))
    );
    assert_eq!(pool.submit(port_number, Port(22)).result(), Ok(22));
    assert_eq!(pool.submit(make_sneaky_port, 0).result().ok(), None);
}
