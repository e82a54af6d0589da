//! `bench-master`: run a distributed HTTP bench over SSH (or local processes), collect the
//! results and build the report. A thin shell over [`benchmaster::master`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use benchmaster::master::{self, Args, Config};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.docs.wanted() {
        return match args.docs.write(Args::command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-master: cannot write to standard output: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-master: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-master: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(master::run(config, master::interrupted())) {
        // The run went through, with failed nodes (or unreachable hosts for --check).
        Ok(outcome) if !outcome.failed.is_empty() => ExitCode::from(3),
        // Every node ran, and a threshold failed on the merged result.
        Ok(outcome) if outcome.thresholds_failed > 0 => {
            ExitCode::from(benchmaster::report::ci::EXIT_THRESHOLD_FAILED)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-master: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
