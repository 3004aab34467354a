//! postcard's deserializer wrapped, so that the user's impls see
//! [`Failure`] as their error type.

use std::cell::RefCell;
use std::fmt::{self, Display};

use serde::de::{self, DeserializeSeed, Visitor};

use super::Failure;

/// Where a [`Failure`] of the user's code waits while it crosses postcard's
/// code, which can only carry `postcard::Error`: it is parked here and the
/// crossing carries a stand-in; the next wrapper up takes it back. The
/// latest failure wins, so one that the user's code caught and dropped is
/// replaced by the next.
#[derive(Debug, Default)]
pub(super) struct Stash(RefCell<Option<Failure>>);

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
pub(super) struct Wrap<'s, D> {
    pub(super) inner: D,
    pub(super) stash: &'s Stash,
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
