//! A global allocator that notes the largest single allocation, for the
//! targets that bound what decoding may allocate (`mod counting;`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, noting the largest single allocation it made.
struct Counting;

/// The largest allocation since `largest_allocation` last took it.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    // ORDERING: a statistic read back on the same thread; nothing else is
    // synchronised through it.
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

/// The largest single allocation since the last call.
pub(crate) fn largest_allocation() -> usize {
    // ORDERING: as in `note`.
    LARGEST.swap(0, Ordering::Relaxed)
}

// SAFETY: every method forwards to `System` with the arguments it was
// given, after noting a size; it adds no state to the memory itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's guarantees for `alloc` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;
