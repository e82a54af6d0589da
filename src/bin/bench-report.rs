//! `bench-report`: merge node results into an HTML report, compare runs, index a workspace.
//! A thin shell over [`benchmaster::report`]. Exit codes: 0 done, 1 failed, 2 bad input, 4 a
//! threshold failed.

use std::process::ExitCode;

use benchmaster::report::args::Flags;
use benchmaster::report::job::{self, Job};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.docs.wanted() {
        return match flags.docs.write(Flags::command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-report: cannot write to standard output: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let job = match Job::try_from(flags) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("bench-report: {e}");
            return ExitCode::from(2);
        }
    };
    match job::run(job) {
        Ok(done) => {
            benchmaster::print_stdout(&done.output);
            if done.failed_thresholds > 0 {
                ExitCode::from(benchmaster::report::ci::EXIT_THRESHOLD_FAILED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            let code = if e.is_bad_input() { 2 } else { 1 };
            eprintln!("bench-report: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}
