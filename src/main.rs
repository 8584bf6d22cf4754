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
/// 16 MB free per arena and serve blocks below 4 MB from the arenas instead.
fn tune_c_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}
