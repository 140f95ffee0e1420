//! The `compare` command: loss curves of several runs (`loss_curves.svg`/`.png`) and a
//! summary table (`summary.md`/`.csv`).

use anyhow::{anyhow, bail, Context, Result};
use microgpt::checkpoint::{RunConfig, METRICS_FILE};
use microgpt::curves::{self, Point, YRange};
use microgpt::files::write_atomic;
use microgpt::metrics::{self, Row, SMOOTHING};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SIZE: (u32, u32) = (1400, 750);
/// The key goes beside the plot, so it never hides a curve.
const LEGEND_WIDTH: u32 = 400;
/// Characters per line of a run's label in the key.
const LEGEND_CHARS: usize = 38;
const FONT: &str = "sans-serif";

/// Tableau 10: distinct hues that survive grey-scale printing reasonably.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

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

/// Compares the runs in `dirs`, writing to `out`, on a linear loss axis.
pub fn run(dirs: &[PathBuf], out: &Path) -> Result<()> {
    run_with_scale(dirs, out, false)
}

/// [`run`], with the loss on a log scale if `log_y`.
pub fn run_with_scale(dirs: &[PathBuf], out: &Path, log_y: bool) -> Result<()> {
    let mut runs = dirs
        .iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>>>()?;
    label(&mut runs);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
        &runs,
        log_y,
    )?;
    write_atomic(&out.join("loss_curves.svg"), svg.as_bytes())?;

    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
        &runs,
        log_y,
    )?;
    write_atomic(&out.join("loss_curves.png"), &encode_png(&pixels, SIZE)?)?;

    let (md, csv) = summary(&runs);
    write_atomic(&out.join("summary.md"), md.as_bytes())?;
    write_atomic(&out.join("summary.csv"), csv.as_bytes())?;
    print!("{md}");
    println!(
        "\nwrote loss_curves.svg, loss_curves.png, summary.md and summary.csv to {}",
        out.display()
    );
    Ok(())
}

/// DejaVu Sans, embedded, so PNG text needs no system font libraries.
fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if !ok {
        bail!("the embedded font failed to load");
    }
    Ok(())
}

/// Everything drawn of one run.
struct Plotted {
    colour: RGBColor,
    train: Curve,
    val: Curve,
    /// Where the curves leave the y range after the first steps, and their highest value.
    leaves: Option<(Point, f64)>,
}

fn fail<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("cannot draw the loss curves: {e}")
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[Run], log_y: bool) -> Result<()> {
    register_font()?;
    root.fill(&WHITE).map_err(fail)?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let max_step = runs.iter().map(|r| r.last().step).max().unwrap_or(1) as f64;
    let series: Vec<(Curve, Curve)> = runs
        .iter()
        .map(|r| (curves::smoothed(&r.rows), curves::validation(&r.rows)))
        .collect();
    let pooled: Vec<Curve> = series.iter().map(|(t, v)| [&t[..], v].concat()).collect();
    let range = if log_y {
        YRange::log(&pooled)
    } else {
        YRange::robust(&pooled, max_step)
    };
    let plotted: Vec<Plotted> = series
        .into_iter()
        .enumerate()
        .map(|(i, (train, val))| {
            // Each curve on its own: the earliest that leaves, and the highest point.
            let leaves = [range.leaves(&train, max_step), range.leaves(&val, max_step)]
                .into_iter()
                .flatten()
                .reduce(|a, b| (if a.0 .0 <= b.0 .0 { a.0 } else { b.0 }, a.1.max(b.1)));
            Plotted {
                colour: PALETTE[i % PALETTE.len()],
                train,
                val,
                leaves,
            }
        })
        .collect();
    let mut builder = ChartBuilder::on(&plot_area);
    builder
        .caption("Loss curves", (FONT, 30))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75);
    let x = 0f64..max_step.max(1.0);
    if log_y {
        let y = (range.lo..range.hi).log_scale();
        let mut chart = builder.build_cartesian_2d(x, y).map_err(fail)?;
        plot(
            &mut chart,
            &plotted,
            range,
            "loss (nats per token, log scale)",
        )?;
    } else {
        let mut chart = builder
            .build_cartesian_2d(x, range.lo..range.hi)
            .map_err(fail)?;
        plot(&mut chart, &plotted, range, "loss (nats per token)")?;
    }
    legend(&legend_area, runs, &plotted)?;
    root.present().map_err(fail)?;
    Ok(())
}

/// The mesh and every run's curves; a curve that leaves the range gets a triangle at the
/// edge where it leaves.
fn plot<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    plotted: &[Plotted],
    range: YRange,
    y_desc: &str,
) -> Result<()> {
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .label_style((FONT, 17))
        .axis_desc_style((FONT, 20))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(fail)?;
    for p in plotted {
        let style = p.colour.stroke_width(2);
        // Plotters pins points outside the range to its edge: draw the pieces inside it.
        for piece in curves::pieces(&p.train, range.lo, range.hi) {
            let line = LineSeries::new(piece.iter().copied(), style);
            chart.draw_series(line).map_err(fail)?;
        }
        for piece in curves::pieces(&p.val, range.lo, range.hi) {
            let dashes = DashedLineSeries::new(piece.iter().copied(), 8, 5, style);
            chart.draw_series(dashes).map_err(fail)?;
            let dots = piece.iter().map(|&q| Circle::new(q, 5, p.colour.filled()));
            chart.draw_series(dots).map_err(fail)?;
        }
        if let Some(((step, _), _)) = p.leaves {
            let mark = TriangleMarker::new((step, range.hi), 9, p.colour.filled());
            chart.draw_series([mark]).map_err(fail)?;
        }
    }
    Ok(())
}

/// Wraps a label of comma-separated settings into lines of at most `width` characters.
fn wrap(label: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in label.split(", ") {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 2 + part.chars().count() <= width => {
                line.push_str(", ");
                line.push_str(part);
            }
            Some(line) => {
                line.push(',');
                lines.push(part.to_string());
            }
            None => lines.push(part.to_string()),
        }
    }
    lines
}

/// The key beside the plot: each run's colour and label (wrapped), whether it leaves the
/// plot, then the line styles.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    runs: &[Run],
    plotted: &[Plotted],
) -> Result<()> {
    let text = (FONT, 16).into_font();
    let small = (FONT, 14).into_font().color(&RGBColor(90, 90, 90));
    let line_height = 20;
    let mut y = 70;
    for (run, p) in runs.iter().zip(plotted) {
        let sample = vec![(0, y + 9), (26, y + 9)];
        area.draw(&PathElement::new(sample, p.colour.stroke_width(3)))
            .map_err(fail)?;
        for line in wrap(&run.label, LEGEND_CHARS) {
            area.draw(&Text::new(line, (34, y), text.clone()))
                .map_err(fail)?;
            y += line_height;
        }
        if let Some(((step, _), top)) = p.leaves {
            let note = format!("▲ above the plot from step {step:.0} (up to {top:.2})");
            area.draw(&Text::new(note, (34, y), small.clone()))
                .map_err(fail)?;
            y += line_height;
        }
        y += 8;
    }
    y += 12;
    let key = vec![(0, y + 9), (26, y + 9)];
    area.draw(&PathElement::new(key, BLACK.stroke_width(2)))
        .map_err(fail)?;
    let ema = format!("train loss (EMA, β = {SMOOTHING})");
    area.draw(&Text::new(ema, (34, y), text.clone()))
        .map_err(fail)?;
    if plotted.iter().any(|p| !p.val.is_empty()) {
        y += line_height + 6;
        for dash in [(0, 8), (18, 26)] {
            let path = vec![(dash.0, y + 9), (dash.1, y + 9)];
            area.draw(&PathElement::new(path, BLACK.stroke_width(2)))
                .map_err(fail)?;
        }
        area.draw(&Circle::new((13, y + 9), 4, BLACK.filled()))
            .map_err(fail)?;
        area.draw(&Text::new("validation loss", (34, y), text))
            .map_err(fail)?;
    }
    Ok(())
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn long_labels_wrap_at_setting_boundaries() {
        let label = "grad_clip=1.0, init_std=0.02, lr=0.001, lr_schedule=cosine, n_embd=512";
        let lines = wrap(label, 38);
        assert_eq!(
            lines,
            [
                "grad_clip=1.0, init_std=0.02, lr=0.001,",
                "lr_schedule=cosine, n_embd=512"
            ]
        );
        assert_eq!(wrap("run_a", 38), ["run_a"]);
    }
}
