//! Reading a guide written in Markdown as something to run: its shell blocks, the output
//! each one shows, its pictures and the numbers of its prose; and comparing an output shown
//! with a fresh one, timings aside.

use regex::Regex;
use std::sync::LazyLock;

/// One ```sh block and what the guide says it prints.
pub struct Step {
    pub script: String,
    /// The ```text block after it (before the next ```sh block): its line range in the
    /// guide and its lines.
    pub shown: Option<(std::ops::Range<usize>, Vec<String>)>,
}

/// A guide: its lines, its steps in order, its pictures (`<!-- from RUN_FILE -->` before
/// `![...](PATH)`: the file a command wrote, and where the guide shows it), and its prose.
pub struct Guide {
    pub lines: Vec<String>,
    pub steps: Vec<Step>,
    pub pictures: Vec<(String, String)>,
    pub prose: Vec<String>,
}

impl Guide {
    pub fn parse(text: &str) -> Guide {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut guide = Guide {
            lines: Vec::new(),
            steps: Vec::new(),
            pictures: Vec::new(),
            prose: Vec::new(),
        };
        let mut i = 0;
        let mut from: Option<String> = None;
        while i < lines.len() {
            let line = &lines[i];
            if let Some(kind) = line.strip_prefix("```").filter(|k| !k.is_empty()) {
                let end = i
                    + 1
                    + lines[i + 1..]
                        .iter()
                        .position(|l| l == "```")
                        .expect("an open fence");
                let body = lines[i + 1..end].to_vec();
                match (kind, guide.steps.last_mut()) {
                    ("sh", _) => guide.steps.push(Step {
                        script: body.join("\n"),
                        shown: None,
                    }),
                    ("text", Some(step)) if step.shown.is_none() => {
                        step.shown = Some((i + 1..end, body));
                    }
                    _ => {}
                }
                i = end + 1;
                continue;
            }
            if let Some(path) = line
                .strip_prefix("<!-- from ")
                .and_then(|l| l.strip_suffix(" -->"))
            {
                from = Some(path.to_string());
            } else if let Some(shown) = from.take() {
                let link = line.split("](").nth(1).and_then(|l| l.split(')').next());
                let link = link.unwrap_or_else(|| panic!("no picture after <!-- from {shown} -->"));
                guide.pictures.push((shown, link.to_string()));
            } else {
                guide.prose.push(line.clone());
            }
            i += 1;
        }
        guide.lines = lines;
        guide
    }
}

static TIMING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b\d+(\.\d+)?(ms|s)\b|\b\d+m\d+s\b|\b\d+h\d+m\b|\b\d+ tok/s\b").unwrap()
});
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"-?\d+\.\d+").unwrap());
/// Progress on stderr comes and goes with the machine's speed (see `Work` in
/// src/commands/progress.rs): not part of an output.
static PROGRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^sampling .*: (about .* in all|\d+% done)").unwrap());

/// Whether a line is progress that only a slow machine prints.
pub fn is_progress(line: &str) -> bool {
    PROGRESS.is_match(line)
}

/// `lines` with what varies from run to run masked: durations, throughputs, and the
/// columns of Markdown tables headed `wall time (s)` or `tokens/s`.
pub fn masked(lines: &[String]) -> Vec<String> {
    let timed = |cell: &str| cell.contains("tokens/s") || cell.contains("wall time");
    let mut timed_columns: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with('|') {
            out.push(TIMING.replace_all(line, "#").into_owned());
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let header = lines.get(i + 1).is_some_and(|next| next.starts_with("|-"));
        if header {
            timed_columns = (0..cells.len()).filter(|&c| timed(cells[c])).collect();
            out.push(line.clone());
        } else if line.starts_with("|-") {
            out.push(line.clone());
        } else {
            let cells: Vec<&str> = (0..cells.len())
                .map(|c| {
                    if timed_columns.contains(&c) {
                        " # "
                    } else {
                        cells[c]
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// What aligns a shown line with a fresh one when their numbers changed: the (masked)
/// line with its decimals blanked; whole numbers, steps and counts, stay.
fn shape(masked_line: &str) -> String {
    DECIMAL.replace_all(masked_line, "#").into_owned()
}

/// For each line the guide shows, the index of the fresh line it stands for, matched by
/// [`shape`] on masked lines; `...` skips any number of fresh lines (after the last one,
/// the lines shown are the end of the output). Errors say where the two part.
pub fn align(shown: &[String], fresh: &[String]) -> Result<Vec<Option<usize>>, String> {
    let (shown_m, fresh_m) = (masked(shown), masked(fresh));
    let mut at = 0;
    let mut out = Vec::with_capacity(shown.len());
    let mut skipping = false;
    for (k, line) in shown.iter().enumerate() {
        if line == "..." {
            skipping = true;
            out.push(None);
            continue;
        }
        let want = shape(&shown_m[k]);
        let tail = !shown[k..].iter().any(|l| l == "...");
        let found = if skipping && !tail {
            (at..fresh.len()).find(|&j| shape(&fresh_m[j]) == want)
        } else {
            if skipping {
                at = at.max(fresh.len().saturating_sub(shown.len() - k));
            }
            (at < fresh.len() && shape(&fresh_m[at]) == want).then_some(at)
        };
        let j = found.ok_or_else(|| {
            let rest = fresh[at.min(fresh.len())..].join("\n");
            format!("shown line {k} `{line}` has no counterpart from fresh line {at} on:\n{rest}")
        })?;
        out.push(Some(j));
        at = j + 1;
        skipping = false;
    }
    if !skipping && at != fresh.len() {
        let rest = fresh[at..].join("\n");
        return Err(format!("the output goes on after the lines shown:\n{rest}"));
    }
    Ok(out)
}

/// The numbers of a prose line worth checking: those with a decimal point, and whole
/// numbers of three digits or more (`25,327` read as `25327`).
pub fn prose_numbers(line: &str) -> Vec<String> {
    static NUMBER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\d{1,3}(,\d{3})+(\.\d+)?|\d+(\.\d+)?").unwrap());
    NUMBER
        .find_iter(line)
        .map(|m| m.as_str().replace(',', ""))
        .filter(|n| n.contains('.') || n.len() >= 3)
        .collect()
}

/// Whether `number` occurs in `text` as a whole number (`2.19` not in `2.1928`, `192` not
/// in `4192`); commas of thousands in `text` are read away too.
pub fn mentions(text: &str, number: &str) -> bool {
    let plain = text.replace(',', "");
    plain.match_indices(number).any(|(i, _)| {
        let before = plain[..i].chars().next_back();
        let rest = &plain[i + number.len()..];
        let digit_after = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
        let continues = digit_after(rest) || rest.strip_prefix('.').is_some_and(digit_after);
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.') && !continues
    })
}
