//! The pages a newcomer reads cannot go stale unnoticed: every link of README.md and docs/
//! leads to a file that exists, every `microgpt` command they show uses only flags its
//! command offers, and every figure of the README's speed table is one the benchmark script
//! printed (docs/bench_*.txt, its committed output).

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
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .filter_map(|w| w.replace(',', "").trim_matches('.').parse().ok())
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
            // Printed to more digits than the table shows: equal once rounded as it is.
            let decimals = cell.split('.').nth(1).map_or(0, |d| {
                d.chars().take_while(char::is_ascii_digit).count() as i32
            });
            let scale = 10f64.powi(decimals);
            if !printed
                .iter()
                .any(|&p| (p * scale).round() == (figure * scale).round())
            {
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
