//! `portcullis`: the gateway (`serve`) and the admin CLI for a running gateway (everything else).
//! Thin on purpose: parsing lives in `cli`, the server in `server`.

mod admin;
mod api_types;
mod auth;
mod cli;
mod config;
mod directory;
mod inbound;
mod message;
mod queue;
mod recipients;
mod server;
mod shared;
mod sys;
mod telemetry;
mod tls;
mod trace;

use clap::Parser;

/// Sessions, trace records and replies are many small, short-lived allocations across threads;
/// mimalloc serves them with less contention and less work than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::args::Cli::parse();
    let code = match &cli.command {
        cli::args::Command::Serve(args) => {
            let overrides = config::Overrides {
                config: args.config.clone(),
                smtp_listen: args.smtp_listen,
                admin_listen: args.admin_listen,
                admin_insecure: args.admin_insecure,
            };
            server::main(&overrides, cli.data_dir.as_deref())
        }
        cli::args::Command::Completions { shell } => cli::run::completions(*shell),
        cli::args::Command::Man => cli::run::man(),
        _ => cli::run::run_client(&cli),
    };
    std::process::exit(code);
}
