//! What every picture of the command line shares: the embedded font its text is drawn in,
//! PNG encoding of a drawn RGB buffer, and axes with round, labelled ticks (linear or log).

use anyhow::{bail, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::style::{FontStyle, RGBColor};
use std::sync::OnceLock;

/// The family plotters draws text in: DejaVu Sans, embedded, so no system font is needed.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font as [`FONT`] (once per process).
pub fn register_font() -> Result<()> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if !loaded {
        bail!("the embedded DejaVu font failed to load");
    }
    Ok(())
}

/// Tableau 10: distinct hues that survive grey-scale printing reasonably; the colours of
/// runs (and temperatures) in order.
pub const PALETTE: [RGBColor; 10] = [
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

/// An 8-bit RGB buffer of `w × h` pixels as PNG bytes.
pub fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(rgb)?;
    Ok(out)
}

/// An axis from `lo` to `hi`, linear or logarithmic, whose ticks are chosen here: bold grid
/// lines and labels at `ticks` (see [`ticks`]), light lines at `minor`. Plotters' own log
/// axis labels only powers of ten, so a loss axis from 2.1 to 3.3 would have none.
#[derive(Clone)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<f64>,
    pub minor: Vec<f64>,
}

impl Axis {
    /// At most about `max_ticks` labelled ticks.
    pub fn new(lo: f64, hi: f64, log: bool, max_ticks: usize) -> Self {
        let ticks = ticks(lo, hi, log, max_ticks);
        let minor = minor_ticks(&ticks, lo, hi);
        Axis {
            lo,
            hi,
            log,
            ticks,
            minor,
        }
    }

    /// Where `v` lies from `lo` (0) to `hi` (1).
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// A tick's label (see [`tick_label`]).
    pub fn label(&self, v: f64) -> String {
        tick_label(v, &self.ticks)
    }
}

impl Ranged for Axis {
    type ValueType = f64;
    // Labels always come from a formatter given to the mesh ([`Axis::label`]).
    type FormatOption = DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let pixels = (limit.1 - limit.0) as f64;
        let at = limit.0 as f64 + self.fraction(*value) * pixels;
        at.clamp(-1e9, 1e9).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }
}

/// Five light lines per tick interval (the ticks' own step, continued to both ends).
fn minor_ticks(ticks: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    if ticks.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for w in ticks.windows(2) {
        let step = (w[1] - w[0]) / 5.0;
        out.extend((1..5).map(|i| w[0] + i as f64 * step));
    }
    let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
    let (s0, s1) = (
        (ticks[1] - first) / 5.0,
        (last - ticks[ticks.len() - 2]) / 5.0,
    );
    out.extend((1..5).map(|i| first - i as f64 * s0).filter(|v| *v >= lo));
    out.extend((1..5).map(|i| last + i as f64 * s1).filter(|v| *v <= hi));
    out
}

/// Tick values for an axis from `lo` to `hi`: at most about `max` round numbers (1, 2 or
/// 5 times a power of ten apart). On a log axis: whole decades, with 2 and 5 between them
/// when they fit; an axis narrower than a decade gets the linear ticks, which are round
/// numbers too. Never empty: a range too narrow for two ticks gets its ends.
pub fn ticks(lo: f64, hi: f64, log: bool, max: usize) -> Vec<f64> {
    let inside = |v: &f64| *v >= lo && *v <= hi;
    if log && hi / lo >= 10.0 {
        let decades = (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32);
        let span = decades.clone().count();
        let every = span.div_ceil(max.max(1)).max(1);
        let at = |mantissas: &'static [f64], every: usize| -> Vec<f64> {
            decades
                .clone()
                .step_by(every)
                .flat_map(|d| mantissas.iter().map(move |m| m * 10f64.powi(d)))
                .filter(inside)
                .collect()
        };
        // The finest that fits: 1-2-5, else 1-3, else the decades (every few, if many).
        let out = [
            at(&[1.0, 2.0, 5.0], 1),
            at(&[1.0, 3.0], 1),
            at(&[1.0], every),
        ]
        .into_iter()
        .find(|t| t.len() <= max)
        .unwrap_or_default();
        if out.len() >= 2 {
            return out;
        }
    }
    let step = tick_step(hi - lo, max);
    let first = (lo / step - 1e-9).ceil() as i64;
    let out: Vec<f64> = (first..)
        .map(|i| i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .take(max * 2)
        .collect();
    if out.len() >= 2 {
        out
    } else {
        vec![lo, hi]
    }
}

/// The round step (1, 2 or 5 times a power of ten) that cuts `span` into at most `max`.
fn tick_step(span: f64, max: usize) -> f64 {
    let raw = span / max.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

/// A tick's label: as many decimals as the ticks need to differ (at most 6), the
/// exponent form beyond a million.
pub fn tick_label(value: f64, ticks: &[f64]) -> String {
    if value.abs() >= 1e6 {
        return format!("{value:e}");
    }
    let decimals = (0..=6)
        .find(|&d| {
            let shown: Vec<String> = ticks.iter().map(|t| format!("{t:.d$}")).collect();
            let distinct: std::collections::HashSet<&String> = shown.iter().collect();
            let exact = ticks.iter().zip(&shown).all(|(t, s)| {
                let back: f64 = s.parse().unwrap_or(f64::NAN);
                (back - t).abs() <= t.abs() * 1e-9
            });
            distinct.len() == ticks.len() && exact
        })
        .unwrap_or(6);
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(lo: f64, hi: f64, log: bool) -> Vec<String> {
        let t = ticks(lo, hi, log, 8);
        t.iter().map(|v| tick_label(*v, &t)).collect()
    }

    #[test]
    fn linear_ticks_are_round_and_labelled_with_the_decimals_they_need() {
        assert_eq!(
            labels(2.13, 2.52, false),
            ["2.15", "2.20", "2.25", "2.30", "2.35", "2.40", "2.45", "2.50"]
        );
        assert_eq!(
            labels(0.0, 3.3, false),
            ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0"]
        );
        assert_eq!(
            labels(-5.0, 800.0, false),
            ["0", "200", "400", "600", "800"]
        );
    }

    #[test]
    fn log_ticks_have_labels_however_narrow_or_wide_the_range() {
        // Narrower than a decade: the linear ticks, so a log axis is never unlabelled.
        assert_eq!(
            labels(2.1, 3.4, true),
            ["2.2", "2.4", "2.6", "2.8", "3.0", "3.2", "3.4"]
        );
        assert_eq!(
            labels(1.8, 900.0, true),
            ["2", "5", "10", "20", "50", "100", "200", "500"]
        );
        assert_eq!(
            labels(1.8, 3000.0, true),
            ["3", "10", "30", "100", "300", "1000", "3000"]
        );
        assert_eq!(
            labels(1e-3, 1e12, true).len(),
            8,
            "every other decade of 16"
        );
        let tiny = ticks(2.0, 2.0 + 1e-13, true, 8);
        assert!(
            tiny.len() >= 2 && tiny.windows(2).all(|w| w[0] < w[1]),
            "{tiny:?}"
        );
    }
}
