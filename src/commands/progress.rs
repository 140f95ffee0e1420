//! Training progress: a bar on a terminal, a plain line every twentieth of the run
//! otherwise (logs stay short), nothing with `--quiet`. The lines are written by a thread of
//! their own and dropped when the reader stalls: no pipe, full or closed, can stall or stop
//! a run while it trains. [`Work`]: the progress of other long work (sampling) on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use microgpt::rundir::metrics::{Ema, Row, SMOOTHING};
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

enum Display {
    Bar(ProgressBar),
    Lines {
        every: usize,
        /// To the writing thread; `None` once finished.
        lines: Option<SyncSender<String>>,
        /// Says when the writing thread has written every line.
        written: Receiver<()>,
    },
    Quiet,
}

/// Lines queued for stdout beyond which new ones are dropped.
const QUEUE: usize = 64;

/// How long the end of a run waits for its progress lines to be written.
const FLUSH: Duration = Duration::from_secs(1);

/// A thread writing the lines it is sent to stdout, ignoring errors (a closed pipe).
fn line_writer() -> (SyncSender<String>, Receiver<()>) {
    let (lines, queue) = sync_channel::<String>(QUEUE);
    let (done, written) = sync_channel(1);
    std::thread::spawn(move || {
        for line in queue {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
        let _ = done.send(());
    });
    (lines, written)
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
            let (lines, written) = line_writer();
            Display::Lines {
                every: total.div_ceil(20),
                lines: Some(lines),
                written,
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
            Display::Lines { every, lines, .. } => {
                if row.step.is_multiple_of(*every)
                    || row.step == self.total
                    || row.val_loss.is_some()
                {
                    let line = format!(
                        "step {:4} / {:4} | loss {:.4} | smoothed {smoothed:.4}{val} | {tok_per_s:.0} tok/s | eta {eta}",
                        row.step, self.total, row.loss
                    );
                    // Dropped when the reader is this far behind.
                    let _ = lines.as_ref().map(|l| l.try_send(line));
                }
            }
            Display::Quiet => {}
        }
    }

    /// Writes `line` before the progress: through the writing thread when there is one.
    pub fn say(&self, line: String) {
        match &self.display {
            Display::Lines {
                lines: Some(lines), ..
            } => {
                let _ = lines.try_send(line);
            }
            _ => {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
        }
    }

    /// Leaves the bar where it is on screen; lets the lines be written (waiting a second at
    /// most), so that what follows comes after them.
    pub fn finish(&mut self) {
        match &mut self.display {
            Display::Bar(bar) => bar.abandon(),
            Display::Lines { lines, written, .. } => {
                lines.take();
                let _ = written.recv_timeout(FLUSH);
            }
            Display::Quiet => {}
        }
    }
}

/// `42s`, `3m05s` or `1h02m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Work that takes longer than this (estimated) gets progress lines off a terminal.
const LONG_S: f64 = 3.0;

/// The progress of work counted in items (samples), on stderr so stdout keeps the results:
/// a bar with an ETA on a terminal; otherwise, once the work is estimated at more than
/// [`LONG_S`], a line with the estimate, then one every tenth of the work.
pub struct Work {
    what: String,
    total: usize,
    done: usize,
    start: Instant,
    bar: Option<ProgressBar>,
    /// The next count at which a line is due (off a terminal); `None` before the estimate
    /// line.
    next_line: Option<usize>,
}

impl Work {
    /// `what` names the whole work, e.g. `sampling 3 temperatures × 200 names`.
    pub fn new(what: String, total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(
                        "{msg} {bar:30.cyan/blue} {pos}/{len} | eta {eta}",
                    )
                    .expect("valid template"),
                )
                .with_message(what.clone())
        });
        Work {
            what,
            total,
            done: 0,
            start: Instant::now(),
            bar,
            next_line: None,
        }
    }

    /// Counts `n` more items done.
    pub fn add(&mut self, n: usize) {
        self.done = (self.done + n).min(self.total);
        match &self.bar {
            Some(bar) => bar.set_position(self.done as u64),
            None => {
                if let Some(line) = self.line(self.start.elapsed().as_secs_f64()) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The line due off a terminal after `elapsed` seconds, if any: the estimate once a
    /// second of work shows the whole will take more than [`LONG_S`], then a line every
    /// tenth.
    fn line(&mut self, elapsed: f64) -> Option<String> {
        let (done, total) = (self.done, self.total);
        if done == 0 || done == total && self.next_line.is_none() {
            return None;
        }
        let estimate = elapsed / done as f64 * total as f64;
        let percent = 100 * done / total;
        match self.next_line {
            None if elapsed >= 1.0 && estimate > LONG_S => {
                self.next_line = Some(self.next_tenth());
                let all = duration(estimate);
                Some(format!(
                    "{}: about {all} in all ({percent}% done)",
                    self.what
                ))
            }
            Some(due) if done >= due => {
                self.next_line = Some(self.next_tenth());
                let (so_far, eta) = (duration(elapsed), duration(estimate - elapsed));
                Some(format!(
                    "{}: {percent}% done, {so_far} | eta {eta}",
                    self.what
                ))
            }
            _ => None,
        }
    }

    /// The first count past a multiple of a tenth of the work after `done`, or the end.
    fn next_tenth(&self) -> usize {
        let tenth = self.total.div_ceil(10).max(1);
        ((self.done / tenth + 1) * tenth).min(self.total)
    }

    /// Clears the bar; the results follow on stdout.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(total: usize, seconds_each: f64) -> Vec<String> {
        let mut work = Work {
            what: "sampling".into(),
            total,
            done: 0,
            start: Instant::now(),
            bar: None,
            next_line: None,
        };
        (1..=total)
            .filter_map(|i| {
                work.done = i;
                work.line(i as f64 * seconds_each)
            })
            .collect()
    }

    #[test]
    fn long_work_says_how_long_then_reports_every_tenth() {
        let out = lines(600, 0.5);
        assert_eq!(out[0], "sampling: about 5m00s in all (0% done)");
        assert_eq!(out[1], "sampling: 10% done, 30s | eta 4m30s");
        assert_eq!(out.last().unwrap(), "sampling: 100% done, 5m00s | eta 0s");
        assert_eq!(out.len(), 11, "{out:#?}");
    }

    #[test]
    fn short_work_prints_nothing() {
        assert!(lines(200, 0.01).is_empty());
        let one = lines(1, 10.0);
        assert!(one.is_empty(), "one item: no estimate before it is done");
        // The estimate waits for a second of work, so it is not one item's guess.
        assert_eq!(
            lines(1000, 0.01)[0],
            "sampling: about 10s in all (10% done)"
        );
    }
}
