//! The `train` command: a run started or resumed by the library ([`microgpt::training::run`]),
//! its progress shown as it trains, and its samples printed at the end.

use super::progress::Progress;
use crate::cli::TrainArgs;
use anyhow::{bail, Result};
use microgpt::data::Text;
use microgpt::numerics::bf16;
use microgpt::numerics::dtype::Dtype;
use microgpt::rundir::metrics::Row;
use microgpt::settings::DataMode;
use microgpt::training::interrupt::{self, Outcome};
use microgpt::training::run::{self, Observer, RunInfo};
use microgpt::training::sample::STREAM_CHARS;
use std::io::Write;
use std::ops::ControlFlow;

pub fn run(args: &TrainArgs) -> Result<Outcome> {
    // Before the run starts, so a caller that saw its first line can interrupt a step
    // boundary.
    interrupt::install()?;
    // A closed pipe or terminal must not end a run that trains: its writes fail (and are
    // dropped) rather than raise SIGPIPE, which would kill it before it saves.
    #[cfg(unix)]
    // SAFETY: sets a signal's disposition; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut shown = Shown {
        quiet: args.quiet,
        progress: None,
    };
    let trained = match &args.resume {
        None => run::train(
            &args.settings(),
            args.out.as_deref(),
            args.stop_after,
            &mut shown,
        )?,
        Some(dir) => {
            if args.out.as_ref().is_some_and(|out| out != dir) {
                bail!(
                    "--out cannot change when resuming: the run stays in {}",
                    dir.display()
                );
            }
            run::resume(dir, &args.given_settings(), args.stop_after, &mut shown)?
        }
    };
    let out = args.resume.as_ref().or(args.out.as_ref());
    if !trained.finished() {
        let at = format!("step {} of {}", trained.step, trained.steps);
        let what = match trained.outcome {
            Outcome::Interrupted => "interrupted",
            Outcome::Done => "stopped",
        };
        match out {
            Some(dir) => say_err(format_args!(
                "{what} at {at}; saved. Continue with: microgpt train --resume {}",
                dir.display()
            )),
            None => say_err(format_args!("{what} at {at}; nothing saved (no --out)")),
        }
        return Ok(trained.outcome);
    }
    // `--quiet` hides the samples only where the run directory keeps them.
    if trained.samples.is_empty() || (args.quiet && out.is_some()) {
        return Ok(Outcome::Done);
    }
    let mode = args.settings().data.data;
    match mode {
        DataMode::Lines => {
            say(format_args!(
                "\n--- inference (new, hallucinated names) ---"
            ));
            for (i, name) in trained.samples.iter().enumerate() {
                say(format_args!("sample {:2}: {name}", i + 1));
            }
        }
        DataMode::Stream => {
            say(format_args!(
                "\n--- inference ({STREAM_CHARS} characters after a newline) ---"
            ));
            say(format_args!("{}", trained.samples[0]));
        }
    }
    Ok(Outcome::Done)
}

/// What the terminal shows of a run: its facts, then a progress bar or lines.
struct Shown {
    quiet: bool,
    progress: Option<Progress>,
}

impl Observer for Shown {
    fn started(&mut self, info: &RunInfo) {
        // Said even with --quiet: the run trains on less than the file holds.
        if let Some(warning) = info.corpus.crop_warning(info.settings.model.block_size) {
            say_err(format_args!("warning: {warning}"));
        }
        let steps = info.settings.schedule.steps;
        let progress = Progress::new(self.quiet, steps, info.history);
        if !self.quiet {
            progress.say(match &info.corpus.text {
                Text::Lines { docs, .. } => format!("num docs: {}", docs.len()),
                Text::Stream { tokens, .. } => format!("num chars: {}", tokens.len()),
            });
            progress.say(format!("vocab size: {}", info.corpus.vocab.size()));
            progress.say(format!("num params: {}", info.num_params));
            if info.settings.system.dtype == Dtype::Bf16 {
                if let Ok(kernel) = bf16::kernel() {
                    progress.say(format!(
                        "bf16 GEMMs: {} ({})",
                        kernel.name(),
                        kernel.describe()
                    ));
                }
            }
        }
        self.progress = Some(progress);
    }

    fn step(&mut self, row: &Row) -> ControlFlow<()> {
        if let Some(p) = &mut self.progress {
            p.step(row);
        }
        ControlFlow::Continue(())
    }

    fn finished(&mut self) {
        if let Some(p) = &mut self.progress {
            p.finish();
        }
    }
}

/// A line to stdout; a failed write (a closed pipe) is dropped, not a panic.
fn say(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A line to stderr, as [`say`].
fn say_err(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
