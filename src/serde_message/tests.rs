//! The recovery of serde messages, through nested values of every shape.

use super::{decode_failure_message, encode_failure_message};

/// The message of a failure to decode `bytes` as a `T`, through postcard's
/// deserializer (the wrapper takes any).
fn decoded_message<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<String> {
    decode_failure_message::<T, _>(&mut postcard::Deserializer::from_bytes(bytes))
}
use serde::{de, ser};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Refuses to serialize, and to deserialize from anything but 7.
#[derive(Debug, PartialEq)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 7 {
            serializer.serialize_u32(7)
        } else {
            Err(ser::Error::custom(format!("{} is not seven", self.0)))
        }
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u32::deserialize(deserializer)? {
            7 => Ok(Picky(7)),
            n => Err(de::Error::custom(format!("{n} is not seven"))),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Shape {
    Unit,
    Newtype(Picky),
    Tuple(u8, Picky),
    Struct { name: String, inner: Option<Picky> },
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Deep {
    list: Vec<Picky>,
    map: BTreeMap<String, Picky>,
    shape: Shape,
}

#[test]
fn encoding_failures_keep_their_message_however_deep() {
    let values = [
        Deep {
            list: vec![Picky(7), Picky(3)],
            map: BTreeMap::new(),
            shape: Shape::Unit,
        },
        Deep {
            list: vec![],
            map: BTreeMap::from([(String::from("k"), Picky(3))]),
            shape: Shape::Unit,
        },
        Deep {
            list: vec![],
            map: BTreeMap::new(),
            shape: Shape::Struct {
                name: String::from("n"),
                inner: Some(Picky(3)),
            },
        },
    ];
    for value in &values {
        let error = postcard::to_allocvec(value).unwrap_err();
        assert_eq!(error, postcard::Error::SerdeSerCustom);
        assert_eq!(
            encode_failure_message(value).as_deref(),
            Some("3 is not seven")
        );
    }
    let fine = Deep {
        list: vec![Picky(7)],
        map: BTreeMap::new(),
        shape: Shape::Tuple(1, Picky(7)),
    };
    assert_eq!(encode_failure_message(&fine), None);
}

#[test]
fn decoding_failures_keep_their_message_however_deep() {
    // Written as u32s in place of `Picky`s, which cannot hold a 3.
    let as_u32 = [
        postcard::to_allocvec(&(vec![7u32, 3], BTreeMap::<String, u32>::new(), 0u32)),
        postcard::to_allocvec(&(
            Vec::<u32>::new(),
            BTreeMap::from([(String::from("k"), 3u32)]),
            0u32,
        )),
        postcard::to_allocvec(&(
            Vec::<u32>::new(),
            BTreeMap::<String, u32>::new(),
            1u32,
            3u32,
        )),
        postcard::to_allocvec(&(
            Vec::<u32>::new(),
            BTreeMap::<String, u32>::new(),
            3u32,
            String::from("n"),
            Some(3u32),
        )),
    ];
    for bytes in as_u32 {
        let bytes = bytes.unwrap();
        let error = postcard::from_bytes::<Deep>(&bytes).unwrap_err();
        assert_eq!(error, postcard::Error::SerdeDeCustom);
        assert_eq!(
            decoded_message::<Deep>(&bytes).as_deref(),
            Some("3 is not seven")
        );
    }
}

#[test]
fn serde_s_own_custom_errors_are_recovered_with_serde_s_words() {
    // Variant 9 of an enum of four.
    let bytes = postcard::to_allocvec(&9u32).unwrap();
    assert_eq!(
        postcard::from_bytes::<Shape>(&bytes).unwrap_err(),
        postcard::Error::SerdeDeCustom
    );
    let message = decoded_message::<Shape>(&bytes).unwrap();
    assert!(message.contains("variant index"), "{message}");
}

#[test]
fn postcard_s_own_failures_give_no_message() {
    // Truncated: postcard's own error, nothing of the user's.
    assert_eq!(decoded_message::<(u64, String)>(&[1, 5, b'a']), None);
    // Decodes fine.
    let bytes = postcard::to_allocvec(&Picky(7)).unwrap();
    assert_eq!(decoded_message::<Picky>(&bytes), None);
    // Unknown length: refused as postcard refuses it.
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq((0..3).filter(|_| true))
        }
    }
    assert_eq!(encode_failure_message(&Unsized), None);
}
