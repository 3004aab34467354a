//! The values' format (`encode` and `decode`): every value serde can
//! describe comes back as it was; the layout is the one `encode`'s docs
//! give; bad or short bytes are errors, never panics.

use std::collections::BTreeMap;

use postcard::Error;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{encode, from_bytes, to_vec, Append, Bounded, Deserializer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Newtype(i32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Unit,
    Newtype(u16),
    Tuple(i8, String),
    Struct { a: Option<u64>, b: char },
}

/// A value with every kind serde has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Every {
    flags: (bool, u8, i8),
    small: (u16, i16, u32, i32),
    wide: (u64, i64, u128, i128),
    floats: (f32, f64),
    text: (char, String),
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    maybe: Option<Option<i64>>,
    units: ((), Unit, Newtype),
    kinds: Vec<Kind>,
    map: BTreeMap<String, Vec<u32>>,
    empties: Vec<()>,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unit),
        any::<u16>().prop_map(Kind::Newtype),
        (any::<i8>(), ".{0,12}").prop_map(|(a, b)| Kind::Tuple(a, b)),
        (any::<Option<u64>>(), any::<char>()).prop_map(|(a, b)| Kind::Struct { a, b }),
    ]
}

fn every() -> impl Strategy<Value = Every> {
    (
        (
            any::<(bool, u8, i8)>(),
            any::<(u16, i16, u32, i32)>(),
            any::<(u64, i64, u128, i128)>(),
            any::<(f32, f64)>(),
            (any::<char>(), ".{0,40}"),
        ),
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<Option<Option<i64>>>(),
            any::<i32>(),
            proptest::collection::vec(kind(), 0..6),
            proptest::collection::btree_map(
                ".{0,6}",
                proptest::collection::vec(any::<u32>(), 0..5),
                0..4,
            ),
            // Lengths of every varint width (units take no bytes).
            (0u32..64).prop_map(|shift| (1usize << (shift / 4)) - 1),
        ),
    )
        .prop_map(
            |((flags, small, wide, floats, text), (bytes, maybe, n, kinds, map, empties))| Every {
                flags,
                small,
                wide,
                floats,
                text,
                bytes,
                maybe,
                units: ((), Unit, Newtype(n)),
                kinds,
                map,
                empties: vec![(); empties],
            },
        )
}

/// `value`, encoded then decoded, encoded again: the same bytes (which
/// also holds for NaN, unlike `==`).
fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> Result<(), TestCaseError> {
    let bytes = to_vec(value).unwrap();
    let mut de = Deserializer::new(&bytes);
    let back = T::deserialize(&mut de).unwrap();
    prop_assert!(de.rest().is_empty(), "the value ends where its bytes end");
    prop_assert_eq!(to_vec(&back).unwrap(), bytes);
    Ok(())
}

proptest! {
    #[test]
    fn every_value_comes_back(value in every()) {
        round_trip(&value)?;
        let bytes = to_vec(&value).unwrap();
        let back: Every = from_bytes(&bytes).unwrap();
        if !value.floats.0.is_nan() && !value.floats.1.is_nan() {
            prop_assert_eq!(back, value);
        }
    }

    #[test]
    fn values_one_after_another_come_back(values in proptest::collection::vec(every(), 0..6)) {
        let mut bytes = Vec::new();
        for value in &values {
            encode(value, Append::new(&mut bytes)).unwrap();
        }
        let mut de = Deserializer::new(&bytes);
        for value in &values {
            let back = Every::deserialize(&mut de).unwrap();
            prop_assert_eq!(to_vec(&back).unwrap(), to_vec(value).unwrap());
        }
        prop_assert!(de.rest().is_empty());
    }

    #[test]
    fn lengths_are_postcard_s_varints(len in 0usize..5000, shift in 0u32..50) {
        // A sequence that says its length and has no elements: its bytes
        // are the length alone.
        struct Length(usize);
        impl Serialize for Length {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::ser::SerializeSeq::end(s.serialize_seq(Some(self.0))?)
            }
        }
        let len = len << shift;
        prop_assert_eq!(to_vec(&Length(len)).unwrap(), postcard::to_stdvec(&Length(len)).unwrap());
        let units = vec![(); len.min(5000)];
        round_trip(&units)?;
    }

    #[test]
    fn a_bounded_area_holds_what_fits_or_says_full(value in every(), room in 0usize..600, at in 0usize..20) {
        let expected = to_vec(&value).unwrap();
        let mut area = vec![0xAAu8; at + room];
        match encode(&value, Bounded { area: &mut area, pos: at }) {
            Ok(written) => {
                prop_assert_eq!(written.pos, at + expected.len());
                prop_assert_eq!(&area[at..at + expected.len()], &expected[..]);
            }
            Err(e) => {
                prop_assert_eq!(e, Error::SerializeBufferFull);
                prop_assert!(expected.len() > room);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error(value in every(), cut in 1usize..64) {
        let bytes = to_vec(&value).unwrap();
        let short = &bytes[..bytes.len().saturating_sub(cut)];
        prop_assert!(from_bytes::<Every>(short).is_err());
    }

    #[test]
    fn random_bytes_give_errors_or_values_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = from_bytes::<Every>(&bytes);
        let _ = from_bytes::<Vec<String>>(&bytes);
        let _ = from_bytes::<BTreeMap<u32, Kind>>(&bytes);
    }
}

#[test]
fn numbers_are_fixed_width_little_endian() {
    assert_eq!(to_vec(&3u64).unwrap(), [3, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(to_vec(&-2i32).unwrap(), [0xfe, 0xff, 0xff, 0xff]);
    assert_eq!(to_vec(&0x0102u16).unwrap(), [2, 1]);
    assert_eq!(to_vec(&1.0f32).unwrap(), 1.0f32.to_le_bytes());
    assert_eq!(to_vec(&u128::MAX).unwrap(), [0xff; 16]);
    assert_eq!(to_vec(&'é').unwrap(), [0xe9, 0, 0, 0]);
    assert_eq!(to_vec(&(true, 7u8, -1i8)).unwrap(), [1, 7, 0xff]);
}

#[test]
fn strings_options_and_variants_are_laid_out_as_documented() {
    assert_eq!(to_vec("ab").unwrap(), [2, b'a', b'b']);
    assert_eq!(to_vec(&Some(1u8)).unwrap(), [1, 1]);
    assert_eq!(to_vec(&None::<u8>).unwrap(), [0]);
    assert_eq!(to_vec(&Kind::Newtype(5)).unwrap(), [1, 5, 0]);
    assert_eq!(
        to_vec(&Kind::Struct { a: None, b: 'a' }).unwrap(),
        [3, 0, 97, 0, 0, 0]
    );
    assert_eq!(to_vec(&vec![(); 300]).unwrap(), [0xac, 0x02]);
    assert_eq!(to_vec(&(Unit, (), Newtype(1))).unwrap(), [1, 0, 0, 0]);
}

#[test]
fn bad_bytes_get_postcard_s_errors() {
    assert_eq!(from_bytes::<bool>(&[2]), Err(Error::DeserializeBadBool));
    assert_eq!(
        from_bytes::<Option<u8>>(&[2, 0]),
        Err(Error::DeserializeBadOption)
    );
    assert_eq!(
        from_bytes::<char>(&[0, 0xd8, 0, 0]),
        Err(Error::DeserializeBadChar)
    );
    assert_eq!(
        from_bytes::<String>(&[1, 0xff]),
        Err(Error::DeserializeBadUtf8)
    );
    assert_eq!(from_bytes::<Kind>(&[9]), Err(Error::DeserializeBadEnum));
    assert_eq!(
        from_bytes::<u64>(&[1, 2, 3]),
        Err(Error::DeserializeUnexpectedEnd)
    );
    assert_eq!(
        from_bytes::<Vec<u8>>(&[0xff; 11]),
        Err(Error::DeserializeBadVarint)
    );
    // A length that fits a u64 but lies: no allocation of it, an error.
    let lie = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(
        from_bytes::<Vec<u64>>(&lie),
        Err(Error::DeserializeUnexpectedEnd)
    );
    // Formats that need a self-describing input are refused as postcard
    // refuses them.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        A(u8),
    }
    assert_eq!(
        from_bytes::<Untagged>(&[1]).err(),
        Some(Error::WontImplement)
    );
}

#[test]
fn a_sequence_of_unknown_length_is_refused_as_postcard_refuses_it() {
    struct Unknown;
    impl Serialize for Unknown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            seq.serialize_element(&1u8)?;
            seq.end()
        }
    }
    assert_eq!(
        to_vec(&Unknown).err(),
        Some(Error::SerializeSeqLengthUnknown)
    );
    assert_eq!(
        postcard::to_stdvec(&Unknown).err(),
        Some(Error::SerializeSeqLengthUnknown)
    );
}

#[test]
fn a_value_through_collect_str_is_a_string() {
    struct Shown;
    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{}-{}", 12, "ab"))
        }
    }
    assert_eq!(
        from_bytes::<String>(&to_vec(&Shown).unwrap()).unwrap(),
        "12-ab"
    );
}

proptest! {
    #[test]
    fn varints_of_every_width_are_postcard_s(value in any::<u64>(), shift in 0u32..64) {
        let value = value >> shift;
        let mut bytes = Vec::new();
        super::encode::Serializer { out: Append::new(&mut bytes) }.varint(value).unwrap();
        prop_assert_eq!(&bytes, &postcard::to_stdvec(&value).unwrap());
        prop_assert_eq!(Deserializer::new(&bytes).varint(), Ok(value));
    }
}

#[test]
fn decode_all_takes_a_clean_run_and_refuses_a_bad_one() {
    let mut bytes = Vec::new();
    for x in [1u64, 2, 3] {
        encode(&x, Append::new(&mut bytes)).unwrap();
    }
    let mut values = vec![0u64];
    assert!(super::decode_all(&bytes, 3, &mut values));
    assert_eq!(values, [0, 1, 2, 3]);
    // Too few bytes for the count, or bytes left over: refused.
    let mut values = Vec::new();
    assert!(!super::decode_all::<u64>(&bytes[..20], 3, &mut values));
    assert!(!super::decode_all::<u64>(&bytes, 2, &mut values));
    // A value that does not decode stops the pass quietly.
    let mut flags = Vec::new();
    assert!(!super::decode::decode_each::<bool>(
        &[1, 0, 7, 1],
        4,
        &mut flags
    ));
    assert_eq!(flags, [true, false]);
    // The bulk path for plain numbers refuses it too, taking nothing.
    let mut flags = Vec::new();
    assert!(!super::decode_all::<bool>(&[1, 0, 7, 1], 4, &mut flags));
    assert!(flags.is_empty());
    // A Deserialize that panics: the panic goes on to the caller.
    struct Bomb;
    impl<'de> Deserialize<'de> for Bomb {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("bomb");
        }
    }
    let caught = std::panic::catch_unwind(|| super::decode_all::<Bomb>(&[0], 1, &mut Vec::new()));
    assert!(caught.is_err());
}
