//! `bench-node`: one node's load (`run`), a test's plan (`check`), the built-in target (`target`).
//! A thin shell over [`benchmaster::node::cli`]. Exit codes: 0 done, 1 failed, 2 bad input, 4 a
//! threshold failed (`run` alone), 130 interrupted (the result is still written).

use std::process::ExitCode;

use benchmaster::node::cli::{self, Cli};
use clap::{error::ErrorKind, CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.docs.wanted() {
        return match cli.docs.write(Cli::command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-node: cannot write to standard output: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(command) = cli.command else {
        Cli::command()
            .error(
                ErrorKind::MissingSubcommand,
                "a subcommand is required: run, check or target",
            )
            .exit()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(cli::run(command));
    // Do not wait for the blocking stdin reader: it only ends with the master's pipe.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code();
            eprintln!("bench-node: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}
