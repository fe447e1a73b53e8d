//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps freed memory in its arenas; after a burst of
//! large request bodies (a bulk import) the server's resident size stayed
//! near its peak for good (≈ 80 MB idle after a 2 M entry fill, against
//! ≈ 20 MB before it). `malloc_trim(0)` returns every free page of every
//! arena. It is called from the upkeep task when ingest has been idle for a
//! whole tick, after SQLite released its caches.

/// Returns free heap pages to the OS (glibc); a no-op elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists under
    // its locks; it has no preconditions and is safe to call from any
    // thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns free heap pages to the OS (glibc); a no-op elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}
