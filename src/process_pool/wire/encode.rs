//! The values' format on the wire, and its serializer. (`decode` reads
//! it back.)
//!
//! Every argument and result crosses the pipes and the shared region in
//! this format: serde's data model, laid out as postcard 1 lays it out,
//! except that numbers are fixed-width little-endian rather than varints:
//!
//! * `bool`: one byte, 0 or 1; `u8`, `i8`: one byte;
//! * `u16`..`u128`, `i16`..`i128`, `f32`, `f64`: their little-endian
//!   bytes (2, 4, 8 or 16);
//! * `char`: its scalar value as a `u32`;
//! * `str` and bytes: a length, then the bytes (UTF-8 for `str`);
//! * `Option`: 0, or 1 and the value; unit types: nothing;
//! * enum variants: the variant index, then the fields;
//! * sequences and maps: the length (it must be known up front:
//!   postcard's `SerializeSeqLengthUnknown` otherwise), then the elements;
//!   tuples and structs: the fields one after another, with nothing
//!   between them.
//!
//! Lengths and variant indices, which are small, are LEB128 varints as in
//! postcard. Not self-describing: both sides must know the type, which
//! they do (they run the same build).
//!
//! Why not postcard itself: a varint costs a loop of one byte a step to
//! write and to read, about 6.5 ns to write a `u64` with postcard's own
//! serializer on the development machine, the largest part of the
//! parent's CPU per item of a fine-grained `map` (issue 12); a fixed-width
//! number is one store, under 1 ns. Every scalar is written as one 8-byte
//! block into room checked once, and the output's length then moves by
//! the value's true length. The cost is size: a small `u64` takes 8 bytes
//! where a varint takes 1 to 3, which a pipe or a slot carries faster than
//! a varint loop runs.
//!
//! Errors are postcard's own (`postcard::Error`), so that the rest of the
//! wire reports them in the same words.

use super::bounds::Bounds;
use postcard::Error;
use serde::ser::{self, Serialize};

/// Where encoded bytes go: the end of a growing buffer, or a fixed area.
pub(crate) trait Out {
    /// Appends one byte.
    fn byte(&mut self, byte: u8) -> Result<(), Error>;
    /// Appends the first `len` (at most 8) bytes of `block`, the
    /// little-endian bytes of a number held in a register.
    fn block(&mut self, block: u64, len: usize) -> Result<(), Error>;
    /// Appends `bytes`, of any length.
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error>;
}

/// Appends to a `Vec`, growing it (doubling) as needed: the process
/// pool's `sys::Appender`, which keeps its write position in registers.
pub(crate) use super::sys::Appender as Append;

impl Out for Append<'_> {
    #[inline]
    fn byte(&mut self, byte: u8) -> Result<(), Error> {
        Append::byte(self, byte);
        Ok(())
    }

    #[inline]
    fn block(&mut self, block: u64, len: usize) -> Result<(), Error> {
        Append::block(self, block.to_le_bytes(), len);
        Ok(())
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        Append::bytes(self, bytes);
        Ok(())
    }
}

/// Writes into a fixed area (a slot of the shared region) from `pos` on;
/// fails with `SerializeBufferFull`, leaving `pos` where it was, when the
/// area is full.
pub(crate) struct Bounded<'a> {
    pub(crate) area: &'a mut [u8],
    pub(crate) pos: usize,
}

impl Out for Bounded<'_> {
    #[inline]
    fn byte(&mut self, byte: u8) -> Result<(), Error> {
        match self.area.get_mut(self.pos) {
            Some(place) => {
                *place = byte;
                self.pos += 1;
                Ok(())
            }
            None => Err(Error::SerializeBufferFull),
        }
    }

    #[inline]
    fn block(&mut self, block: u64, len: usize) -> Result<(), Error> {
        let block = block.to_le_bytes();
        if let Some(place) = self.area.get_mut(self.pos..self.pos + 8) {
            // Room for the whole block: the bytes past `len` are scratch
            // that the next value overwrites.
            place.copy_from_slice(&block);
            self.pos += len;
            Ok(())
        } else {
            self.bytes(&block[..len])
        }
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.pos + bytes.len();
        match self.area.get_mut(self.pos..end) {
            Some(place) => {
                place.copy_from_slice(bytes);
                self.pos = end;
                Ok(())
            }
            None => Err(Error::SerializeBufferFull),
        }
    }
}

/// The serializer over an output.
pub(crate) struct Serializer<O> {
    pub(crate) out: O,
}

/// Appends `value` to `out`.
#[inline]
pub(crate) fn encode<T: Serialize + ?Sized, O: Out>(value: &T, out: O) -> Result<O, Error> {
    let mut serializer = Serializer { out };
    value.serialize(&mut serializer)?;
    Ok(serializer.out)
}

/// The values whose varint fits 8 bytes: 56 bits.
const NARROW: u64 = 1 << 56;

/// A `value` under [`NARROW`] as a LEB128 varint (a length or a variant
/// index): its bytes, little-endian in a number, and their count (1 to 8),
/// stored as one block like a fixed-width number. Without a branch: each
/// group of 7 bits moves to its byte, and every byte but the last gets its
/// continuation bit.
#[inline(always)]
fn narrow_varint(value: u64) -> (u64, usize) {
    debug_assert!(value < NARROW);
    let bits = 64 - (value | 1).leading_zeros() as usize;
    let len = bits.div_ceil(7);
    let mut spread = 0;
    for group in 0..8 {
        spread |= (value & (0x7f << (7 * group))) << group;
    }
    let continued = 0x8080_8080_8080_8080 & ((1u64 << (8 * (len - 1))) - 1);
    (spread | continued, len)
}

impl<O: Out> Serializer<O> {
    #[inline(always)]
    pub(super) fn varint(&mut self, value: u64) -> Result<(), Error> {
        if value < NARROW {
            let (block, len) = narrow_varint(value);
            self.out.block(block, len)
        } else {
            self.varint_wide(value)
        }
    }

    /// A varint of a `u64` of 57 bits or more: 9 or 10 bytes.
    #[cold]
    fn varint_wide(&mut self, mut value: u64) -> Result<(), Error> {
        let mut bytes = [0u8; 10];
        let mut len = 0;
        loop {
            if value < 0x80 {
                bytes[len] = value as u8;
                len += 1;
                break;
            }
            bytes[len] = value as u8 | 0x80;
            value >>= 7;
            len += 1;
        }
        self.out.bytes(&bytes[..len])
    }

    #[inline]
    fn length(&mut self, len: usize) -> Result<(), Error> {
        self.varint(len as u64)
    }

    #[inline]
    fn variant(&mut self, index: u32) -> Result<(), Error> {
        self.varint(u64::from(index))
    }
}

impl<O: Out> ser::Serializer for &mut Serializer<O> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.byte(u8::from(v))
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.out.byte(v as u8)
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.out.block(u64::from(v as u16), 2)
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.out.block(u64::from(v as u32), 4)
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.out.block(v as u64, 8)
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.out.bytes(&v.to_le_bytes())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.out.byte(v)
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.out.block(u64::from(v), 2)
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.out.block(u64::from(v), 4)
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.out.block(v, 8)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.out.bytes(&v.to_le_bytes())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.block(u64::from(v.to_bits()), 4)
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.block(v.to_bits(), 8)
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.out.block(u64::from(u32::from(v)), 4)
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.length(v.len())?;
        self.out.bytes(v)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.out.byte(0)
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.byte(1)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(index)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(index)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        self.length(len.ok_or(Error::SerializeSeqLengthUnknown)?)?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(index)?;
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        self.length(len.ok_or(Error::SerializeSeqLengthUnknown)?)?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(index)?;
        Ok(self)
    }
}

/// Every compound is its elements one after another.
macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl<O: Out> ser::$trait for &mut Serializer<O> {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), Error> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, key);
compound!(SerializeStructVariant, serialize_field, key);

impl<O: Out> ser::SerializeMap for &mut Serializer<O> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut **self)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// Where [`encode_run`] is: the next item and where it starts in the
/// payload. Kept outside the run so that a panic in an item's `Serialize`
/// leaves it behind, to go on from.
#[derive(Debug, Default)]
pub(crate) struct RunState {
    /// The index of the item being encoded (or next).
    pub(crate) index: usize,
    /// Where that item starts in the payload: the payload's true length.
    pub(crate) pos: usize,
}

/// Where a run is, held in registers while it runs and written back to
/// the caller's [`RunState`] and [`Bounds`] when it ends, whether by
/// returning or by a panic unwinding out of an item's `Serialize`.
struct Position<'a> {
    state: &'a mut RunState,
    bounds: &'a mut Bounds,
    index: usize,
    pos: usize,
    /// Items encoded to the bounds' stride and not yet counted in them.
    uniform: usize,
    /// The bounds' stride, while they have one.
    stride: Option<u32>,
}

impl Position<'_> {
    /// Counts the items of the bounds' stride in them.
    fn flush(&mut self) {
        self.bounds
            .extend_uniform(std::mem::take(&mut self.uniform));
    }
}

impl Drop for Position<'_> {
    fn drop(&mut self) {
        self.flush();
        self.state.index = self.index;
        self.state.pos = self.pos;
    }
}

/// Encodes `items[state.index..]` one after another into `payload` from
/// `state.pos` on, and where each ends into `bounds`. An item whose
/// `Serialize` fails is left out, its index and error in `refused`. A
/// panic in a `Serialize` unwinds out of here with `state` at that item
/// (the caller goes on from there; `payload` then holds what the item
/// wrote half-way, which the next run cuts off).
pub(crate) fn encode_run<A: Serialize>(
    payload: &mut Vec<u8>,
    bounds: &mut Bounds,
    items: &[A],
    state: &mut RunState,
    refused: &mut Vec<(usize, Error)>,
) {
    payload.truncate(state.pos);
    let mut serializer = Serializer {
        out: Append::new(payload),
    };
    let mut at = Position {
        index: state.index,
        pos: state.pos,
        stride: bounds.stride(),
        uniform: 0,
        state,
        bounds,
    };
    while let Some(item) = items.get(at.index) {
        let start = serializer.out.len();
        at.pos = start;
        match item.serialize(&mut serializer) {
            Ok(()) => {
                // Frames, and so payloads, are under 4 GiB.
                let (start, end) = (start as u32, serializer.out.len() as u32);
                if at.stride == Some(end - start) {
                    at.uniform += 1;
                } else {
                    at.flush();
                    at.bounds.push(start, end);
                    at.stride = at.bounds.stride();
                }
            }
            Err(e) => {
                serializer.out.truncate(start);
                refused.push((at.index, e));
            }
        }
        at.index += 1;
    }
    at.pos = serializer.out.len();
}
