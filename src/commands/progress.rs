//! Training progress: a bar on a terminal, a plain line every twentieth of the run
//! otherwise (logs stay short), nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use microgpt::rundir::metrics::{Ema, Row, SMOOTHING};
use std::io::IsTerminal;

enum Display {
    Bar(ProgressBar),
    Lines { every: usize },
    Quiet,
}

pub struct Progress {
    display: Display,
    total: usize,
    ema: Ema,
    /// The latest validation loss, which the bar keeps showing.
    last_val: Option<f64>,
    /// Where this session started, for its throughput and ETA.
    start: Row,
}

impl Progress {
    /// For a session that goes to step `total`; `history` holds the steps already done
    /// (a resumed run), which prime the smoothed loss.
    pub fn new(quiet: bool, total: usize, history: &[Row]) -> Self {
        let done = history.last().map_or(0, |r| r.step);
        let display = if quiet {
            Display::Quiet
        } else if std::io::stdout().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout())
                    .with_style(
                        ProgressStyle::with_template(
                            "{bar:30.cyan/blue} {pos:>5}/{len} steps | {msg}",
                        )
                        .expect("valid template"),
                    )
                    .with_position(done as u64);
            Display::Bar(bar)
        } else {
            Display::Lines {
                every: total.div_ceil(20),
            }
        };
        let mut ema = Ema::new(SMOOTHING);
        for r in history {
            ema.push(r.loss);
        }
        let last_val = history.iter().rev().find_map(|r| r.val_loss);
        let start = history.last().copied().unwrap_or(Row {
            step: 0,
            loss: f64::NAN,
            lr: 0.0,
            tokens: 0,
            elapsed_s: 0.0,
            val_loss: None,
        });
        Progress {
            display,
            total,
            ema,
            last_val,
            start,
        }
    }

    pub fn step(&mut self, row: &Row) {
        let smoothed = self.ema.push(row.loss);
        let seconds = row.elapsed_s - self.start.elapsed_s;
        let tok_per_s = (row.tokens - self.start.tokens) as f64 / seconds.max(1e-9);
        let val_text = |v: Option<f64>| v.map(|v| format!(" | val {v:.4}")).unwrap_or_default();
        let val = val_text(row.val_loss);
        self.last_val = row.val_loss.or(self.last_val);
        let steps_done = (row.step - self.start.step) as f64;
        let eta = duration((self.total - row.step) as f64 * seconds / steps_done);
        match &self.display {
            Display::Bar(bar) => {
                let val = val_text(self.last_val);
                bar.set_position(row.step as u64);
                bar.set_message(format!(
                    "loss {smoothed:.4}{val} | {tok_per_s:.0} tok/s | eta {eta}"
                ));
            }
            Display::Lines { every } => {
                if row.step.is_multiple_of(*every)
                    || row.step == self.total
                    || row.val_loss.is_some()
                {
                    println!(
                        "step {:4} / {:4} | loss {:.4} | smoothed {smoothed:.4}{val} | {tok_per_s:.0} tok/s | eta {eta}",
                        row.step, self.total, row.loss
                    );
                }
            }
            Display::Quiet => {}
        }
    }

    /// Leaves the bar where it is on screen.
    pub fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.abandon();
        }
    }
}

/// `42s`, `3m05s` or `1h02m`.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
