//! The `microgpt` command line: parses the arguments and runs the command.

mod cli;
mod commands;

use cli::{Cli, Command};
use microgpt::training::interrupt::Outcome;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `microgpt sample ... | head` should end quietly, as other command-line tools do, not
    // panic on a closed stdout: take the default SIGPIPE action Rust replaces at startup.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse_with_sources();
    if let Some(limit) = cli.command.max_memory() {
        // Read by the memory check, here and in a sweep's runs.
        std::env::set_var(microgpt::training::memory::LIMIT_VAR, limit.to_string());
    }
    let result = match &cli.command {
        Command::Train(args) => commands::train::run(args),
        Command::Sample(args) => commands::sample::run(args).map(|()| Outcome::Done),
        Command::Sweep(args) => commands::sweep::run(args),
        Command::Compare(args) => {
            commands::compare::run_with_scale(&args.runs, &args.out, args.log_y, args.force)
                .map(|()| Outcome::Done)
        }
        Command::Gradcheck(args) => commands::gradcheck::run(args).map(|()| Outcome::Done),
        Command::Inspect(args) => commands::inspect::run(args).map(|()| Outcome::Done),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        // The shell's convention for "ended by SIGINT".
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(e) => {
            // One line whatever the message holds (a path with a newline); written, or
            // dropped when stderr is gone: the exit code says it all the same.
            let message: String = format!("{e:#}")
                .chars()
                .map(|c| match c.is_control() {
                    true => c.escape_default().to_string(),
                    false => c.to_string(),
                })
                .collect();
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::FAILURE
        }
    }
}
