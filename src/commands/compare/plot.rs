//! `compare`'s plot: the whole run on top (the first steps included; linear, or log when a
//! run diverges) and, below it, a zoom on the runs' robust extent (see
//! [`crate::commands::curves`]) marked as a band on the whole run; the key beside them says
//! which run diverged and which curves coincide. With `--log-y`, one log plot of everything.

use super::{Curve, Run};
use crate::commands::curves::{self, Divergence, YRange};
use crate::commands::figure::{encode_png, register_font, Axis, FONT, PALETTE};
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

mod key;

const SIZE: (u32, u32) = (1400, 900);
/// The key goes beside the plot, so it never hides a curve.
const LEGEND_WIDTH: u32 = 400;
/// The whole run's panel, above the zoom.
const WHOLE_HEIGHT: u32 = 330;
/// A zoom is drawn when its span is at most this fraction of the whole run's.
const ZOOM_WORTH: f64 = 0.6;
/// Curves closer than this fraction of the plot's height look like one line.
const COINCIDE: f64 = 0.01;
/// The band of the whole run that the zoom shows.
const BAND: RGBColor = RGBColor(225, 225, 225);

/// Everything drawn of one run.
struct Plotted {
    colour: RGBColor,
    train: Curve,
    val: Curve,
    diverged: Option<Divergence>,
    /// The last smoothed loss, when it lies above the zoom.
    above_zoom: Option<f64>,
}

/// What the key says beside the curves.
struct Notes {
    /// Groups of runs (indices) whose curves coincide, and their largest gap.
    coincide: Vec<(Vec<usize>, f64)>,
    /// Whether a zoom is drawn.
    zoomed: bool,
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
    let mut plotted: Vec<Plotted> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (train, val) = (curves::smoothed(&r.rows), curves::validation(&r.rows));
            Plotted {
                colour: PALETTE[i % PALETTE.len()],
                diverged: curves::divergence(&r.rows, &train, &val),
                train,
                val,
                above_zoom: None,
            }
        })
        .collect();
    let pooled: Vec<Curve> = plotted
        .iter()
        .map(|p| [&p.train[..], &p.val].concat())
        .collect();
    let x = 0f64..max_step.max(1.0);
    let (whole, log) = if log_y {
        (YRange::log(&pooled), true)
    } else {
        YRange::whole(&pooled)
    };
    let zoom = YRange::robust(&pooled, max_step);
    let zoomed = !log_y && zoom.hi - zoom.lo <= ZOOM_WORTH * (whole.hi - whole.lo);
    let shown = if zoomed { zoom } else { whole };
    for p in &mut plotted {
        let last = p.train.iter().rev().map(|q| q.1).find(|y| y.is_finite());
        p.above_zoom = last.filter(|&y| zoomed && y > zoom.hi && p.diverged.is_none());
    }
    let notes = Notes {
        coincide: coinciding(&plotted, max_step, COINCIDE * (shown.hi - shown.lo)),
        zoomed,
    };
    let whole_axis = Axis::new(whole.lo, whole.hi, log, if zoomed && !log { 6 } else { 12 });
    let scale = if log { ", log scale" } else { "" };
    if zoomed {
        let (top, bottom) = plot_area.split_vertically(WHOLE_HEIGHT);
        let title = format!("The whole run{scale}: the grey band is zoomed below");
        panel(&top, &title, x.clone(), whole_axis, &plotted, Some(zoom))?;
        let title = format!(
            "Zoom: loss {:.2} to {:.2}, the grey band above",
            zoom.lo, zoom.hi
        );
        let zoom_axis = Axis::new(zoom.lo, zoom.hi, false, 12);
        panel(&bottom, &title, x, zoom_axis, &plotted, None)?;
    } else {
        let title = format!("Loss curves{scale}");
        panel(&plot_area, &title, x, whole_axis, &plotted, None)?;
    }
    key::draw(&side, runs, &plotted, &notes)?;
    root.present().map_err(fail)?;
    Ok(())
}

/// Groups of runs whose train and validation curves never lie more than `tolerance`
/// apart (after the first steps), with the largest gap in each group.
fn coinciding(plotted: &[Plotted], max_step: f64, tolerance: f64) -> Vec<(Vec<usize>, f64)> {
    let gap = |a: &Plotted, b: &Plotted| {
        let train = curves::max_gap(&a.train, &b.train, max_step)?;
        let val = curves::max_gap(&a.val, &b.val, max_step).unwrap_or(0.0);
        Some(train.max(val))
    };
    let mut groups: Vec<(Vec<usize>, f64)> = Vec::new();
    let mut grouped = vec![false; plotted.len()];
    for i in 0..plotted.len() {
        if grouped[i] {
            continue;
        }
        let mut group = (vec![i], 0.0f64);
        for j in i + 1..plotted.len() {
            // Close to every member, so a chain of small gaps does not join far curves.
            let gaps: Option<Vec<f64>> = group
                .0
                .iter()
                .map(|&k| gap(&plotted[k], &plotted[j]).filter(|g| *g <= tolerance))
                .collect();
            if let (false, Some(gaps)) = (grouped[j], gaps) {
                group.0.push(j);
                group.1 = gaps.into_iter().fold(group.1, f64::max);
                grouped[j] = true;
            }
        }
        if group.0.len() > 1 {
            groups.push(group);
        }
    }
    groups
}

/// One chart: the mesh, every run's curves, the zoomed `band` (on the whole run), and a
/// ▲ where a run diverged.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: Axis,
    plotted: &[Plotted],
    band: Option<YRange>,
) -> Result<()> {
    let (lo, hi) = (y.lo, y.hi);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(x.clone(), y.clone())
        .map_err(fail)?;
    mesh(&mut chart, &y)?;
    if let Some(b) = band {
        let rect = Rectangle::new([(x.start, b.lo), (x.end, b.hi)], BAND.mix(0.6).filled());
        chart.draw_series([rect]).map_err(fail)?;
    }
    let zoom = band.is_none();
    for p in plotted {
        let style = p.colour.stroke_width(if zoom { 2 } else { 1 });
        // Plotters pins points outside the range to its edge: draw the pieces inside it.
        for piece in curves::pieces(&p.train, lo, hi) {
            let line = LineSeries::new(piece.iter().copied(), style);
            chart.draw_series(line).map_err(fail)?;
        }
        for piece in curves::pieces(&p.val, lo, hi) {
            let dashes = DashedLineSeries::new(piece.iter().copied(), 8, 5, style);
            chart.draw_series(dashes).map_err(fail)?;
            let size = if zoom { 5 } else { 3 };
            let dots = piece
                .iter()
                .map(|&q| Circle::new(q, size, p.colour.filled()));
            chart.draw_series(dots).map_err(fail)?;
        }
        if let Some(d) = p.diverged {
            // At the point, or at the top edge when it lies above (or is not finite).
            let y = if d.loss.is_finite() {
                d.loss.min(hi)
            } else {
                hi
            };
            let mark = TriangleMarker::new((d.step, y), 10, p.colour.filled());
            chart.draw_series([mark]).map_err(fail)?;
        }
    }
    Ok(())
}

/// The grid and the labelled axes.
fn mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Axis>>,
    y: &Axis,
) -> Result<()> {
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(if y.log {
            "loss (nats per token, log scale)"
        } else {
            "loss (nats per token)"
        })
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(212, 212, 212))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|v| y.label(*v))
        .draw()
        .map_err(fail)
}
