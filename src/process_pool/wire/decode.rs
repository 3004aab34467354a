//! Reads back the values' format that `encode` writes (its module docs
//! describe the format): a serde `Deserializer` over a run of bytes,
//! which may hold many values one after another (a chunk's arguments, or
//! its results).
//!
//! Every read is bounds-checked, since the bytes come from another
//! process: a run that ends too soon is `DeserializeUnexpectedEnd`, a bad
//! `bool`, `char`, UTF-8, `Option` tag or varint is postcard's error of
//! that name, and a length is never trusted to reserve memory (serde's
//! own collections cap what `size_hint` makes them reserve). Formats that
//! need a self-describing input (`deserialize_any`) get
//! `WontImplement`, as from postcard.

use postcard::Error;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// A deserializer over `bytes`, from the start.
#[derive(Debug)]
pub(crate) struct Deserializer<'de> {
    bytes: &'de [u8],
}

impl<'de> Deserializer<'de> {
    pub(crate) fn new(bytes: &'de [u8]) -> Self {
        Deserializer { bytes }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'de [u8] {
        self.bytes
    }

    #[inline]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        match self.bytes.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.bytes = rest;
                Ok(*head)
            }
            None => Err(Error::DeserializeUnexpectedEnd),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        match self.bytes.split_first() {
            Some((&byte, rest)) => {
                self.bytes = rest;
                Ok(byte)
            }
            None => Err(Error::DeserializeUnexpectedEnd),
        }
    }

    #[inline]
    fn slice(&mut self, len: usize) -> Result<&'de [u8], Error> {
        if len > self.bytes.len() {
            return Err(Error::DeserializeUnexpectedEnd);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    /// A LEB128 varint of at most 10 bytes that fits a `u64`.
    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(Error::DeserializeBadVarint);
            }
            value |= bits << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Error::DeserializeBadVarint)
    }

    #[inline]
    fn length(&mut self) -> Result<usize, Error> {
        usize::try_from(self.varint()?).map_err(|_| Error::DeserializeBadVarint)
    }

    #[inline]
    fn variant(&mut self) -> Result<u32, Error> {
        u32::try_from(self.varint()?).map_err(|_| Error::DeserializeBadVarint)
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, Error> {
        let len = self.length()?;
        std::str::from_utf8(self.slice(len)?).map_err(|_| Error::DeserializeBadUtf8)
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::WontImplement)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(Error::DeserializeBadBool),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i8(self.byte()? as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i16(i16::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i32(i32::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(i64::from_le_bytes(self.take()?))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(i128::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.byte()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u16(u16::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(u32::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(u64::from_le_bytes(self.take()?))
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(u128::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(f32::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(f64::from_le_bytes(self.take()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let scalar = u32::from_le_bytes(self.take()?);
        visitor.visit_char(char::from_u32(scalar).ok_or(Error::DeserializeBadChar)?)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.length()?;
        visitor.visit_borrowed_bytes(self.slice(len)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(Error::DeserializeBadOption),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.length()?;
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.length()?;
        visitor.visit_map(Elements {
            de: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(self.variant()?)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::WontImplement)
    }
}

/// The elements of a sequence, tuple or map: `left` more.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl Elements<'_, '_> {
    /// How many elements to expect, for a collection to reserve: the
    /// length the bytes claim, but never more than the bytes left or
    /// 2^16 (a claimed length comes from another process).
    #[inline]
    fn hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.bytes.len()).min(1 << 16))
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de> de::EnumAccess<'de> for &mut Deserializer<'de> {
    type Error = Error;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let index = self.variant()?;
        let value = seed
            .deserialize(index.into_deserializer())
            .map_err(|_: de::value::Error| Error::DeserializeBadEnum)?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Deserializer<'de> {
    type Error = Error;

    #[inline]
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

/// Decodes one value that takes all of `bytes`.
pub(crate) fn from_bytes<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    let mut de = Deserializer::new(bytes);
    let value = T::deserialize(&mut de)?;
    Ok(value)
}

/// Decodes `count` values from `bytes` onto the end of `values`: `true` if
/// they all decode and end exactly at the end of `bytes`; `false` if one
/// fails or they do not (then `values` may hold some of those before it,
/// which the caller drops: the item-by-item path finds out which failed). A panic in
/// a `Deserialize` goes on to the caller.
///
/// Plain numbers take the bulk path ([`super::bulk`]); other types, one
/// pass with `Vec::extend` over an exact-length iterator, which keeps
/// the vector's length in a register, where `push` after `push` loads and
/// stores it around every value (the parent decodes every result of a
/// `map`). A value that fails to decode stops the pass by unwinding with a
/// private payload (`resume_unwind`, which runs no panic hook: nothing is
/// printed), caught right here.
pub(crate) fn decode_all<R: de::DeserializeOwned + 'static>(
    bytes: &[u8],
    count: usize,
    values: &mut Vec<R>,
) -> bool {
    match super::bulk::decode_numbers(bytes, count, values) {
        Some(decoded) => decoded,
        None => decode_each(bytes, count, values),
    }
}

/// [`decode_all`] for any type: one decoder call per value.
pub(crate) fn decode_each<R: de::DeserializeOwned>(
    bytes: &[u8],
    count: usize,
    values: &mut Vec<R>,
) -> bool {
    /// Why the pass stopped: a value did not decode.
    struct Undecodable;
    let mut de = Deserializer::new(bytes);
    let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        values.extend((0..count).map(|_| match R::deserialize(&mut de) {
            Ok(value) => value,
            Err(_) => std::panic::resume_unwind(Box::new(Undecodable)),
        }));
    }));
    match pass {
        Ok(()) => de.rest().is_empty(),
        Err(payload) if payload.is::<Undecodable>() => false,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
