//! `roster-bench`: a closed-loop load generator for SCIM 2.0 servers.
//!
//! It sends only standard SCIM requests (RFC 7644), so it measures Roster and
//! any other SCIM server alike. Progress goes to stderr, the report to stdout.
//! Exit status: 0 when every request succeeded, 2 when some failed (the
//! report says which), 1 when the benchmark could not run.

mod cli;
mod client;
mod encode;
mod load;
mod memory;
mod payload;
mod phases;
mod report;
mod rng;
mod scim;
mod stats;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let Command::Scim(args) = Cli::parse().command;
    if let Err(e) = args.validate() {
        eprintln!("roster-bench: {e}");
        return ExitCode::FAILURE;
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.client_threads {
        runtime.worker_threads(threads.max(1));
    }
    let report = match runtime.build() {
        Ok(rt) => rt.block_on(scim::run(&args)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };

    match report {
        Ok(report) => {
            if args.json {
                println!("{}", report::to_json(&report));
            } else {
                print!("{}", report::to_table(&report));
            }
            if report.total_errors() == 0 {
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
