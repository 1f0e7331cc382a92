use clap::Parser;

/// See Cargo.toml: glibc malloc fragments under the store's allocation pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    banditd::cli::run(banditd::cli::Cli::parse())
}
