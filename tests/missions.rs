//! docs/missions.md, run as written: every ```sh block runs in order in a scratch directory
//! beside `../shared` (so the guide's `../shared/data/...` paths hold), with `microgpt`
//! being this build; its output (stdout and stderr) must be the ```text block the guide
//! shows after it, timings masked and `...` skipping lines; every picture the guide shows
//! must have been written; and every number of the prose (decimals, and whole numbers of
//! three digits or more) must occur in a command or a fresh output, so none goes stale.
//!
//! `MICROGPT_BLESS=1` (what scripts/missions.sh sets) rewrites the outputs shown from the
//! fresh ones and copies the pictures into docs/ instead of failing on a difference.

mod common;
#[path = "common/guide.rs"]
mod guide;

use guide::{align, is_progress, masked, mentions, prose_numbers, Guide};
use std::path::{Path, PathBuf};
use std::process::Command;

const GUIDE: &str = "docs/missions.md";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory whose parent also holds `shared`, a link to the real `../shared`.
fn workdir(shared: &Path) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("missions");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("work")).unwrap();
    std::os::unix::fs::symlink(shared, base.join("shared")).unwrap();
    base.join("work")
}

/// Runs one step's script with bash (`-e`, `pipefail`) and returns its output lines,
/// stdout and stderr as they interleave, without the progress lines of a slow machine.
fn run(script: &str, dir: &Path) -> Vec<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_microgpt")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args([
            "-e",
            "-o",
            "pipefail",
            "-c",
            &format!("exec 2>&1\n{script}"),
        ])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("MICROGPT_BLESS")
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{GUIDE}: this failed:\n{script}\n---\n{text}"
    );
    text.lines()
        .filter(|l| !is_progress(l))
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test]
fn the_missions_guide_runs_as_written() {
    let Some(shared) = common::shared("data") else {
        return;
    };
    let bless = std::env::var_os("MICROGPT_BLESS").is_some();
    let doc = std::fs::read_to_string(root().join(GUIDE)).unwrap();
    let guide = Guide::parse(&doc);
    let dir = workdir(shared.parent().unwrap());
    let mut replaced: Vec<(std::ops::Range<usize>, Vec<String>)> = Vec::new();
    let mut seen = String::new();
    let mut problems = Vec::new();
    for step in &guide.steps {
        eprintln!("$ {}", step.script.lines().next().unwrap_or(""));
        let fresh = run(&step.script, &dir);
        seen.push_str(&step.script);
        seen.push('\n');
        seen.push_str(&fresh.join("\n"));
        seen.push('\n');
        let Some((range, shown)) = &step.shown else {
            continue;
        };
        match compare(shown, &fresh, bless) {
            Ok(Some(new)) => replaced.push((range.clone(), new)),
            Ok(None) => {}
            Err(e) => problems.push(format!("after `{}`: {e}", step.script)),
        }
    }
    for (made, shown) in &guide.pictures {
        let made = dir.join(made);
        assert!(
            made.is_file(),
            "{GUIDE} shows {shown}, but no command wrote {}",
            made.display()
        );
        let committed = root().join("docs").join(shown);
        if bless {
            std::fs::copy(&made, &committed).unwrap();
        }
        assert!(
            committed.is_file(),
            "{GUIDE} shows {shown}, which is not in docs/"
        );
    }
    for line in &guide.prose {
        for n in prose_numbers(line) {
            if !mentions(&seen, &n) {
                problems.push(format!(
                    "the prose's {n} is in no command or output: {line}"
                ));
            }
        }
    }
    if bless && !replaced.is_empty() {
        std::fs::write(root().join(GUIDE), with_outputs(&guide.lines, &replaced)).unwrap();
    }
    assert!(
        problems.is_empty(),
        "{GUIDE} is stale (scripts/missions.sh regenerates it):\n\n{}",
        problems.join("\n\n")
    );
}

/// `Ok(None)` when the output shown is the fresh one (timings aside); in bless mode
/// `Ok(Some(lines))` to show instead when it is not: the fresh output whole, or where the
/// guide skips lines (`...`), the fresh lines standing for the ones shown.
fn compare(shown: &[String], fresh: &[String], bless: bool) -> Result<Option<Vec<String>>, String> {
    // Timings alone do not make an output stale: the guide keeps the ones it shows.
    if bless && !shown.iter().any(|l| l == "...") {
        return Ok((masked(shown) != masked(fresh)).then(|| fresh.to_vec()));
    }
    let aligned = align(shown, fresh)?;
    let (shown_m, fresh_m) = (masked(shown), masked(fresh));
    let mut new = Vec::with_capacity(shown.len());
    let mut differs = Vec::new();
    for (k, j) in aligned.iter().enumerate() {
        match j {
            None => new.push("...".to_string()),
            Some(j) => {
                if shown_m[k] != fresh_m[*j] {
                    differs.push(format!("shown: {}\nfresh: {}", shown[k], fresh[*j]));
                }
                new.push(fresh[*j].clone());
            }
        }
    }
    match (differs.is_empty(), bless) {
        (true, _) => Ok(None),
        (false, true) => Ok(Some(new)),
        (false, false) => Err(differs.join("\n")),
    }
}

/// The guide's lines with the line ranges of `replaced` replaced, as text.
fn with_outputs(lines: &[String], replaced: &[(std::ops::Range<usize>, Vec<String>)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some((range, new)) = replaced.iter().find(|(r, _)| r.start == i) {
            new.iter().for_each(|l| out.push_str(&format!("{l}\n")));
            // An empty block shown is an empty range: the line at its start stays.
            if range.is_empty() {
                out.push_str(&format!("{}\n", lines[i]));
                i += 1;
            } else {
                i = range.end;
            }
            continue;
        }
        out.push_str(&format!("{}\n", lines[i]));
        i += 1;
    }
    out
}

/// The comparison itself: a changed loss is caught, a changed timing is not, `...` skips
/// lines, and numbers are found whole.
#[test]
fn the_comparison_catches_stale_numbers_only() {
    let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
    let fresh = lines(
        "sweep: 2 runs\n[1/2] a: done in 1.3s\n| run | loss | wall time (s) | tokens/s |\n|---|---:|---:|---:|\n| a | 2.1894 | 1.2 | 284086 |\nstep  50 / 100 | loss 2.4 | 91 tok/s | eta 1m02s\nwrote",
    );
    let timings = lines(
        "sweep: 2 runs\n[1/2] a: done in 9.9s\n| run | loss | wall time (s) | tokens/s |\n|---|---:|---:|---:|\n| a | 2.1894 | 7.0 | 1000 |\nstep  50 / 100 | loss 2.4 | 5 tok/s | eta 3s\nwrote",
    );
    assert_eq!(compare(&timings, &fresh, false), Ok(None));
    let mut stale = timings.clone();
    stale[4] = "| a | 2.1895 | 7.0 | 1000 |".into();
    assert!(compare(&stale, &fresh, false)
        .unwrap_err()
        .contains("2.1895"));
    // Blessing writes the fresh line where the stale one was.
    let table = "| run | loss | wall time (s) | tokens/s |\n|---|---:|---:|---:|";
    let skipping = lines(&format!("...\n{table}\n| a | 2.1895 | 7.0 | 1000 |\n..."));
    let blessed = compare(&skipping, &fresh, true).unwrap().unwrap();
    let expected = format!("...\n{table}\n| a | 2.1894 | 1.2 | 284086 |\n...");
    assert_eq!(blessed, lines(&expected));
    assert!(
        compare(&lines("sweep: 2 runs"), &fresh, false).is_err(),
        "lines left out unmarked"
    );
    assert!(compare(&lines("...\nwrote"), &fresh, false).is_ok());
    assert_eq!(
        prose_numbers("from 4,192 to 2.0670 in 20 steps, 10%"),
        ["4192", "2.0670"]
    );
    assert!(mentions("val 2.0670.", "2.0670") && mentions("params 4192 |", "4192"));
    assert!(
        !mentions("2.06701", "2.0670")
            && !mentions("14192", "4192")
            && !mentions("12.0670", "2.0670")
    );
}
