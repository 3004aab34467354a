//! A job's encoded arguments: bytes encoded into a buffer, a chunk's own
//! vector of plain numbers, or a block of the pool's argument arena that
//! the map gathered a chunk of plain numbers into.
//!
//! The wire encoding of a chunk of `u64`s (say) is the very bytes they
//! occupy in memory (`wire::bulk`). Copying them into a byte buffer cost
//! the parent more than anything else it did per item of the primes seed
//! (a `memcpy` of 20 MB per map, most of it into memory the cache had
//! lost). So the map gathers such a chunk straight into the arena
//! (`Shared`: the worker reads it there), or, where the arena has no room
//! (or for `bool`s), into a vector the job takes whole (`Numbers`: its
//! bytes are lent to the pipe as a byte buffer's are), gathering the next
//! chunk into a kept vector of the same type.

use std::any::Any;

use super::arena::ArenaBlock;

/// A job's arguments, one after another, in the wire's encoding.
pub(crate) enum Payload {
    /// Encoded item by item (or copied) into a byte buffer.
    Bytes(Vec<u8>),
    /// A vector of plain numbers, taken whole (`wire::bulk::take_numbers`).
    Numbers(Box<dyn Numbers>),
    /// Plain numbers gathered straight into the pool's argument arena,
    /// which every worker maps: they are sent as where they lie.
    Shared(ArenaBlock),
}

impl Payload {
    /// The encoded arguments.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Payload::Bytes(bytes) => bytes,
            Payload::Numbers(numbers) => numbers.bytes(),
            Payload::Shared(block) => block.bytes(),
        }
    }

    /// Where the bytes from `from` on lie in the pool's argument arena, and
    /// how many there are, for a payload that lies there.
    pub(crate) fn shared_from(&self, from: usize) -> Option<(u64, u64)> {
        match self {
            Payload::Shared(block) => {
                let from = from.min(block.bytes().len());
                Some((
                    block.offset() + from as u64,
                    (block.bytes().len() - from) as u64,
                ))
            }
            _ => None,
        }
    }

    /// The encoded arguments' length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes().len()
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Bytes(Vec::new())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload::Bytes(bytes)
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Bytes(bytes) => write!(f, "Payload::Bytes({} bytes)", bytes.len()),
            Payload::Numbers(numbers) => {
                write!(f, "Payload::Numbers({} bytes)", numbers.bytes().len())
            }
            Payload::Shared(block) => write!(f, "Payload::Shared({block:?})"),
        }
    }
}

/// A `Vec` of one plain number type, seen as its bytes.
pub(crate) trait Numbers: Send {
    /// The numbers' memory: their encoding.
    fn bytes(&self) -> &[u8];
    /// Its capacity in bytes.
    fn capacity_bytes(&self) -> usize;
    /// Empties it, and gives back the `Vec` itself, for reuse.
    fn into_empty(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: bytemuck::NoUninit + Send> Numbers for Vec<T> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }

    fn capacity_bytes(&self) -> usize {
        self.capacity().saturating_mul(std::mem::size_of::<T>())
    }

    fn into_empty(mut self: Box<Self>) -> Box<dyn Any + Send> {
        self.clear();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_their_bytes_and_come_back_empty() {
        let numbers: Box<dyn Numbers> = Box::new(vec![1u32, 2, 0x0304_0506]);
        let payload = Payload::Numbers(numbers);
        assert_eq!(payload.bytes(), [1, 0, 0, 0, 2, 0, 0, 0, 6, 5, 4, 3]);
        assert_eq!(payload.len(), 12);
        let Payload::Numbers(numbers) = payload else {
            unreachable!("made as numbers")
        };
        assert!(numbers.capacity_bytes() >= 12);
        let back = numbers.into_empty().downcast::<Vec<u32>>();
        let back = back.expect("a Vec<u32>");
        assert!(back.is_empty() && back.capacity() >= 3);
        assert_eq!(Payload::from(vec![7u8, 8]).bytes(), [7, 8]);
    }
}
