//! The house rules, checked: the library never imports clap (only `cli.rs`, `main.rs` and
//! `commands/` do), its modules depend on each other without cycles, and no source file or
//! function grows past what a reader takes in at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 450;
const MAX_FN_LINES: usize = 80;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/`-relative path and text of every source file.
fn files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

fn binary_side(rel: &str) -> bool {
    rel == "main.rs" || rel == "cli.rs" || rel.starts_with("cli/") || rel.starts_with("commands/")
}

#[test]
fn only_the_binary_side_knows_clap() {
    let offenders: Vec<String> = files()
        .into_iter()
        .filter(|(rel, text)| {
            !binary_side(rel) && (text.contains("clap") || text.contains("cli::"))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        offenders.is_empty(),
        "library modules naming clap or cli: {offenders:?}"
    );
}

#[test]
fn library_modules_have_no_cycles() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files().into_iter().filter(|(rel, _)| !binary_side(rel)) {
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    // Depth-first search for a path back to where it started.
    fn reaches(
        deps: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        deps.get(from)
            .into_iter()
            .flatten()
            .any(|next| next == to || (seen.insert(next.clone()) && reaches(deps, next, to, seen)))
    }
    let cyclic: Vec<&String> = deps
        .keys()
        .filter(|m| reaches(&deps, m, m, &mut BTreeSet::new()))
        .collect();
    assert!(
        cyclic.is_empty(),
        "modules on a dependency cycle: {cyclic:?}\n{deps:#?}"
    );
}

#[test]
fn files_and_functions_stay_short() {
    let mut long = Vec::new();
    for (rel, text) in files() {
        let lines: Vec<&str> = text.lines().collect();
        // Unit tests at the end of a file do not count against it.
        let code = lines
            .iter()
            .position(|l| *l == "#[cfg(test)]")
            .unwrap_or(lines.len());
        if code > MAX_FILE_LINES {
            long.push(format!("{rel}: {code} lines"));
        }
        for (start, line) in lines[..code].iter().enumerate() {
            let body = line.trim_start();
            let indent = line.len() - body.len();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "unsafe fn ",
                "pub unsafe fn ",
            ]
            .iter()
            .any(|p| body.starts_with(p));
            if !is_fn || line.ends_with(';') {
                continue;
            }
            let close = format!("{}}}", " ".repeat(indent));
            if let Some(len) = lines[start..code].iter().position(|l| *l == close) {
                if len + 1 > MAX_FN_LINES {
                    long.push(format!("{rel}:{}: {} lines: {body}", start + 1, len + 1));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_FILE_LINES} lines a file or {MAX_FN_LINES} a function:\n{}",
        long.join("\n")
    );
}
