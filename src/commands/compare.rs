//! The `compare` command: loss curves of several runs (`loss_curves.svg`/`.png`) and a
//! summary table (`summary.md`/`.csv`).

use crate::commands::curves::{self, Point};
use anyhow::{bail, Context, Result};
use microgpt::data::files::{self, write_atomic};
use microgpt::rundir::checkpoint::{RunConfig, METRICS_FILE};
use microgpt::rundir::metrics::{self, Row, SMOOTHING};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod plot;

/// (step, loss) points.
type Curve = Vec<Point>;

/// One run as `compare` sees it.
struct Run {
    dir: PathBuf,
    config: RunConfig,
    rows: Vec<Row>,
    /// The settings that tell it apart from the others.
    label: String,
}

impl Run {
    fn load(dir: &Path) -> Result<Self> {
        let config = RunConfig::read(dir)?;
        let rows = metrics::read(&dir.join(METRICS_FILE))?;
        if rows.is_empty() {
            bail!("{} has no steps yet", dir.join(METRICS_FILE).display());
        }
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            rows,
            label: String::new(),
        })
    }

    fn last(&self) -> &Row {
        self.rows.last().expect("loaded runs have rows")
    }

    fn tokens_per_s(&self) -> f64 {
        let last = self.last();
        last.tokens as f64 / last.elapsed_s.max(1e-9)
    }
}

/// Labels each run by the training settings whose values differ between the runs, else
/// by its directory name.
fn label(runs: &mut [Run]) {
    let settings: Vec<_> = runs.iter().map(|r| r.config.settings.labels()).collect();
    let differing: Vec<&String> = settings[0]
        .keys()
        .filter(|k| settings.iter().any(|s| s.get(*k) != settings[0].get(*k)))
        .collect();
    for (run, s) in runs.iter_mut().zip(&settings) {
        run.label = differing
            .iter()
            .map(|k| match &s[*k] {
                serde_json::Value::String(v) => format!("{k}={v}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
    }
    let unique: std::collections::HashSet<&String> = runs.iter().map(|r| &r.label).collect();
    if differing.is_empty() || unique.len() < runs.len() {
        for run in runs.iter_mut() {
            run.label = run.dir.file_name().map_or_else(
                || run.dir.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
        }
    }
}

/// What `compare` writes to its `--out`.
pub const OUTPUTS: [&str; 4] = [
    "loss_curves.svg",
    "loss_curves.png",
    "summary.md",
    "summary.csv",
];

/// Compares the runs in `dirs`, writing to `out`, on a linear loss axis (replacing outputs
/// there only if `force`).
pub fn run(dirs: &[PathBuf], out: &Path, force: bool) -> Result<()> {
    run_with_scale(dirs, out, false, force)
}

/// [`run`], with the loss on a log scale if `log_y`.
pub fn run_with_scale(dirs: &[PathBuf], out: &Path, log_y: bool, force: bool) -> Result<()> {
    files::refuse_clobber(out, &OUTPUTS, force)?;
    let mut runs = dirs
        .iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>>>()?;
    label(&mut runs);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    write_atomic(
        &out.join("loss_curves.svg"),
        plot::svg(&runs, log_y)?.as_bytes(),
    )?;
    write_atomic(&out.join("loss_curves.png"), &plot::png(&runs, log_y)?)?;

    let (md, csv) = summary(&runs);
    write_atomic(&out.join("summary.md"), md.as_bytes())?;
    write_atomic(&out.join("summary.csv"), csv.as_bytes())?;
    files::record_outputs(out, &OUTPUTS)?;
    print!("{md}");
    println!(
        "\nwrote loss_curves.svg, loss_curves.png, summary.md and summary.csv to {}",
        out.display()
    );
    Ok(())
}

/// `summary.md` and `summary.csv`.
fn summary(runs: &[Run]) -> (String, String) {
    let mut md = String::from(
        "# Runs\n\n![loss curves](loss_curves.png)\n\n| run | params | steps | train loss (EMA) | val loss | wall time (s) | tokens/s |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut csv = String::from(
        "run,label,params,steps,final_train_loss_ema,final_val_loss,wall_time_s,tokens_per_s\n",
    );
    for run in runs {
        let last = run.last();
        let last_finite = |c: Curve| c.into_iter().rev().map(|p| p.1).find(|y| y.is_finite());
        let train = last_finite(curves::smoothed(&run.rows)).unwrap_or(f64::NAN);
        let val = last_finite(curves::validation(&run.rows));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {train:.4} | {} | {:.1} | {:.0} |",
            run.label,
            run.config.num_params,
            last.step,
            val.map_or("–".into(), |v| format!("{v:.4}")),
            last.elapsed_s,
            run.tokens_per_s()
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{train},{},{},{}",
            csv_field(&run.dir.display().to_string()),
            csv_field(&run.label),
            run.config.num_params,
            last.step,
            val.map(|v| v.to_string()).unwrap_or_default(),
            last.elapsed_s,
            run.tokens_per_s()
        );
    }
    let _ = writeln!(
        md,
        "\nTrain loss: the exponential moving average (β = {SMOOTHING}) of the per-step loss at the last step. Val loss: the last evaluation on the held-out documents (`--val-frac`). Tokens/s: target tokens per second of training wall time (evaluations and saves included)."
    );
    (md, csv)
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
