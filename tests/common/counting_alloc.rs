//! A global allocator that counts the allocations of the calling thread, so that a test
//! binary's other threads (the test harness's) do not disturb the count. A test binary
//! that includes this module (`#[path = "common/counting_alloc.rs"] mod counting_alloc;`)
//! runs on it; no other binary does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Const-initialized and without a destructor: using it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Allocations made so far by the calling thread.
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// `GlobalAlloc` contract (same layout in, same pointer out); the counter is only a side
// effect that neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // try_with: the thread-local may already be gone while a thread shuts down.
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same layout as given to us, per the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    // `realloc` and `alloc_zeroed` keep their default forms, which call `alloc` (counted).
}

#[global_allocator]
static GLOBAL: Counting = Counting;
