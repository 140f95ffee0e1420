//! The house rules, checked: the folders of `src/` are layers whose uses point one way (down),
//! the library never imports clap (only `cli/`, `commands/` and `main.rs` do), and no source
//! file or function grows past what a reader takes in at once.

use std::collections::BTreeSet;
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

/// The folders of `src/` from the bottom up: each may use only those before it. The library
/// comes first; the binary side (`cli/`, `commands/`, `main.rs`) sits on top of it.
const LAYERS: &[&str] = &[
    "numerics", "model", "settings", "data", "rundir", "training", "cli", "commands", "main.rs",
];
const LIBRARY: usize = 6;

/// The layer a `src/`-relative path belongs to (`lib.rs` only declares the folders).
fn layer(rel: &str) -> Option<usize> {
    let top = rel.split('/').next().unwrap();
    LAYERS.iter().position(|l| *l == top)
}

/// `text` without its comments, so a doc comment that names another folder is no
/// dependency (string literals are kept: no source names a module in one).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let line_comment = rest.find("//");
        let block_comment = rest.find("/*");
        match (line_comment, block_comment) {
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |n| &rest[l + n..]);
            }
            (_, Some(b)) => {
                out.push_str(&rest[..b]);
                rest = rest[b..].find("*/").map_or("", |e| &rest[b + e + 2..]);
            }
            _ => {
                out.push_str(rest);
                rest = "";
            }
        }
    }
    out
}

/// The folders (layers) that `text`, a file of `layer`, names through `prefix`.
fn named_layers(text: &str, prefix: &str) -> BTreeSet<usize> {
    text.match_indices(prefix)
        .filter_map(|(i, _)| {
            let name: String = text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            LAYERS.iter().position(|l| *l == name)
        })
        .collect()
}

#[test]
fn only_the_binary_side_knows_clap() {
    let offenders: Vec<String> = files()
        .into_iter()
        .filter(|(rel, text)| {
            layer(rel).is_none_or(|l| l < LIBRARY)
                && (code(text).contains("clap") || code(text).contains("cli::"))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        offenders.is_empty(),
        "library modules naming clap or cli: {offenders:?}"
    );
}

#[test]
fn every_folder_uses_only_the_folders_below_it() {
    let mut upward = Vec::new();
    for (rel, text) in files() {
        if rel == "lib.rs" {
            continue;
        }
        let own = layer(&rel).unwrap_or_else(|| panic!("src/{rel} is in no folder of LAYERS"));
        let text = code(&text);
        // In the library `crate::` names library folders; on the binary side it names the
        // binary's own, and `microgpt::` the library's.
        let mut used = named_layers(&text, "crate::");
        used.extend(named_layers(&text, "microgpt::"));
        for other in used.into_iter().filter(|&l| l > own) {
            upward.push(format!(
                "src/{rel} ({}) uses {}",
                LAYERS[own], LAYERS[other]
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "uses that point up the layers {LAYERS:?}:\n{}",
        upward.join("\n")
    );
}

#[test]
fn comments_are_not_dependencies() {
    let text = "use crate::model::x; // crate::training::y\n/* crate::rundir */ crate::data";
    assert_eq!(
        named_layers(&code(text), "crate::"),
        [1, 3].into_iter().collect()
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
