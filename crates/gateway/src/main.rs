//! `portcullis`: the gateway (`serve`) and the admin CLI for a running gateway (everything else).
//! Thin on purpose: parsing lives in `cli`, the server in `server`.

mod api;
mod api_types;
mod auth;
mod cli;
mod config;
mod connection;
mod delivery;
mod directory;
mod downstream;
mod dsn;
mod journal;
mod message;
mod principals;
mod report;
mod server;
mod simulate;
mod spool;
mod telemetry;
mod tls;
mod trace;

use clap::Parser;

/// Sessions, trace records and replies are many small, short-lived allocations across threads;
/// mimalloc serves them with less contention and less work than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    let code = match &cli.command {
        cli::Command::Serve(args) => server::main(args, cli.data_dir.as_deref()),
        _ => cli::run_client(&cli),
    };
    std::process::exit(code);
}
