//! The gateway as a library: [`run`] is the whole program (`serve`, the admin CLI, completions and
//! the man page), called by the thin `main.rs`; [`fuzzing`] exposes the few pure functions that
//! read the network or an administrator's input, for the cargo-fuzz targets in `fuzz/`.
//! Everything else stays private to the crate.

mod admin;
mod api_types;
mod auth;
mod cli;
mod config;
mod directory;
pub mod fuzzing;
mod inbound;
mod message;
mod queue;
mod recipients;
mod server;
mod shared;
mod signature_rules;
#[cfg(test)]
mod spf_conformance_tests;
mod spf_dns;
mod sys;
mod telemetry;
mod tls;
mod trace;

use clap::Parser;

/// Parses the command line and runs the command; the process's exit status.
pub fn run() -> i32 {
    let cli = cli::args::Cli::parse();
    match &cli.command {
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
    }
}
