//! `roster-bench`: a closed-loop load generator for SCIM 2.0 servers.
//!
//! It sends only standard SCIM requests (RFC 7644), so it measures Roster and
//! any other SCIM server alike. Progress goes to stderr, the report to stdout.
//! Exit status: 0 when every request succeeded, 2 when some failed (the
//! report says which), 1 when the benchmark could not run.

mod cli;
mod client;
mod encode;
mod events;
mod load;
mod memory;
mod payload;
mod phases;
mod report;
mod rng;
mod scim;
mod stats;
mod webhook;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Scim(args) => execute(
            args.validate(),
            args.client_threads,
            args.json,
            scim::run(&args),
            |r| (report::to_json(r), report::to_table(r), r.total_errors()),
        ),
        Command::Events(args) => execute(
            args.validate(),
            args.client_threads,
            args.json,
            events::run(&args),
            |r| (events::to_json(r), events::to_table(r), r.total_errors()),
        ),
    }
}

/// Runs one benchmark on a fresh runtime and prints its report: the JSON
/// object, the table and the error count come from `render`.
fn execute<R>(
    valid: Result<(), String>,
    client_threads: Option<usize>,
    json: bool,
    benchmark: impl Future<Output = Result<R, String>>,
    render: impl Fn(&R) -> (serde_json::Value, String, u64),
) -> ExitCode {
    if let Err(e) = valid {
        eprintln!("roster-bench: {e}");
        return ExitCode::FAILURE;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = client_threads {
        runtime.worker_threads(threads.max(1));
    }
    let report = match runtime.build() {
        Ok(rt) => rt.block_on(benchmark),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };

    match report {
        Ok(report) => {
            let (value, table, errors) = render(&report);
            if json {
                println!("{value}");
            } else {
                print!("{table}");
            }
            if errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("roster-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
