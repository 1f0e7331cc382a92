use clap::Parser;

/// See Cargo.toml: glibc malloc fragments under the store's allocation pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ignore_file_size_signal();
    banditd::cli::run(banditd::cli::Cli::parse())
}

/// A write past the file-size limit (`ulimit -f`, RLIMIT_FSIZE) raises SIGXFSZ, whose default
/// action kills the process on the spot, acknowledged-but-unflushed work and all. Ignored, the
/// write fails with EFBIG instead, and the store handles it like a full disk: it reports it,
/// refuses writes, and recovers by itself once the limit is lifted.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_IGN installs
    // no handler code, so nothing can run in signal context.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
