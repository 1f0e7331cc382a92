use clap::Parser;

fn main() -> std::process::ExitCode {
    banditd::cli::run(banditd::cli::Cli::parse())
}
