//! Run directories outlive upgrades: a directory of every earlier format (`tests/fixtures`,
//! each written by the microgpt of its time, see its README) still samples, compares,
//! inspects and resumes, and its resume ends bit for bit where the same run, uninterrupted,
//! ended then. A directory of a newer format is refused with the advice to upgrade.

mod common;

use common::cli::*;
use microgpt::rundir::checkpoint::FORMAT_VERSION;
use microgpt::settings::DataMode;

/// Each earlier format's fixture: a run stopped after 2 of its 4 steps, and what its
/// uninterrupted run wrote (`expected/`).
const FIXTURES: &[&str] = &[
    "v1_first", // format 1 without `threads`
    "v1_last",  // format 1
    "v2_first", // format 2
    "v2_data",  // format 2 with `data` and `weight_decay`
    "v2_last",  // format 2 with `eval_windows` and the split's characters
    "v3_main",  // format 3, as main wrote it before settings could be absent
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of fixture `name` in a scratch directory of test `test`, its dataset beside it
/// and its `config.json` pointing there (the dataset's path is the one thing a run may
/// move).
fn copy(test: &str, name: &str) -> PathBuf {
    let dir = tmp(&format!("old_formats_{test}_{name}"));
    copy_dir(&fixtures().join(name), &dir);
    let data = dir.join("names.txt");
    std::fs::copy(fixtures().join("names.txt"), &data).unwrap();
    let path = dir.join("run/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["dataset"] = s(&data).into();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    dir
}

/// Every column but the wall clock, as written.
fn metrics_without_time(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(4);
            f.join(",")
        })
        .collect()
}

#[test]
fn every_earlier_format_reads_as_this_one() {
    for name in FIXTURES {
        let run = copy("read", name).join("run");
        let config = RunConfig::read(&run).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let s = &config.settings;
        // What the settings added since meant before they existed.
        assert_eq!(s.data.data, DataMode::Lines, "{name}");
        assert_eq!(s.optimizer.weight_decay, 0.0, "{name}");
        assert_eq!((s.model.n_embd, s.schedule.steps), (4, 4), "{name}");
        let threads = if *name == "v1_first" { 1 } else { 2 };
        assert_eq!(s.system.threads, threads, "{name}");
        let recorded = name.starts_with("v3") || *name == "v2_last";
        assert_eq!(config.split_sizes().is_some(), recorded, "{name}");
        assert_eq!(
            config.dataset_sha256.is_some(),
            name.starts_with("v3"),
            "{name}"
        );
        let model = checkpoint::load_model(&run).unwrap();
        assert_eq!(model.step, 2, "{name}");
        assert_eq!(checkpoint::latest_step(&run).unwrap(), Some(2), "{name}");
    }
}

#[test]
fn every_earlier_format_samples_compares_and_inspects() {
    let mut runs = Vec::new();
    for name in FIXTURES {
        let dir = copy("use", name);
        let run = dir.join("run");
        let out = ok(&["sample", "--run", s(&run), "--num-samples", "3"]);
        assert_eq!(out.matches("sample ").count(), 3, "{name}: {out}");
        let inspected = dir.join("inspect");
        ok(&[
            "inspect",
            "--run",
            s(&run),
            "--text",
            "kamo",
            "--out",
            s(&inspected),
        ]);
        assert!(inspected.join("inspect.md").exists(), "{name}");
        runs.push(run);
    }
    let out = tmp("old_formats_compare");
    let mut args = vec!["compare", "--out", s(&out)];
    args.extend(runs.iter().map(|r| s(r)));
    let table = ok(&args);
    assert_eq!(
        table.matches("| 336 | 2 |").count(),
        FIXTURES.len(),
        "{table}"
    );
}

#[test]
fn every_earlier_format_resumes_where_its_uninterrupted_run_ended() {
    for name in FIXTURES {
        let dir = copy("resume", name);
        let run = dir.join("run");
        ok(&["train", "--resume", s(&run), "--quiet"]);
        let expected = dir.join("expected");
        assert_eq!(
            metrics_without_time(&run.join("metrics.csv")),
            metrics_without_time(&expected.join("metrics.csv")),
            "{name}: the resumed steps differ from the uninterrupted run's"
        );
        let samples = |d: &Path| std::fs::read_to_string(d.join("samples.txt")).unwrap();
        assert_eq!(samples(&run), samples(&expected), "{name}");
        // Resumed, the directory is of this format: its checkpoint replaced the old one.
        assert_eq!(
            RunConfig::read(&run).unwrap().format_version,
            FORMAT_VERSION
        );
        assert!(
            run.join("checkpoints/step-00000004/manifest.json").exists(),
            "{name}"
        );
        assert!(!run.join("model.safetensors").exists(), "{name}");
        // And it trains on, past its end.
        ok(&["train", "--resume", s(&run), "--steps", "6", "--quiet"]);
        assert_eq!(rows(&run).len(), 6, "{name}");
    }
}

#[test]
fn an_earlier_format_extends_past_its_end_at_once() {
    let run = copy("extend", "v1_first").join("run");
    ok(&["train", "--resume", s(&run), "--steps", "5", "--quiet"]);
    assert_eq!(rows(&run).len(), 5);
    ok(&["sample", "--run", s(&run), "--num-samples", "1"]);
}

#[test]
fn a_newer_format_is_refused_with_the_advice_to_upgrade() {
    let dir = copy("newer", "v3_main");
    let run = dir.join("run");
    let path = run.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["format_version"] = (FORMAT_VERSION + 1).into();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let (out, data) = (dir.join("out"), dir.join("names.txt"));
    for args in [
        vec!["sample", "--run", s(&run)],
        vec!["compare", s(&run), "--out", s(&out)],
        vec!["inspect", "--run", s(&run), "--text", "kamo"],
        vec!["train", "--resume", s(&run)],
        vec!["train", "--input", s(&data), "--out", s(&run)],
    ] {
        let err = fails(&args);
        let newer = format!(
            "made by a newer version of microgpt (format {}",
            FORMAT_VERSION + 1
        );
        assert!(
            err.contains(&newer) && err.contains("upgrade microgpt"),
            "{args:?}: {err}"
        );
    }
}
