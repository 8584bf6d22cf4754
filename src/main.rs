/// mimalloc: the server allocates many small, short-lived JSON values across threads, where
/// glibc's malloc showed up as a fifth of CPU time in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    roster::cli::main()
}
