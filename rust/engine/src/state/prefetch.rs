//! A software prefetch hint, shared by the state components and the kernel:
//! the loops over many customers issue it a few customers ahead, so that the
//! independent cache misses overlap instead of queueing.

/// Asks the CPU to start loading the cache line at `p`; a no-op where the
/// architecture has no hint. Never dereferences `p`.
#[inline(always)]
pub fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
