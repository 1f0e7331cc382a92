//! A hint to the CPU to start loading a cache line: the tables of millions of sticky units and
//! event ids are read at random, so a loop that knows its next keys asks for their slots a
//! few iterations ahead and finds them in cache.

/// Starts loading `value`'s cache line; nothing on targets without the instruction.
#[inline]
pub fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint to the cache: it cannot fault, and it reads nothing
    // the program observes; `value` is a live reference in any case.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
