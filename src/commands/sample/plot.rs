//! The temperature study's picture: the model's distribution of the first character it
//! samples, `softmax(logits / T)`, at each temperature side by side — what temperature does,
//! before any sample is drawn. Temperature 0 is greedy: all on the likeliest character.

use crate::commands::figure::{encode_png, register_font, Axis, FONT, PALETTE};
use anyhow::{anyhow, Result};
use microgpt::data::Vocab;
use microgpt::training::sample::{greedy, probs_at_temperature};
use plotters::prelude::*;

const SIZE: (u32, u32) = (1200, 600);
/// Characters shown one by one, likeliest first (at temperature 1); the rest are summed.
const SHOWN: usize = 12;
/// What the picture shows.
pub struct Distribution<'a> {
    /// The text the first character follows, as it reads (`⟨BOS⟩` for a name).
    pub context: &'a str,
    pub temperatures: &'a [f64],
    /// The model's logits of the first character.
    pub logits: &'a [f64],
    pub vocab: &'a Vocab,
}

impl Distribution<'_> {
    /// `[temperature][character]` probabilities, temperature 0 one-hot on the argmax.
    fn probabilities(&self) -> Vec<Vec<f64>> {
        self.temperatures
            .iter()
            .map(|&t| {
                let mut p = vec![0.0; self.logits.len()];
                if t == 0.0 {
                    p[greedy(self.logits, None)] = 1.0;
                } else {
                    probs_at_temperature(self.logits, t, &mut p);
                }
                p
            })
            .collect()
    }

    /// The bars: the [`SHOWN`] likeliest characters at temperature 1, then the rest summed.
    fn bars(&self) -> (Vec<String>, Vec<Vec<f64>>) {
        let mut order: Vec<usize> = (0..self.logits.len()).collect();
        order.sort_by(|&a, &b| self.logits[b].total_cmp(&self.logits[a]));
        let (shown, rest) = order.split_at(SHOWN.min(order.len()));
        let mut labels: Vec<String> = shown.iter().map(|&id| self.shown(id)).collect();
        let probs = self.probabilities();
        let bars = probs
            .iter()
            .map(|p| {
                let mut b: Vec<f64> = shown.iter().map(|&id| p[id]).collect();
                if !rest.is_empty() {
                    b.push(rest.iter().map(|&id| p[id]).sum());
                }
                b
            })
            .collect();
        if !rest.is_empty() {
            labels.push(format!("the other {}", rest.len()));
        }
        (labels, bars)
    }

    /// A character as the picture shows it: BOS, space and newline made visible.
    fn shown(&self, id: usize) -> String {
        if id == self.vocab.bos() {
            return "⟨BOS⟩".into();
        }
        match self.vocab.decode(&[id]).as_str() {
            " " => "␣".into(),
            "\n" => "↵".into(),
            c => c.into(),
        }
    }
}

fn fail<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("cannot draw the temperature picture: {e}")
}

/// The picture as a PNG file.
pub fn png(d: &Distribution) -> Result<Vec<u8>> {
    register_font()?;
    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
        d,
    )?;
    encode_png(&pixels, SIZE)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    d: &Distribution,
) -> Result<()> {
    root.fill(&WHITE).map_err(fail)?;
    let (labels, bars) = d.bars();
    let top = bars.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let hi = (top * 1.08).clamp(0.05, 1.0);
    let y = Axis::new(0.0, hi, false, 6);
    let caption = format!(
        "The first character after {}: softmax(logits / T)",
        d.context.replace('\n', "↵").replace(' ', "␣")
    );
    let n = labels.len();
    // One tick under each group of bars.
    let x = Axis {
        lo: -0.5,
        hi: n as f64 - 0.5,
        log: false,
        ticks: (0..n).map(|i| i as f64).collect(),
        minor: Vec::new(),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y.clone())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| labels[x.round() as usize].clone())
        .y_label_formatter(&|v| y.label(*v))
        .x_desc(format!(
            "the {} likeliest characters at T = 1, then the others together",
            n.saturating_sub(1).min(SHOWN)
        ))
        .y_desc("probability")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()
        .map_err(fail)?;
    let width = 0.8 / bars.len() as f64;
    for (j, (t, probs)) in d.temperatures.iter().zip(&bars).enumerate() {
        let colour = PALETTE[j % PALETTE.len()];
        let rects = probs.iter().enumerate().map(move |(i, &p)| {
            let x0 = i as f64 - 0.4 + j as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.9, p)], colour.filled())
        });
        let label = match t {
            0.0 => "T = 0 (greedy)".to_string(),
            t => format!("T = {t}"),
        };
        chart
            .draw_series(rects)
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .label_font((FONT, 18))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}
