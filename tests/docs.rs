//! The pages a newcomer reads cannot go stale unnoticed: every link of README.md and docs/
//! leads to a file that exists, every `microgpt` command they show uses only flags its
//! command offers, and every figure of the README's speed table and of the benchmark tables
//! of docs/ is one the benchmark script printed (docs/bench_*.txt, its committed output).

mod common;
use common::cli::*;
use std::collections::BTreeSet;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/, with their text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The targets of the markdown links and images `[...](target)` of `text`, outside code
/// blocks (a command's output may print one).
fn links(text: &str) -> Vec<&str> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        out.extend(line.match_indices("](").filter_map(|(i, _)| {
            let rest = &line[i + 2..];
            rest.find(')').map(|end| &rest[..end])
        }));
    }
    out
}

#[test]
fn every_link_leads_to_a_file() {
    let mut broken = Vec::new();
    for (page, text) in pages() {
        for target in links(&text) {
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") {
                continue;
            }
            if !page.parent().unwrap().join(file).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

/// The `microgpt COMMAND ...` lines of the pages' code blocks, continuation lines joined.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.split(" # ").next().unwrap().trim();
        if current.is_empty() && !line.starts_with("microgpt ") {
            continue;
        }
        current.push_str(line.trim_end_matches('\\'));
        current.push(' ');
        if !line.ends_with('\\') {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn every_command_shown_uses_flags_its_command_offers() {
    let mut unknown = BTreeSet::new();
    let mut seen = 0;
    for (page, text) in pages() {
        for command in commands(&text) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(sub) = words.get(1).filter(|w| !w.starts_with('-')) else {
                continue;
            };
            let help = ok(&[sub, "--help"]);
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                let flag = flag.split('=').next().unwrap();
                seen += 1;
                if !help.contains(&format!("{flag} ")) && !help.contains(&format!("{flag}\n")) {
                    unknown.insert(format!("{}: microgpt {sub} {flag}", page.display()));
                }
            }
        }
    }
    assert!(seen > 20, "only {seen} flags found in the pages' commands");
    assert!(
        unknown.is_empty(),
        "flags their command does not offer:\n{}",
        Vec::from_iter(unknown).join("\n")
    );
}

/// Every number of `text` (thousands separators dropped, a unit or `x` after it ignored).
fn numbers(text: &str) -> Vec<f64> {
    figures(text)
        .into_iter()
        .map(|(figure, _)| figure)
        .collect()
}

#[test]
fn the_readme_speed_table_is_the_benchmark_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## Speed")
        .nth(1)
        .expect("README has a Speed section");
    let section = section.split("\n## ").next().unwrap();
    let mut printed = Vec::new();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("bench_") && name.ends_with(".txt") {
            printed.extend(numbers(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    let mut missing = Vec::new();
    let mut figures = 0;
    for row in section
        .lines()
        .filter(|l| l.starts_with('|') && !l.contains("---"))
    {
        // The measured cells (the first names the model).
        for cell in row.split('|').skip(2).map(str::trim) {
            let Some(&figure) = numbers(cell).first() else {
                continue;
            };
            figures += 1;
            let decimals = cell.split('.').nth(1).map_or(0, |d| {
                d.chars().take_while(char::is_ascii_digit).count() as i32
            });
            if !holds(&printed, figure, decimals) {
                missing.push(cell.to_string());
            }
        }
    }
    assert!(
        figures >= 6,
        "only {figures} figures found in the README's speed table"
    );
    assert!(
        missing.is_empty(),
        "README speed figures that docs/bench_*.txt (the benchmark's output) does not hold: {missing:?}"
    );
}

/// Whether `printed` holds `figure`, shown with `decimals` decimals: printed to more digits
/// than the table shows, equal once rounded as it is.
fn holds(printed: &[f64], figure: f64, decimals: i32) -> bool {
    let scale = 10f64.powi(decimals);
    printed
        .iter()
        .any(|&p| (p * scale).round() == (figure * scale).round())
}

/// Every figure of `cell` with the decimals it shows.
fn figures(cell: &str) -> Vec<(f64, i32)> {
    cell.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map(|w| w.trim_matches(|c| c == '.' || c == ','))
        .filter_map(|w| {
            let decimals = w.split('.').nth(1).map_or(0, |d| d.len() as i32);
            Some((w.replace(',', "").parse().ok()?, decimals))
        })
        .collect()
}

/// The pages whose every table must say where its figures come from.
const BENCHMARK_PAGES: &[&str] = &["docs/performance.md", "docs/bf16.md"];

/// A figure of a table: its cell, its value and the decimals it shows.
struct Figure {
    cell: String,
    value: f64,
    decimals: i32,
}

/// The figures a table's marker `<!-- figures: docs/FILE.txt; not from it: COLUMN, ... -->`
/// (on the line above it) ties to an output: every number of every cell but the first
/// (which names the row) and those of the columns named, with the decimals it shows; and
/// the output's file. `<!-- figures: none: WHY -->` ties it to none.
fn tied_figures(marker: &str, table: &[&str]) -> Option<(String, Vec<Figure>)> {
    let spec = marker
        .trim()
        .strip_prefix("<!-- figures:")?
        .strip_suffix("-->")?;
    let (file, exempt) = spec.split_once("; not from it:").unwrap_or((spec, ""));
    let file = file.trim();
    if file.starts_with("none:") {
        return None;
    }
    let cells = |row: &str| -> Vec<String> {
        let row = row.trim().trim_start_matches('|').trim_end_matches('|');
        row.split('|').map(|c| c.trim().to_string()).collect()
    };
    let header = cells(table[0]);
    let exempt: Vec<&str> = exempt.split(',').map(str::trim).collect();
    let mut out = Vec::new();
    for row in &table[2..] {
        for (column, cell) in header.iter().zip(cells(row)).skip(1) {
            if !exempt.contains(&column.as_str()) {
                let each = figures(&cell).into_iter();
                out.extend(each.map(|(value, decimals)| Figure {
                    cell: cell.clone(),
                    value,
                    decimals,
                }));
            }
        }
    }
    Some((file.to_string(), out))
}

#[test]
fn every_benchmark_table_is_its_scripts_output() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, text) in pages() {
        let page = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].starts_with('|') {
                i += 1;
                continue;
            }
            let end = (i..lines.len())
                .find(|&j| !lines[j].starts_with('|'))
                .unwrap_or(lines.len());
            let (table, marker) = (&lines[i..end], i.checked_sub(1).map(|m| lines[m]));
            let marked = marker.filter(|m| m.starts_with("<!-- figures:"));
            match marked {
                None if BENCHMARK_PAGES.contains(&page.as_str()) => problems.push(format!(
                    "{page}:{}: a table without a `<!-- figures: docs/FILE.txt -->` line above it",
                    i + 1
                )),
                None => {}
                Some(marker) => match tied_figures(marker, table) {
                    None if !marker.contains("none:") => {
                        problems.push(format!("{page}:{i}: a marker not understood: {marker}"))
                    }
                    None => {}
                    Some((file, figures)) => {
                        let Ok(output) = std::fs::read_to_string(root().join(&file)) else {
                            problems.push(format!("{page}:{i}: {file} does not exist"));
                            i = end;
                            continue;
                        };
                        let printed = numbers(&output);
                        for Figure {
                            cell,
                            value,
                            decimals,
                        } in figures
                        {
                            checked += 1;
                            if !holds(&printed, value, decimals) {
                                problems.push(format!(
                                    "{page}:{}: {value} (cell `{cell}`) is not in {file}",
                                    i + 1
                                ));
                            }
                        }
                    }
                },
            }
            i = end;
        }
    }
    assert!(
        checked >= 60,
        "only {checked} figures checked: are the markers still read?"
    );
    assert!(
        problems.is_empty(),
        "benchmark tables that are not their script's output:\n{}",
        problems.join("\n")
    );
}
