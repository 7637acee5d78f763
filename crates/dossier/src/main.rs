//! The `dossier` command: runs the server and administers tenancy on the embedded default.
//!
//! Subcommands are thin: they parse flags, open storage or start the server through the API
//! crate, and print. Everything they do is also reachable over HTTP except creating API clients
//! and sandboxes, which are operator actions.

mod cli;
mod commands;
mod config;
mod remote;
mod storage;
mod workload;

use clap::Parser;

// Exports and ingestion allocate many short-lived buffers from several threads; glibc's malloc
// spent a third of an export's time consolidating free lists (perf, 1M profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: never give freed memory back to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// An export frees and reallocates hundreds of megabytes per partition. Returned to the OS, each
/// reuse faulted in fresh zeroed (huge) pages: a third of a 1M-profile export's time was the
/// kernel clearing pages. Keeping freed memory makes the process's resident size its peak, which
/// is what the benchmarks report anyway.
fn tune_allocator() {
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 0);
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    runtime.block_on(run())
}

async fn run() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let settings = match config::Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    config::init_logging(cli.command.log_json(), &settings);
    match cli.command.run(settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
