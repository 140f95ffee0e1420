//! `compare`'s plot: the loss curves on a y range chosen from the runs' robust extent
//! (see [`crate::commands::curves`]), a key beside it, and an overview of every curve whole.

use super::{Curve, Run};
use crate::commands::curves::{self, Point, YRange};
use crate::commands::figure::{encode_png, register_font, FONT};
use anyhow::{anyhow, Result};
use microgpt::rundir::metrics::SMOOTHING;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

const SIZE: (u32, u32) = (1400, 900);
/// The key goes beside the plot, so it never hides a curve.
const LEGEND_WIDTH: u32 = 400;
/// The overview of every curve whole, under the key (without `--log-y`).
const OVERVIEW_HEIGHT: u32 = 290;
/// Characters per line of a run's label in the key.
const LEGEND_CHARS: usize = 38;

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

/// The plot as SVG text.
pub fn svg(runs: &[Run], log_y: bool) -> Result<String> {
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
        runs,
        log_y,
    )?;
    Ok(svg)
}

/// The plot as a PNG file.
pub fn png(runs: &[Run], log_y: bool) -> Result<Vec<u8>> {
    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
        runs,
        log_y,
    )?;
    encode_png(&pixels, SIZE)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[Run], log_y: bool) -> Result<()> {
    register_font()?;
    root.fill(&WHITE).map_err(fail)?;
    let (plot_area, side) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
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
    let x = 0f64..max_step.max(1.0);
    if log_y {
        let main = Panel::main("loss (nats per token, log scale)");
        chart(
            &plot_area,
            &main,
            x,
            (range.lo..range.hi).log_scale(),
            &plotted,
            range,
        )?;
        legend(&side, runs, &plotted)?;
    } else {
        let main = Panel::main("loss (nats per token)");
        chart(
            &plot_area,
            &main,
            x.clone(),
            range.lo..range.hi,
            &plotted,
            range,
        )?;
        let (key, overview) = side.split_vertically(SIZE.1 - OVERVIEW_HEIGHT);
        legend(&key, runs, &plotted)?;
        // What the range leaves out: every curve whole, on a log scale.
        let whole = YRange::log(&pooled);
        let y = (whole.lo..whole.hi).log_scale();
        chart(&overview, &Panel::OVERVIEW, x, y, &plotted, whole)?;
    }
    root.present().map_err(fail)?;
    Ok(())
}

/// How a chart is drawn: the main plot, or the small overview.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    font: u32,
    line: u32,
    /// Validation points and marks where curves leave the range.
    details: bool,
}

impl<'a> Panel<'a> {
    fn main(y_desc: &'a str) -> Self {
        Panel {
            caption: "Loss curves",
            y_desc,
            font: 17,
            line: 2,
            details: true,
        }
    }

    const OVERVIEW: Panel<'static> = Panel {
        caption: "Every train curve whole (log scale)",
        y_desc: "",
        font: 12,
        line: 1,
        details: false,
    };
}

fn chart<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    x: std::ops::Range<f64>,
    y: impl plotters::coord::ranged1d::AsRangedCoord<CoordDescType = Y, Value = f64>,
    plotted: &[Plotted],
    range: YRange,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, (FONT, panel.font * 3 / 2 + 4))
        .margin(if panel.details { 20 } else { 12 })
        .x_label_area_size(panel.font * 3)
        .y_label_area_size(panel.font * 4 + 7)
        .build_cartesian_2d(x, y)
        .map_err(fail)?;
    plot(&mut chart, plotted, range, panel)
}

/// The mesh and every run's curves; a curve that leaves the range gets a triangle at the
/// edge where it leaves.
fn plot<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    plotted: &[Plotted],
    range: YRange,
    panel: &Panel,
) -> Result<()> {
    chart
        .configure_mesh()
        .x_desc(if panel.details { "step" } else { "" })
        .y_desc(panel.y_desc)
        .label_style((FONT, panel.font))
        .axis_desc_style((FONT, panel.font + 3))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(fail)?;
    for p in plotted {
        let style = p.colour.stroke_width(panel.line);
        // Plotters pins points outside the range to its edge: draw the pieces inside it.
        for piece in curves::pieces(&p.train, range.lo, range.hi) {
            let line = LineSeries::new(piece.iter().copied(), style);
            chart.draw_series(line).map_err(fail)?;
        }
        if !panel.details {
            continue;
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
