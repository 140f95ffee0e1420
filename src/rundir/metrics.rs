//! `metrics.csv`, one row per training step, and the loss smoothing that progress lines
//! and plots share.

use crate::data::files::{hex, open_regular, read_regular_text, sha256_hex};
use crate::data::MAX_INPUT_BYTES;
use crate::rundir::checkpoint::METRICS_FILE;
use crate::rundir::lock::RunLock;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

pub const HEADER: &str = "step,loss,lr,tokens,elapsed_s,val_loss";

/// One step of a run. Floats are written with `{}`, which parses back to the same `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// 1-based.
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    /// Cumulative target tokens trained on, this step included.
    pub tokens: u64,
    /// Seconds of training (resumed runs add up their sessions) at the end of this step.
    pub elapsed_s: f64,
    /// Mean validation loss, on evaluation steps only.
    pub val_loss: Option<f64>,
}

/// The whole file: the header and `rows`.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    push_rows(&mut out, rows);
    out
}

fn push_rows(out: &mut String, rows: &[Row]) {
    for r in rows {
        let val = r.val_loss.map(|v| v.to_string()).unwrap_or_default();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            r.step, r.loss, r.lr, r.tokens, r.elapsed_s, val
        );
    }
}

/// The part of `metrics.csv` a checkpoint covers: its first `bytes` bytes, `rows` rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpan {
    pub rows: usize,
    pub bytes: u64,
    pub sha256: String,
}

/// `metrics.csv` of a running session, in the directory its writer's lock holds. It is
/// written whole once, atomically, when the session starts; each later save appends only the
/// rows since the one before, so saving stays cheap however long the run. A checkpoint
/// records the [`MetricsSpan`] it covers (kept up to date here, without re-reading the
/// file); rows past it, from a save cut short, are dropped on resume.
pub struct MetricsFile {
    written: usize,
    bytes: u64,
    hasher: Sha256,
}

impl MetricsFile {
    pub fn create(lock: &mut RunLock, rows: &[Row]) -> Result<Self> {
        let text = to_csv(rows);
        lock.write_atomic(METRICS_FILE, text.as_bytes())?;
        Ok(MetricsFile {
            written: rows.len(),
            bytes: text.len() as u64,
            hasher: Sha256::new_with_prefix(text.as_bytes()),
        })
    }

    /// The rows written so far, as a checkpoint records them.
    pub fn span(&self) -> MetricsSpan {
        MetricsSpan {
            rows: self.written,
            bytes: self.bytes,
            sha256: hex(&self.hasher.clone().finalize()),
        }
    }

    /// Appends `rows[written..]`: `rows` is the session's whole, growing list. The file
    /// must still be the one this session wrote.
    pub fn append(&mut self, lock: &mut RunLock, rows: &[Row]) -> Result<()> {
        let mut text = String::new();
        push_rows(&mut text, &rows[self.written..]);
        lock.append(METRICS_FILE, self.bytes, text.as_bytes())?;
        self.written = rows.len();
        self.bytes += text.len() as u64;
        self.hasher.update(text.as_bytes());
        Ok(())
    }
}

/// The rows of `metrics.csv` that `span` covers, checked against its checksum; what
/// follows them (steps past the checkpoint) is not read.
pub fn read_span(path: &Path, span: &MetricsSpan) -> Result<Vec<Row>> {
    let changed = || {
        format!(
            "{} is not the one the checkpoint at step {} was saved with: it was changed",
            path.display(),
            span.rows
        )
    };
    let mut file = open_regular(path)?;
    let mut covered = Vec::new();
    // A span longer than any metrics file is a damaged manifest: refused before reading.
    let want = span.bytes.min(MAX_INPUT_BYTES + 1);
    (&mut file)
        .take(want)
        .read_to_end(&mut covered)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if covered.len() as u64 != span.bytes || sha256_hex(&covered) != span.sha256 {
        bail!("{}", changed());
    }
    let text = std::str::from_utf8(&covered)
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let rows = parse(text, path)?;
    if rows.len() != span.rows || rows.iter().enumerate().any(|(i, r)| r.step != i + 1) {
        bail!(
            "{} does not hold steps 1..={} of the checkpoint",
            path.display(),
            span.rows
        );
    }
    Ok(rows)
}

/// Parses [`to_csv`]'s output; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Row>> {
    // A last line without its newline is an append cut short: not a step that was saved.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut lines = complete.lines();
    if lines.next() != Some(HEADER) {
        bail!("{} does not start with the header {HEADER}", path.display());
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            parse_row(line).with_context(|| format!("{} line {}: {line:?}", path.display(), i + 2))
        })
        .collect()
}

fn parse_row(line: &str) -> Result<Row> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != 6 {
        bail!("expected 6 fields, found {}", f.len());
    }
    Ok(Row {
        step: f[0].parse()?,
        loss: f[1].parse()?,
        lr: f[2].parse()?,
        tokens: f[3].parse()?,
        elapsed_s: f[4].parse()?,
        val_loss: if f[5].is_empty() {
            None
        } else {
            Some(f[5].parse()?)
        },
    })
}

/// Every row of `path`, a regular file of at most [`MAX_INPUT_BYTES`].
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let text = read_regular_text(path, MAX_INPUT_BYTES)?;
    parse(&text, path)
}

/// How much of the past the smoothed loss keeps per step (a window of about 50 steps).
pub const SMOOTHING: f64 = 0.98;

/// Exponential moving average with bias correction, so the first values are not pulled
/// towards zero.
#[derive(Clone, Debug)]
pub struct Ema {
    beta: f64,
    avg: f64,
    weight: f64,
}

impl Ema {
    pub fn new(beta: f64) -> Self {
        Ema {
            beta,
            avg: 0.0,
            weight: 0.0,
        }
    }

    /// Adds `x` and returns the smoothed value.
    pub fn push(&mut self, x: f64) -> f64 {
        self.avg = self.beta * self.avg + (1.0 - self.beta) * x;
        self.weight = self.beta * self.weight + (1.0 - self.beta);
        self.avg / self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_bit_for_bit() {
        let rows = vec![
            Row {
                step: 1,
                loss: 3.295_836_866_004_329,
                lr: 0.01,
                tokens: 6,
                elapsed_s: 0.000_123_4,
                val_loss: None,
            },
            Row {
                step: 2,
                loss: 1.0 / 3.0,
                lr: 0.009_99,
                tokens: 11,
                elapsed_s: 1e-7,
                val_loss: Some(2.0 / 7.0),
            },
        ];
        let text = to_csv(&rows);
        assert!(text.starts_with("step,loss,lr,tokens,elapsed_s,val_loss\n1,"));
        assert_eq!(parse(&text, Path::new("m.csv")).unwrap(), rows);
        let err = parse("step,loss\n", Path::new("m.csv")).unwrap_err();
        assert!(err.to_string().contains("header"), "{err}");
    }

    #[test]
    fn ema_starts_at_the_first_value() {
        let mut e = Ema::new(0.9);
        assert!((e.push(2.0) - 2.0).abs() < 1e-12);
        let s = e.push(1.0);
        assert!(s > 1.0 && s < 2.0);
    }

    #[test]
    fn appends_only_new_rows_and_ignores_a_torn_last_line() {
        let row = |step: usize| Row {
            step,
            loss: 1.0 / step as f64,
            lr: 0.01,
            tokens: 7 * step as u64,
            elapsed_s: 0.5 * step as f64,
            val_loss: (step == 3).then_some(2.5),
        };
        let dir = std::env::temp_dir().join(format!("microgpt-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.csv");
        let mut lock = RunLock::acquire(&dir).unwrap();
        let mut rows = vec![row(1)];
        let mut file = MetricsFile::create(&mut lock, &rows).unwrap();
        rows.extend([row(2), row(3)]);
        file.append(&mut lock, &rows).unwrap();
        file.append(&mut lock, &rows).unwrap(); // nothing new: nothing written
        rows.push(row(4));
        file.append(&mut lock, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, to_csv(&rows));
        assert_eq!(read(&path).unwrap(), rows);

        let torn = format!("{text}5,0.2,0.0");
        assert_eq!(parse(&torn, &path).unwrap(), rows);
        let broken = format!("{text}5,x,0.01,35,2.5,\n");
        assert!(parse(&broken, &path)
            .unwrap_err()
            .to_string()
            .contains("line 6"));
        // A file changed behind the writer's back is not appended to.
        std::fs::write(&path, "step,loss,lr,tokens,elapsed_s,val_loss\n").unwrap();
        rows.push(row(5));
        let err = file.append(&mut lock, &rows).unwrap_err().to_string();
        assert!(err.contains("was replaced or changed"), "{err}");
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
