/// mimalloc: the server allocates many small, short-lived JSON values across threads, where
/// glibc's malloc showed up as a fifth of CPU time in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tune_c_malloc();
    roster::cli::main()
}

/// SQLite allocates through the C library's malloc, not the global allocator above. A page
/// of 100 users is one text value of ~150 KB, built on a SQLite thread and freed on a Tokio
/// thread; with glibc's defaults each such free trimmed the arena back to the kernel
/// (`madvise`, and a TLB shootdown across cores), about once per page served. Keep up to
/// 2 MB free per arena (a few pages' worth: more shows up as resident memory, one arena per
/// thread) and serve blocks below 1 MB from the arenas instead of fresh mappings.
fn tune_c_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
