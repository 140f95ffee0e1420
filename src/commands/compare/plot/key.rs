//! The key beside the loss curves: each run's colour and label (wrapped), whether it
//! diverged or ends above the zoom, the line styles, and which curves coincide.

use super::{fail, Notes, Plotted, Run};
use crate::commands::figure::FONT;
use anyhow::Result;
use microgpt::rundir::metrics::SMOOTHING;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Characters per line of a run's label in the key.
const LEGEND_CHARS: usize = 38;
/// Characters per line of a note.
const NOTE_CHARS: usize = 46;
const LINE_HEIGHT: i32 = 20;

/// Wraps a label of comma-separated settings into lines of at most `width` characters.
pub(super) fn wrap(label: &str, width: usize) -> Vec<String> {
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

/// Wraps prose at spaces into lines of at most `width` characters.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// What the key says under a run's label, if anything.
fn run_note(p: &Plotted) -> Option<String> {
    if let Some(d) = p.diverged {
        return Some(if d.loss.is_finite() {
            format!(
                "▲ diverged at step {:.0}: loss {:.2}, above where it started ({:.2})",
                d.step, d.loss, d.start
            )
        } else {
            format!("▲ diverged at step {:.0}: the loss is not finite", d.step)
        });
    }
    p.above_zoom
        .map(|y| format!("ends above the zoom, at {y:.2}: see the whole run"))
}

pub(super) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    runs: &[Run],
    plotted: &[Plotted],
    notes: &Notes,
) -> Result<()> {
    let text: TextStyle = (FONT, 16).into();
    let small = (FONT, 14).into_font().color(&RGBColor(90, 90, 90));
    let mut y = 40;
    let say = |line: String, font: &TextStyle, y: &mut i32| -> Result<()> {
        area.draw(&Text::new(line, (34, *y), font.clone()))
            .map_err(fail)?;
        *y += LINE_HEIGHT;
        Ok(())
    };
    for (run, p) in runs.iter().zip(plotted) {
        let sample = vec![(0, y + 9), (26, y + 9)];
        area.draw(&PathElement::new(sample, p.colour.stroke_width(3)))
            .map_err(fail)?;
        for line in wrap(&run.label, LEGEND_CHARS) {
            say(line, &text, &mut y)?;
        }
        for line in run_note(p).iter().flat_map(|n| wrap_words(n, NOTE_CHARS)) {
            say(line, &small, &mut y)?;
        }
        y += 8;
    }
    y += 12;
    let key = vec![(0, y + 9), (26, y + 9)];
    area.draw(&PathElement::new(key, BLACK.stroke_width(2)))
        .map_err(fail)?;
    say(format!("train loss (EMA, β = {SMOOTHING})"), &text, &mut y)?;
    let lag = format!(
        "the mean of about the last {:.0} steps: it lags behind a falling loss",
        1.0 / (1.0 - SMOOTHING)
    );
    for line in wrap_words(&lag, NOTE_CHARS) {
        say(line, &small, &mut y)?;
    }
    if plotted.iter().any(|p| !p.val.is_empty()) {
        y += 6;
        for dash in [(0, 8), (18, 26)] {
            let path = vec![(dash.0, y + 9), (dash.1, y + 9)];
            area.draw(&PathElement::new(path, BLACK.stroke_width(2)))
                .map_err(fail)?;
        }
        area.draw(&Circle::new((13, y + 9), 4, BLACK.filled()))
            .map_err(fail)?;
        say("validation loss".into(), &text, &mut y)?;
    }
    y += 16;
    for (group, gap) in &notes.coincide {
        let names: Vec<&str> = group.iter().map(|&i| runs[i].label.as_str()).collect();
        let note = format!(
            "{} coincide: their curves are at most {gap:.3} apart, closer than the eye can tell",
            list(&names)
        );
        for line in wrap_words(&note, NOTE_CHARS) {
            say(line, &text, &mut y)?;
        }
        y += 8;
    }
    if notes.zoomed {
        let note = "Grey band: the part of the whole run the zoom shows";
        for line in wrap_words(note, NOTE_CHARS) {
            say(line, &small, &mut y)?;
        }
    }
    Ok(())
}

/// `a`, `a and b`, `a, b and c`.
fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn notes_wrap_at_spaces_and_lists_read_as_prose() {
        assert_eq!(wrap_words("a bb ccc dd", 6), ["a bb", "ccc dd"]);
        assert_eq!(list(&["relu", "gelu", "relu2"]), "relu, gelu and relu2");
    }
}
