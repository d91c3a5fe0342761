use std::process::ExitCode;

use clap::Parser;
use mondiapay_token_proxy::{cli::Cli, commands};

/// mimalloc instead of glibc's malloc: a request's buffers are often freed on another worker
/// thread than the one that made them, which glibc serialises on its arenas' locks, and after a
/// load of callbacks its fragmented heap made lookups slower (bench/: 48–54k against 69–75k
/// lookups/s after callbacks). Without transparent huge pages (`no_thp`): with them each arena
/// touched whole 2 MiB pages, and peak RSS rose from 30 to 52 MiB. Rust's allocations only:
/// SQLite's C code keeps glibc's `malloc` (mimalloc's `override` of it saved 0.5 to 0.9 MiB of
/// peak RSS, but a program preloaded into the process, such as libfaketime, then crashed it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(commands::run(cli))
}
