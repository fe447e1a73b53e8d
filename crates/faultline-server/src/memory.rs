//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps freed memory in its arenas; after a burst of
//! large request bodies (a bulk import) the server's resident size stayed
//! near its peak for good (≈ 80 MB idle after a 2 M entry fill, against
//! ≈ 20 MB before it). `malloc_trim(0)` returns every free page of every
//! arena. It is called from the upkeep task when ingest has been idle for a
//! whole tick, after SQLite released its caches.
//!
//! Trimming only returns whole free pages. glibc also raises its mmap
//! threshold (from 128 KiB up to 32 MiB) each time a large block is freed,
//! so after a bulk import the big buffers of every commit and request
//! (chunk payloads, 1,000-entry bodies) come from the arenas, and the small
//! blocks that outlive them pin the pages: 39 MB idle after a 2 M entry fill
//! and queries. [`configure`] fixes the threshold at 128 KiB: big buffers
//! are mapped and unmapped on their own (a few page faults per commit) and
//! the same run idles at 26 MB.

/// Largest block taken from the arenas; bigger ones are mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold (see the module docs), unless the
/// environment sets it itself (`MALLOC_MMAP_THRESHOLD_`, or
/// `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`); a no-op elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn configure() {
    let tuned = std::env::var_os("GLIBC_TUNABLES")
        .is_some_and(|t| t.to_string_lossy().contains("mmap_threshold"));
    if tuned || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a tunable of the allocator under its lock;
    // M_MMAP_THRESHOLD with a value below the 32 MiB maximum is valid and
    // affects later allocations only.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Fixes glibc's mmap threshold (glibc only); a no-op elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn configure() {}

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
