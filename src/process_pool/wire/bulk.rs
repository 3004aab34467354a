//! The bulk path for chunks of plain numbers.
//!
//! The values format writes every number fixed-width, little-endian: a
//! slice of `u64`s encodes to exactly the bytes it holds in memory on a
//! little-endian machine, and those bytes decode back to it. So a chunk of
//! arguments that are plain numbers (`bool`, the integers, `f32`, `f64`)
//! is encoded with no copy at all (the job takes the map's vector of them
//! whole, `take_numbers`) instead of an encoder call per item, and a
//! chunk of such results is decoded with one pass that a compiler turns
//! into vector code (checking, for `bool`, that every byte is 0 or 1, as
//! the per-item decoder does). The bytes are the very ones the per-item
//! path writes and reads (the property tests compare them), so the worker,
//! which runs the function item by item, sees no difference; every other
//! type takes the per-item path.
//!
//! Which types qualify is decided by `TypeId`, at no cost per item.

use std::any::Any;

use crate::process_pool::payload::Numbers;

/// Takes the vector `items` whole as a chunk's payload, if `A` is a plain
/// number type (its memory is then its encoding), leaving `spare()` in its
/// place for the next chunk to be gathered into: the numbers and the size
/// of each; `None`, with `items` untouched, for any other type.
pub(crate) fn take_numbers<A: Send + 'static>(
    items: &mut Vec<A>,
    spare: impl FnOnce() -> Vec<A>,
) -> Option<(Box<dyn Numbers>, u32)> {
    if !cfg!(target_endian = "little") {
        return None;
    }
    macro_rules! take {
        ($($number:ty),*) => {$(
            if let Some(numbers) = (items as &mut dyn Any).downcast_mut::<Vec<$number>>() {
                let taken = std::mem::take(numbers);
                *items = spare();
                return Some((Box::new(taken), std::mem::size_of::<$number>() as u32));
            }
        )*};
    }
    take!(u64, i64, u32, i32, f64, f32, u16, i16, u8, i8, bool, u128, i128);
    #[cfg(target_pointer_width = "64")]
    take!(usize, isize);
    None
}

/// Decodes `count` values from `bytes` into `values` in one pass, if `R`
/// is a plain number type: `Some(true)` if `bytes` held exactly `count` of
/// them (and, for `bool`, each was 0 or 1), `Some(false)` with nothing
/// taken if not; `None` for any other type.
// A `Vec`, not a slice: it is extended, through `Any`, which clippy cannot
// see.
#[allow(clippy::ptr_arg)]
pub(crate) fn decode_numbers<R: 'static>(
    bytes: &[u8],
    count: usize,
    values: &mut Vec<R>,
) -> Option<bool> {
    if !cfg!(target_endian = "little") {
        return None;
    }
    let values: &mut dyn Any = values;
    if let Some(flags) = values.downcast_mut::<Vec<bool>>() {
        // Every byte 0 or 1 exactly when all of them OR-ed together are:
        // a pass without an early exit, which the compiler vectorises.
        let fits = bytes.len() == count && bytes.iter().fold(0, |all, &byte| all | byte) <= 1;
        if fits {
            flags.extend(bytes.iter().map(|&byte| byte != 0));
        }
        return Some(fits);
    }
    macro_rules! read {
        ($($number:ty),*) => {$(
            if let Some(numbers) = values.downcast_mut::<Vec<$number>>() {
                const SIZE: usize = std::mem::size_of::<$number>();
                let fits = bytes.len() == count.saturating_mul(SIZE);
                if fits {
                    numbers.extend(
                        bytes
                            .chunks_exact(SIZE)
                            .map(bytemuck::pod_read_unaligned::<$number>),
                    );
                }
                return Some(fits);
            }
        )*};
    }
    read!(u64, i64, u32, i32, f64, f32, u16, i16, u8, i8, u128, i128);
    #[cfg(target_pointer_width = "64")]
    read!(usize, isize);
    None
}

/// The size of a plain number's encoding, if `T` is a plain number type
/// (the types `take_numbers` takes): its encoding is then its memory.
pub(crate) fn plain_size<T: 'static>() -> Option<usize> {
    use std::any::TypeId;
    if !cfg!(target_endian = "little") {
        return None;
    }
    let id = TypeId::of::<T>();
    macro_rules! plain {
        ($($number:ty),*) => {$(
            if id == TypeId::of::<$number>() {
                return Some(std::mem::size_of::<$number>());
            }
        )*};
    }
    plain!(u64, i64, u32, i32, f64, f32, u16, i16, u8, i8, bool, u128, i128);
    #[cfg(target_pointer_width = "64")]
    plain!(usize, isize);
    None
}

/// A payload of `count` plain numbers of type `T`, checked once so that
/// each may then be read with [`read_plain`]: its size, `None` if `T` is
/// not a plain number type or `bytes` is not exactly `count` valid
/// encodings (a `bool` byte other than 0 or 1; the per-item decoder then
/// reports it).
pub(crate) fn plain_payload<T: 'static>(bytes: &[u8], count: usize) -> Option<usize> {
    let size = plain_size::<T>()?;
    if bytes.len() != count.checked_mul(size)? {
        return None;
    }
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<bool>()
        && bytes.iter().fold(0, |all, &byte| all | byte) > 1
    {
        return None;
    }
    Some(size)
}

/// Item `index` of a payload that [`plain_payload`] accepted for `T`.
///
/// # Safety
///
/// `plain_payload::<T>(bytes, count)` returned `Some`, and `index < count`.
#[inline]
pub(crate) unsafe fn read_plain<T>(bytes: &[u8], index: usize) -> T {
    let size = std::mem::size_of::<T>();
    debug_assert!((index + 1) * size <= bytes.len());
    // SAFETY: the caller's contract: `bytes` holds `count` encodings of
    // `size` bytes, so item `index` lies inside it; `T` is a plain number,
    // whose encoding is its little-endian memory and for which every
    // pattern is valid (a `bool`'s bytes were checked to be 0 or 1).
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(index * size).cast::<T>()) }
}

/// Writes the encoding of `value`, a plain number, at `to[at..]`.
///
/// # Safety
///
/// `plain_size::<T>()` is `Some`, and `at + size_of::<T>() <= to.len()`.
#[inline]
pub(crate) unsafe fn write_plain<T>(value: T, to: &mut [u8], at: usize) {
    debug_assert!(at + std::mem::size_of::<T>() <= to.len());
    // SAFETY: the caller's contract: the value's bytes fit `to` from `at`;
    // a plain number has no padding and its memory is its encoding.
    unsafe { std::ptr::write_unaligned(to.as_mut_ptr().add(at).cast::<T>(), value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_pool::wire::decode::decode_each;
    use crate::process_pool::wire::push_value;
    use proptest::prelude::*;
    use serde::{de::DeserializeOwned, Serialize};
    use std::fmt::Debug;

    /// The bulk bytes are the per-item encoder's, and they decode, in bulk
    /// and item by item, to the values they came from.
    fn agrees<T>(items: Vec<T>) -> Result<(), TestCaseError>
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug + Clone + Send + 'static,
    {
        let mut bulk = vec![9u8];
        let mut taken = items.clone();
        let spare = Vec::with_capacity(3);
        let (numbers, size) = take_numbers(&mut taken, || spare).expect("plain numbers");
        prop_assert!(
            taken.is_empty() && taken.capacity() >= 3,
            "the spare took its place"
        );
        bulk.extend_from_slice(numbers.bytes());
        let size = Some(size);
        prop_assert_eq!(size, Some(std::mem::size_of::<T>() as u32));
        let mut one_by_one = vec![9u8];
        for item in &items {
            push_value(&mut one_by_one, item).expect("a number encodes");
        }
        prop_assert_eq!(&bulk, &one_by_one);
        let mut values: Vec<T> = Vec::new();
        prop_assert_eq!(
            decode_numbers(&bulk[1..], items.len(), &mut values),
            Some(true)
        );
        prop_assert_eq!(&values, &items);
        let mut generic: Vec<T> = Vec::new();
        prop_assert!(decode_each(&bulk[1..], items.len(), &mut generic));
        prop_assert_eq!(&generic, &items);
        // The worker's plain loop reads the very items, and writes them
        // back as the same bytes.
        prop_assert_eq!(
            plain_payload::<T>(&bulk[1..], items.len()),
            size.map(|s| s as usize)
        );
        let mut written = vec![0u8; bulk.len() - 1];
        for (index, item) in items.iter().enumerate() {
            // SAFETY: `plain_payload` accepted `bulk[1..]` for `items.len()`
            // items, and `index` is one of them.
            let read: T = unsafe { read_plain(&bulk[1..], index) };
            prop_assert_eq!(&read, item);
            let at = index * std::mem::size_of::<T>();
            // SAFETY: `T` is plain (`plain_payload` said so) and item
            // `index`'s bytes lie inside `written`, as long as `bulk[1..]`.
            unsafe { write_plain(read, &mut written, at) };
        }
        prop_assert_eq!(&written[..], &bulk[1..]);
        prop_assert_eq!(plain_payload::<T>(&bulk[1..], items.len() + 1), None);
        // A count that does not match the bytes takes nothing.
        let mut none: Vec<T> = Vec::new();
        prop_assert_eq!(
            decode_numbers(&bulk[1..], items.len() + 1, &mut none),
            Some(false)
        );
        prop_assert!(none.is_empty());
        Ok(())
    }

    proptest! {
        #[test]
        fn numbers_in_bulk_are_the_per_item_bytes(
            u in proptest::collection::vec(any::<u64>(), 0..40),
            i in proptest::collection::vec(any::<i32>(), 0..40),
            f in proptest::collection::vec(any::<f64>().prop_filter("NaN != NaN", |x| !x.is_nan()), 0..40),
            b in proptest::collection::vec(any::<bool>(), 0..40),
            s in proptest::collection::vec(any::<i16>(), 0..40),
            w in proptest::collection::vec(any::<u128>(), 0..10),
            z in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            agrees(u)?;
            agrees(i)?;
            agrees(f)?;
            agrees(b)?;
            agrees(s)?;
            agrees(w)?;
            agrees(z)?;
        }

        /// A byte other than 0 or 1 where a `bool` should be is refused,
        /// by the bulk path as by the per-item one.
        #[test]
        fn a_bad_bool_is_refused(
            mut bytes in proptest::collection::vec(0u8..2, 1..40),
            at in any::<proptest::sample::Index>(),
            bad in 2u8..,
        ) {
            let at = at.index(bytes.len());
            bytes[at] = bad;
            let mut flags: Vec<bool> = Vec::new();
            prop_assert_eq!(decode_numbers(&bytes, bytes.len(), &mut flags), Some(false));
            prop_assert!(flags.is_empty());
            let mut generic: Vec<bool> = Vec::new();
            prop_assert!(!decode_each(&bytes, bytes.len(), &mut generic));
            // Nor may the worker's plain loop read it.
            prop_assert_eq!(plain_payload::<bool>(&bytes, bytes.len()), None);
        }
    }

    #[test]
    fn other_types_take_the_per_item_path() {
        let mut pairs = vec![(1u8, 2u8)];
        assert!(take_numbers(&mut pairs, Vec::new).is_none());
        let mut strings = vec![String::new()];
        assert!(take_numbers(&mut strings, Vec::new).is_none());
        assert_eq!((pairs.len(), strings.len()), (1, 1), "left untouched");
        let mut values: Vec<char> = Vec::new();
        assert_eq!(decode_numbers(b"abcd", 1, &mut values), None);
        assert_eq!(plain_size::<char>(), None);
        assert_eq!(plain_size::<(u8, u8)>(), None);
        assert_eq!(plain_payload::<String>(b"", 0), None);
    }
}
