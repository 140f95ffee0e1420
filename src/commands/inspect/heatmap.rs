//! The attention maps: one heatmap per (layer, head) in a grid, query positions down and
//! key positions across, labelled with the characters, on one colour scale with a colour
//! bar; drawn the same way to PNG and SVG.

use crate::commands::figure::{encode_png, register_font, FONT};
use anyhow::{anyhow, bail, Result};
use microgpt::data::files::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Grey of frames, ticks and secondary text.
const GREY: RGBColor = RGBColor(120, 120, 120);
/// Matplotlib's viridis at nine even stops: dark for 0, yellow for 1, so a weight of 0
/// stays distinct from the blank (masked) cells, and greys survive printing.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 45, 123),
    (59, 82, 139),
    (44, 114, 142),
    (33, 145, 140),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// What one picture shows.
pub struct Maps<'a> {
    pub title: String,
    pub subtitle: String,
    /// Each position's input token as it reads (BOS, space and newline made visible).
    pub labels: Vec<String>,
    /// `[layer][head][query][key]`, keys `0..=query`.
    pub attention: &'a [Vec<Vec<Vec<f64>>>],
}

/// Writes `stem.png` and `stem.svg`.
pub fn write(stem: &Path, maps: &Maps) -> Result<()> {
    register_font()?;
    let layout = Layout::new(maps)?;
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, layout.size).into_drawing_area(),
        maps,
        &layout,
    )?;
    write_atomic(&with_suffix(stem, ".svg"), svg.as_bytes())?;
    let (w, h) = layout.size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    draw(
        BitMapBackend::with_buffer(&mut pixels, layout.size).into_drawing_area(),
        maps,
        &layout,
    )?;
    write_atomic(
        &with_suffix(stem, ".png"),
        &encode_png(&pixels, layout.size)?,
    )
}

/// `stem` plus `suffix`; not `with_extension`, which would cut a run named `lr=0.01`.
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(stem.as_os_str());
    s.push(suffix);
    s.into()
}

fn viridis(w: f64) -> RGBColor {
    let x = w.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Sizes and places, in pixels, decided once for both backends.
struct Layout {
    size: (u32, u32),
    /// Positions (rows and columns of every map).
    n: usize,
    cell: i32,
    tick_font: f64,
    /// Positions from one labelled to the next (1: all).
    label_every: usize,
    cols: usize,
    /// Top-left corner of the first map's cells.
    origin: (i32, i32),
    /// From one map's cells to the next map's, across and down.
    step: (i32, i32),
    /// The colour bar's left edge.
    bar_x: i32,
}

/// Rows of text above the maps: title, settings, how to read.
const HEADER: i32 = 136;
const MARGIN: i32 = 24;
/// Above each map: its "layer · head" caption.
const CAPTION: i32 = 30;
const BAR_WIDTH: i32 = 22;
/// Pixels the maps may span across or down before their cells go below legible size.
const MAX_GRID: i32 = 5000;

impl Layout {
    fn new(maps: &Maps) -> Result<Self> {
        let n = maps.labels.len();
        let (n_layer, n_head) = (maps.attention.len(), maps.attention[0].len());
        // One layer: its heads in a square-ish grid; more: a row per layer.
        let cols = if n_layer == 1 {
            (n_head as f64).sqrt().ceil() as usize
        } else {
            n_head
        };
        let rows = (n_layer * n_head).div_ceil(cols);
        // Cells shrink with the text but stay large enough to read a character in, unless
        // the grid of maps would pass MAX_GRID pixels: then they shrink further and only
        // every few positions keep a label.
        let across = cols.max(rows) as i32 * n as i32;
        let cell = (520 / n as i32)
            .clamp(13, 60)
            .min((MAX_GRID / across).max(2));
        let tick_font = (cell as f64 * 0.75).clamp(11.0, 18.0);
        let label_every = 13usize.div_ceil(cell as usize);
        let label_w = maps
            .labels
            .iter()
            .map(|l| text_width(l, tick_font))
            .max()
            .unwrap_or(0);
        let grid = n as i32 * cell;
        let left = label_w + 8;
        let below = tick_font as i32 + 14;
        let step = (left + grid + 26, CAPTION + grid + below);
        let origin = (MARGIN + left, HEADER + CAPTION);
        let bar_x = origin.0 + cols as i32 * step.0 - 10;
        let text_w = [(maps.title.as_str(), 26.0), (&maps.subtitle, 16.0)]
            .into_iter()
            .chain(HOW_TO_READ.map(|line| (line, 15.0)))
            .map(|(t, f)| text_width(t, f))
            .max()
            .unwrap_or(0);
        let width = (bar_x + BAR_WIDTH + 60 + MARGIN).max(2 * MARGIN + text_w);
        let height = origin.1 + rows as i32 * step.1 - CAPTION + MARGIN;
        if width > 8000 || height > 8000 {
            bail!("{n} positions make the attention picture too large to draw");
        }
        Ok(Layout {
            size: (width as u32, height as u32),
            n,
            cell,
            tick_font,
            label_every,
            cols,
            origin,
            step,
            bar_x,
        })
    }

    /// Top-left corner of the cells of map `i` (layer-major).
    fn corner(&self, i: usize) -> (i32, i32) {
        let (r, c) = ((i / self.cols) as i32, (i % self.cols) as i32);
        (
            self.origin.0 + c * self.step.0,
            self.origin.1 + r * self.step.1,
        )
    }
}

const HOW_TO_READ: [&str; 2] = [
    "Row: the position reading that character (the query); its cells: how much it attends to each position so far (the keys).",
    "Each row sums to 1. Blank: the future, which the causal mask hides.",
];
/// Cells at least this wide print their weight.
const VALUE_CELL: i32 = 40;

/// Pixels `text` spans in the embedded font at `size`.
fn text_width(text: &str, size: f64) -> i32 {
    (FONT, size)
        .into_font()
        .box_size(text)
        .map_or((text.chars().count() as f64 * size) as i32, |(w, _)| {
            w as i32
        })
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, maps: &Maps, l: &Layout) -> Result<()> {
    let err =
        |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw the attention maps: {e}");
    root.fill(&WHITE).map_err(err)?;
    let left = |size: f64| TextStyle::from((FONT, size)).pos(Pos::new(HPos::Left, VPos::Top));
    root.draw_text(&maps.title, &left(26.0), (MARGIN, 18))
        .map_err(err)?;
    root.draw_text(&maps.subtitle, &left(16.0), (MARGIN, 56))
        .map_err(err)?;
    for (i, line) in HOW_TO_READ.iter().enumerate() {
        root.draw_text(line, &left(15.0).color(&GREY), (MARGIN, 82 + 19 * i as i32))
            .map_err(err)?;
    }
    let mut i = 0;
    for (layer, heads) in maps.attention.iter().enumerate() {
        for (head, rows) in heads.iter().enumerate() {
            draw_map(
                &root,
                l,
                l.corner(i),
                &format!("layer {layer} · head {head}"),
                rows,
                &maps.labels,
            )
            .map_err(err)?;
            i += 1;
        }
    }
    draw_bar(&root, l).map_err(err)?;
    root.present().map_err(err)
}

/// One head's map with `caption` above, its cells' top-left corner at `(x, y)`.
fn draw_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    l: &Layout,
    (x, y): (i32, i32),
    caption: &str,
    rows: &[Vec<f64>],
    labels: &[String],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let c = l.cell;
    let side = l.n as i32 * c;
    let centred = TextStyle::from((FONT, 17.0)).pos(Pos::new(HPos::Center, VPos::Bottom));
    root.draw_text(caption, &centred, (x + side / 2, y - 8))?;
    for (q, weights) in rows.iter().enumerate() {
        for (k, &w) in weights.iter().enumerate() {
            let (cx, cy) = (x + k as i32 * c, y + q as i32 * c);
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + c, cy + c)],
                viridis(w).filled(),
            ))?;
            if c >= VALUE_CELL {
                // Light text on viridis's dark half, dark on its light half.
                let ink = if w < 0.6 { WHITE } else { BLACK };
                let style = TextStyle::from((FONT, c as f64 * 0.3))
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw_text(&format!("{w:.2}"), &style, (cx + c / 2, cy + c / 2))?;
            }
        }
    }
    root.draw(&Rectangle::new(
        [(x, y), (x + side, y + side)],
        GREY.stroke_width(1),
    ))?;
    let tick = TextStyle::from((FONT, l.tick_font));
    for (i, label) in labels.iter().enumerate().step_by(l.label_every) {
        let mid = i as i32 * c + c / 2;
        let row = tick.pos(Pos::new(HPos::Right, VPos::Center));
        root.draw_text(label, &row, (x - 5, y + mid))?;
        // A label wider than its column (⟨BOS⟩, only ever the first) hangs to the left,
        // under the row labels, instead of over its neighbours.
        let (anchor, at) = if text_width(label, l.tick_font) > c {
            (HPos::Right, x + (i as i32 + 1) * c)
        } else {
            (HPos::Center, x + mid)
        };
        root.draw_text(
            label,
            &tick.pos(Pos::new(anchor, VPos::Top)),
            (at, y + side + 4),
        )?;
    }
    Ok(())
}

/// The colour bar beside the first row of maps, 0 at the bottom and 1 at the top.
fn draw_bar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    l: &Layout,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, top) = (l.bar_x, l.origin.1);
    let height = (l.n as i32 * l.cell).max(160);
    for px in 0..height {
        let w = 1.0 - px as f64 / (height - 1) as f64;
        let y = top + px;
        root.draw(&Rectangle::new(
            [(x, y), (x + BAR_WIDTH, y + 1)],
            viridis(w).filled(),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(x, top), (x + BAR_WIDTH, top + height)],
        GREY.stroke_width(1),
    ))?;
    let caption = TextStyle::from((FONT, 15.0)).pos(Pos::new(HPos::Left, VPos::Bottom));
    root.draw_text("weight", &caption, (x - 4, top - 8))?;
    let tick = TextStyle::from((FONT, 14.0)).pos(Pos::new(HPos::Left, VPos::Center));
    for i in 0..=4 {
        let w = i as f64 / 4.0;
        let y = top + ((1.0 - w) * (height - 1) as f64).round() as i32;
        root.draw(&PathElement::new(
            vec![(x + BAR_WIDTH, y), (x + BAR_WIDTH + 5, y)],
            GREY,
        ))?;
        root.draw_text(&format!("{w:.2}"), &tick, (x + BAR_WIDTH + 8, y))?;
    }
    Ok(())
}
