//! The message of a value's own serde error, which postcard drops.
//!
//! postcard (1.x, the wire format) turns `ser::Error::custom(msg)` and
//! `de::Error::custom(msg)` into the bare codes `SerdeSerCustom` and
//! `SerdeDeCustom`, and no feature of it keeps `msg`. So a `Deserialize`
//! impl that says *why* it refuses ("port 0 is reserved") would reach the
//! user as "its Deserialize impl returned an error", which helps nobody.
//!
//! The message is recovered on the failure path only, so that the hot path
//! (millions of items a second) pays nothing: when postcard reports one of
//! those two codes, the same work is done again here, through a serializer
//! or deserializer whose error keeps the message:
//!
//! * encoding: [`encode_failure_message`] serializes the value again into
//!   [`Walk`], a serializer that writes nothing and accepts everything
//!   postcard accepts, so the value's `Serialize` impl takes the same path
//!   and fails at the same point with the same words;
//! * decoding: [`decode_failure_message`] deserializes the same bytes again
//!   with postcard's own deserializer, wrapped (every `Deserializer`,
//!   `Visitor`, `SeqAccess`, `MapAccess`, `EnumAccess`, `VariantAccess` and
//!   `DeserializeSeed` it hands to the user's impl) so that the user's code
//!   sees an error type of ours, [`Failure`]. postcard's code in between
//!   still speaks `postcard::Error`: a failure crossing it is parked in a
//!   [`Stash`] and raised again on the other side.
//!
//! Both assume that the impl fails the same way twice, which any impl that
//! depends only on the value (or the bytes) does. One that does not (it
//! consults a clock, say) gets `None`, and the caller keeps its generic
//! reason. serde's own errors raised through `custom` (`invalid_value`,
//! `invalid_length`, `unknown_variant`, a derived enum's bad variant index)
//! are recovered the same way, with serde's words.

use std::cell::RefCell;
use std::fmt::{self, Display};

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

/// Why `value` fails to serialize, in its `Serialize` impl's own words:
/// the message it gave `ser::Error::custom`, or `None` if serializing it
/// again does not fail that way.
#[cold]
pub(crate) fn encode_failure_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match value.serialize(Walk) {
        Err(Failure::Custom(message)) => Some(message),
        _ => None,
    }
}

/// Why `bytes` fail to deserialize as a `T`, in its `Deserialize` impl's
/// own words (or serde's, for the errors serde raises through `custom`):
/// `None` if decoding them again does not fail that way.
#[cold]
pub(crate) fn decode_failure_message<T: DeserializeOwned>(bytes: &[u8]) -> Option<String> {
    let stash = Stash::default();
    let mut postcard = postcard::Deserializer::from_bytes(bytes);
    let wrapped = Wrap {
        inner: &mut postcard,
        stash: &stash,
    };
    match T::deserialize(wrapped) {
        Err(Failure::Custom(message)) => Some(message),
        _ => None,
    }
}

/// The reason for an [`Error::Encode`](crate::Error::Encode) when postcard
/// fails to encode `value`: the value's own message when its `Serialize`
/// impl gave one, else what `why` says about postcard's error.
#[cold]
pub(crate) fn encode_reason<T: Serialize + ?Sized>(
    error: &postcard::Error,
    value: &T,
    why: impl FnOnce(&postcard::Error) -> String,
) -> String {
    if let postcard::Error::SerdeSerCustom = error {
        if let Some(message) = encode_failure_message(value) {
            return format!("its Serialize impl returned an error: {message}");
        }
    }
    why(error)
}

/// The reason for an [`Error::Decode`](crate::Error::Decode) when postcard
/// fails to decode `bytes` as a `T`: the `Deserialize` impl's own message
/// when it gave one, else what `why` says about postcard's error.
#[cold]
pub(crate) fn decode_reason<T: DeserializeOwned>(
    error: &postcard::Error,
    bytes: &[u8],
    why: impl FnOnce(&postcard::Error) -> String,
) -> String {
    if let postcard::Error::SerdeDeCustom = error {
        if let Some(message) = decode_failure_message::<T>(bytes) {
            return format!("its Deserialize impl returned an error: {message}");
        }
    }
    why(error)
}

/// The error the user's serde impls see here.
#[derive(Debug)]
enum Failure {
    /// The message given to `custom`.
    Custom(String),
    /// Anything else: the serializer refused (as postcard would), or
    /// postcard's deserializer failed on its own account.
    Wire(String),
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Custom(message) | Failure::Wire(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

impl ser::Error for Failure {
    fn custom<T: Display>(message: T) -> Self {
        Failure::Custom(message.to_string())
    }
}

impl de::Error for Failure {
    fn custom<T: Display>(message: T) -> Self {
        Failure::Custom(message.to_string())
    }
}

// ---------------------------------------------------------------------------
// Encoding: a serializer that writes nothing.

/// A serializer that walks a value and writes nothing. It refuses what
/// postcard refuses (a sequence or map of unknown length), so that a value
/// takes the same path through its `Serialize` impl here as there.
#[derive(Debug, Clone, Copy)]
struct Walk;

fn unknown_length() -> Failure {
    Failure::Wire(String::from("a sequence or map of unknown length"))
}

/// The `serialize_*` methods of a scalar: accepted, nothing written.
macro_rules! walk_scalars {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Failure> { Ok(()) })*
    };
}

impl ser::Serializer for Walk {
    type Ok = ();
    type Error = Failure;
    type SerializeSeq = Walk;
    type SerializeTuple = Walk;
    type SerializeTupleStruct = Walk;
    type SerializeTupleVariant = Walk;
    type SerializeMap = Walk;
    type SerializeStruct = Walk;
    type SerializeStructVariant = Walk;

    walk_scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<(), Failure> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Failure> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Failure> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Failure> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Failure> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Failure> {
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Walk, Failure> {
        len.map(|_| Walk).ok_or_else(unknown_length)
    }

    fn serialize_tuple(self, _: usize) -> Result<Walk, Failure> {
        Ok(Walk)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Walk, Failure> {
        Ok(Walk)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, Failure> {
        Ok(Walk)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Walk, Failure> {
        len.map(|_| Walk).ok_or_else(unknown_length)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Walk, Failure> {
        Ok(Walk)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, Failure> {
        Ok(Walk)
    }

    fn collect_str<T: Display + ?Sized>(self, _: &T) -> Result<(), Failure> {
        Ok(())
    }

    /// As postcard's.
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The compound parts of [`Walk`]: each element is walked in turn.
macro_rules! walk_compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(
            impl ser::$trait for Walk {
                type Ok = ();
                type Error = Failure;

                fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failure> {
                    value.serialize(Walk)
                }

                fn end(self) -> Result<(), Failure> {
                    Ok(())
                }
            }
        )*
    };
}

walk_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = Failure;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Failure> {
        key.serialize(Walk)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failure> {
        value.serialize(Walk)
    }

    fn end(self) -> Result<(), Failure> {
        Ok(())
    }
}

impl ser::SerializeStruct for Walk {
    type Ok = ();
    type Error = Failure;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Failure> {
        value.serialize(Walk)
    }

    fn end(self) -> Result<(), Failure> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Walk {
    type Ok = ();
    type Error = Failure;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Failure> {
        value.serialize(Walk)
    }

    fn end(self) -> Result<(), Failure> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Decoding: postcard's deserializer, wrapped.

/// Where a [`Failure`] of the user's code waits while it crosses postcard's
/// code, which can only carry `postcard::Error`: it is parked here and the
/// crossing carries a stand-in; the next wrapper up takes it back. The
/// latest failure wins, so one that the user's code caught and dropped is
/// replaced by the next.
#[derive(Debug, Default)]
struct Stash(RefCell<Option<Failure>>);

impl Stash {
    /// Parks `failure` and returns the stand-in for postcard's side.
    fn park<E: de::Error>(&self, failure: Failure) -> E {
        let stand_in = E::custom(&failure);
        *self.0.borrow_mut() = Some(failure);
        stand_in
    }

    /// The failure behind `error`, which came out of postcard's side: the
    /// one parked, if any, else postcard's own.
    fn recover<E: Display>(&self, error: E) -> Failure {
        self.0
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Failure::Wire(error.to_string()))
    }
}

/// A deserializer (postcard's, or one postcard hands a visitor) whose
/// error, to the user's code, is a [`Failure`].
struct Wrap<'s, D> {
    inner: D,
    stash: &'s Stash,
}

/// A visitor of the user's, given to postcard's side.
struct WrapVisitor<'s, V> {
    inner: V,
    stash: &'s Stash,
}

/// A seed of the user's (an element, a key, a variant), given to postcard's
/// side.
struct WrapSeed<'s, S> {
    inner: S,
    stash: &'s Stash,
}

/// An access (seq, map, enum, variant) of postcard's, given to the user's
/// code.
struct WrapAccess<'s, A> {
    inner: A,
    stash: &'s Stash,
}

impl<'s, D> Wrap<'s, D> {
    fn visitor<V>(&self, inner: V) -> WrapVisitor<'s, V> {
        WrapVisitor {
            inner,
            stash: self.stash,
        }
    }
}

/// Forwards `deserialize_*` methods to the inner deserializer.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Failure> {
                let visitor = self.visitor(visitor);
                self.inner
                    .$method($($arg,)* visitor)
                    .map_err(|e| self.stash.recover(e))
            }
        )*
    };
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Wrap<'_, D> {
    type Error = Failure;

    forward_deserialize!(
        deserialize_any(),
        deserialize_bool(),
        deserialize_i8(),
        deserialize_i16(),
        deserialize_i32(),
        deserialize_i64(),
        deserialize_i128(),
        deserialize_u8(),
        deserialize_u16(),
        deserialize_u32(),
        deserialize_u64(),
        deserialize_u128(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_string(),
        deserialize_bytes(),
        deserialize_byte_buf(),
        deserialize_option(),
        deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(),
        deserialize_ignored_any(),
    );

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Forwards `visit_*` methods of a scalar to the user's visitor.
macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
                self.inner.$method::<Failure>(value).map_err(|f| self.stash.park(f))
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for WrapVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner
            .visit_none::<Failure>()
            .map_err(|f| self.stash.park(f))
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner
            .visit_unit::<Failure>()
            .map_err(|f| self.stash.park(f))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
        let stash = self.stash;
        self.inner
            .visit_some(Wrap { inner, stash })
            .map_err(|f| stash.park(f))
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        inner: D,
    ) -> Result<V::Value, D::Error> {
        let stash = self.stash;
        self.inner
            .visit_newtype_struct(Wrap { inner, stash })
            .map_err(|f| stash.park(f))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let stash = self.stash;
        self.inner
            .visit_seq(WrapAccess { inner, stash })
            .map_err(|f| stash.park(f))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let stash = self.stash;
        self.inner
            .visit_map(WrapAccess { inner, stash })
            .map_err(|f| stash.park(f))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let stash = self.stash;
        self.inner
            .visit_enum(WrapAccess { inner, stash })
            .map_err(|f| stash.park(f))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, inner: D) -> Result<S::Value, D::Error> {
        let stash = self.stash;
        self.inner
            .deserialize(Wrap { inner, stash })
            .map_err(|f| stash.park(f))
    }
}

impl<'s, A> WrapAccess<'s, A> {
    fn seed<S>(&self, inner: S) -> WrapSeed<'s, S> {
        WrapSeed {
            inner,
            stash: self.stash,
        }
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for WrapAccess<'_, A> {
    type Error = Failure;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Failure> {
        let seed = self.seed(seed);
        self.inner
            .next_element_seed(seed)
            .map_err(|e| self.stash.recover(e))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for WrapAccess<'_, A> {
    type Error = Failure;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Failure> {
        let seed = self.seed(seed);
        self.inner
            .next_key_seed(seed)
            .map_err(|e| self.stash.recover(e))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Failure> {
        let seed = self.seed(seed);
        self.inner
            .next_value_seed(seed)
            .map_err(|e| self.stash.recover(e))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'s, 'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for WrapAccess<'s, A> {
    type Error = Failure;
    type Variant = WrapAccess<'s, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Failure> {
        let stash = self.stash;
        let seed = self.seed(seed);
        match self.inner.variant_seed(seed) {
            Ok((value, inner)) => Ok((value, WrapAccess { inner, stash })),
            Err(e) => Err(stash.recover(e)),
        }
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for WrapAccess<'_, A> {
    type Error = Failure;

    fn unit_variant(self) -> Result<(), Failure> {
        let stash = self.stash;
        self.inner.unit_variant().map_err(|e| stash.recover(e))
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Failure> {
        let stash = self.stash;
        let seed = self.seed(seed);
        self.inner
            .newtype_variant_seed(seed)
            .map_err(|e| stash.recover(e))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Failure> {
        let stash = self.stash;
        let visitor = WrapVisitor {
            inner: visitor,
            stash,
        };
        self.inner
            .tuple_variant(len, visitor)
            .map_err(|e| stash.recover(e))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failure> {
        let stash = self.stash;
        let visitor = WrapVisitor {
            inner: visitor,
            stash,
        };
        self.inner
            .struct_variant(fields, visitor)
            .map_err(|e| stash.recover(e))
    }
}

#[cfg(test)]
mod tests {
    use super::{de, decode_failure_message, encode_failure_message, ser};
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
                decode_failure_message::<Deep>(&bytes).as_deref(),
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
        let message = decode_failure_message::<Shape>(&bytes).unwrap();
        assert!(message.contains("variant index"), "{message}");
    }

    #[test]
    fn postcard_s_own_failures_give_no_message() {
        // Truncated: postcard's own error, nothing of the user's.
        assert_eq!(decode_failure_message::<(u64, String)>(&[1, 5, b'a']), None);
        // Decodes fine.
        let bytes = postcard::to_allocvec(&Picky(7)).unwrap();
        assert_eq!(decode_failure_message::<Picky>(&bytes), None);
        // Unknown length: refused as postcard refuses it.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq((0..3).filter(|_| true))
            }
        }
        assert_eq!(encode_failure_message(&Unsized), None);
    }
}
