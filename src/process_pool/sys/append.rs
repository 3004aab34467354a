//! [`Appender`]: the encoder's writer at the end of a `Vec<u8>`, with the
//! write position, the pointer and the capacity held in the writer itself.
//!
//! Writing through the `Vec` (`push`, `extend_from_slice`) makes the
//! compiler load and store the vector's length and capacity around every
//! byte stored, since a byte store may alias them; for values of a few
//! bytes that bookkeeping costs more than the bytes. Held apart in a local
//! writer they stay in registers, and the vector's length is set once, when
//! the writer is dropped.

use super::reserve;

/// Appends bytes to a vector; the vector's length catches up on drop.
///
/// Invariant: `buffer`'s first `len` bytes are initialised (the ones it
/// had, and every one written since), `len <= cap`, and `ptr` and `cap`
/// are `buffer`'s pointer and capacity.
pub(crate) struct Appender<'a> {
    buffer: &'a mut Vec<u8>,
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

impl std::fmt::Debug for Appender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<'a> Appender<'a> {
    /// A writer that appends to `buffer`.
    pub(crate) fn new(buffer: &'a mut Vec<u8>) -> Self {
        let (ptr, len, cap) = (buffer.as_mut_ptr(), buffer.len(), buffer.capacity());
        Appender {
            buffer,
            ptr,
            len,
            cap,
        }
    }

    /// The bytes written so far, those the vector had included.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets what was written past `len` (a value that failed half-way).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes room for `additional` more bytes.
    #[inline]
    fn room(&mut self, additional: usize) {
        if self.cap - self.len < additional {
            // SAFETY: the invariant: the first `len` bytes are
            // initialised, and `len <= cap`.
            (self.ptr, self.cap) = unsafe { grow(self.buffer, self.len, additional) };
        }
    }

    /// Appends one byte.
    #[inline]
    pub(crate) fn byte(&mut self, byte: u8) {
        self.room(1);
        // SAFETY: `room` made `len < cap`, so `ptr + len` is inside the
        // allocation; the byte written becomes initialised.
        unsafe { self.ptr.add(self.len).write(byte) };
        self.len += 1;
    }

    /// Appends the first `len` (at most 8) bytes of `block`: one store of
    /// all 8, then the length moves by `len`.
    #[inline]
    pub(crate) fn block(&mut self, block: [u8; 8], len: usize) {
        debug_assert!(len <= 8);
        self.room(8);
        // SAFETY: `room` made `len + 8 <= cap`: the 8 bytes are inside the
        // allocation, which `block` (on the stack) does not overlap; the
        // first `len.min(8)` of them become part of the initialised run.
        unsafe {
            std::ptr::copy_nonoverlapping(block.as_ptr(), self.ptr.add(self.len), 8);
        }
        self.len += len.min(8);
    }

    /// Appends `bytes`.
    #[inline]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        // SAFETY: `room` made `len + bytes.len() <= cap`; `bytes` cannot
        // lie in this vector's spare room, which only this writer (which
        // borrows the vector mutably) touches.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.len), bytes.len());
        }
        self.len += bytes.len();
    }
}

/// Sets `buffer`'s length to `len` and makes room for `additional` more
/// bytes, at least doubling it (amortised O(1) appends); its new pointer
/// and capacity. Out of line, and given the vector rather than the writer,
/// so that the writer's fields stay in registers on the common path.
///
/// # Safety
///
/// The first `len` bytes of `buffer`'s allocation are initialised, and
/// `len` is at most its capacity.
#[cold]
#[inline(never)]
unsafe fn grow(buffer: &mut Vec<u8>, len: usize, additional: usize) -> (*mut u8, usize) {
    // SAFETY: the caller's promise.
    unsafe { buffer.set_len(len) };
    reserve(buffer, additional.max(buffer.capacity()).max(64));
    (buffer.as_mut_ptr(), buffer.capacity())
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        // SAFETY: the invariant: the first `len` bytes are initialised and
        // `len <= cap`. (Also when a value's `Serialize` panicked half-way:
        // what it wrote is initialised, and the caller truncates it.)
        unsafe { self.buffer.set_len(self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_what_push_and_extend_would() {
        let mut expected = vec![9u8, 8];
        let mut buffer = expected.clone();
        {
            let mut out = Appender::new(&mut buffer);
            for i in 0..1000u32 {
                out.byte(i as u8);
                out.block(u64::from(i).to_le_bytes(), (i % 9) as usize);
                out.bytes(&[1, 2, 3][..(i % 4) as usize]);
                if i % 97 == 0 {
                    let len = out.len();
                    out.bytes(b"dropped");
                    out.truncate(len);
                }
            }
        }
        for i in 0..1000u32 {
            expected.push(i as u8);
            expected.extend_from_slice(&u64::from(i).to_le_bytes()[..(i % 9).min(8) as usize]);
            expected.extend_from_slice(&[1, 2, 3][..(i % 4) as usize]);
        }
        assert_eq!(buffer, expected);
    }

    #[test]
    fn a_panic_half_way_leaves_an_initialised_prefix() {
        let mut buffer = Vec::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = Appender::new(&mut buffer);
            out.bytes(b"abc");
            panic!("in the middle");
        }));
        assert!(caught.is_err());
        assert_eq!(buffer, b"abc");
    }
}
