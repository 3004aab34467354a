//! `Walk`: a serializer that walks a value and writes nothing.

use std::fmt::Display;

use serde::ser::{self, Serialize};

use super::Failure;

/// A serializer that walks a value and writes nothing. It refuses what
/// postcard refuses (a sequence or map of unknown length), so that a value
/// takes the same path through its `Serialize` impl here as there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk;

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
