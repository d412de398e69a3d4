//! The allocator's side of bounded memory. glibc's malloc keeps what a large push freed: its
//! mmap threshold grows with every large block freed (so the next 16 MiB buffer comes from the
//! heap and stays there), and the freed small blocks of a parsed document stay in its arenas.
//! A router VM has 256-512 MB; the agent's resident set should fall back after each push.

/// Allocations from this size on are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Fixes the mmap threshold (which also stops its growth) and caps the arenas: the runtime's
/// threads otherwise each get an arena that keeps its own free memory.
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes malloc parameters; called before the runtime allocates much
    // and valid at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives the free memory of every arena back to the kernel (after a push is done with).
pub fn release_free() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages to the kernel; it takes malloc's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
