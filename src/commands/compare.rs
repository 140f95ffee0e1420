//! The `compare` command: loss curves of several runs (`loss_curves.svg`/`.png`) and a
//! summary table (`summary.md`/`.csv`).

use anyhow::{anyhow, bail, Context, Result};
use microgpt::checkpoint::{RunConfig, METRICS_FILE};
use microgpt::files::write_atomic;
use microgpt::metrics::{self, Ema, Row, SMOOTHING};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SIZE: (u32, u32) = (1200, 750);
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
type Curve = Vec<(f64, f64)>;

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

    fn smoothed(&self) -> Curve {
        let mut ema = Ema::new(SMOOTHING);
        self.rows
            .iter()
            .map(|r| (r.step as f64, ema.push(r.loss)))
            .collect()
    }

    fn val(&self) -> Curve {
        self.rows
            .iter()
            .filter_map(|r| r.val_loss.map(|v| (r.step as f64, v)))
            .collect()
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

pub fn run(dirs: &[PathBuf], out: &Path) -> Result<()> {
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
    )?;
    write_atomic(&out.join("loss_curves.svg"), svg.as_bytes())?;

    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
        &runs,
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

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[Run]) -> Result<()> {
    register_font()?;
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw the loss curves: {e}");
    let curves: Vec<(Curve, Curve)> = runs.iter().map(|r| (r.smoothed(), r.val())).collect();
    let max_step = runs.iter().map(|r| r.last().step).max().unwrap_or(1) as f64;
    // The first steps' losses dwarf the rest: the y range starts after them, so the part
    // that tells runs apart fills the plot.
    let after_start = |p: &&(f64, f64)| p.0 > max_step * 0.05;
    let ys: Vec<f64> = curves
        .iter()
        .flat_map(|(t, v)| t.iter().chain(v).filter(after_start).map(|p| p.1))
        .collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &y| {
            (lo.min(y), hi.max(y))
        });
    let pad = ((hi - lo) * 0.05).max(0.01);
    let top = hi + pad;
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Loss curves", (FONT, 30))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..max_step.max(1.0), (lo - pad)..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (nats per token)")
        .label_style((FONT, 17))
        .axis_desc_style((FONT, 20))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(err)?;

    for (i, (run, (train, val))) in runs.iter().zip(&curves).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // Plotters pins points above the range to its edge: draw the runs of visible
        // points instead, as separate lines.
        for piece in train.split(|p| p.1 > top).filter(|p| !p.is_empty()) {
            chart
                .draw_series(LineSeries::new(
                    piece.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
        }
        let val: Curve = val.iter().copied().filter(|p| p.1 <= top).collect();
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(err)?
            .label(run.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(DashedLineSeries::new(
                val.iter().copied(),
                8,
                5,
                colour.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(val.iter().map(|&p| Circle::new(p, 5, colour.filled())))
            .map_err(err)?;
    }
    // Key to the line styles, in black, after the runs.
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(err)?
        .label(format!("train loss (EMA, β = {SMOOTHING})"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(2)));
    if curves.iter().any(|(_, v)| !v.is_empty()) {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(err)?
            .label("validation loss")
            .legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (5, 0)], BLACK.stroke_width(2))
                    + PathElement::new(vec![(19, 0), (24, 0)], BLACK.stroke_width(2))
                    + Circle::new((12, 0), 4, BLACK.filled())
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 17))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .margin(12)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
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
        let train = run.smoothed().last().map_or(f64::NAN, |p| p.1);
        let val = run.val().last().map(|p| p.1);
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
