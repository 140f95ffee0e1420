//! `microgpt sample`: the run's own samples, prompts, and the temperature study.

mod common;

use common::cli::*;

#[test]
fn sample_reproduces_the_runs_samples_and_takes_a_prompt() {
    let dir = tmp("sample");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "15", "--num-samples", "8"]);
    let expected: Vec<String> = std::fs::read_to_string(run.join("samples.txt"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| format!("sample {:2}: {l}", i + 1))
        .collect();
    let out = ok(&["sample", "--run", s(&run)]);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    let out = ok(&[
        "sample",
        "--run",
        s(&run),
        "--prompt",
        "zoë",
        "--seed",
        "7",
        "--num-samples",
        "4",
        "--temperature",
        "0.8",
    ]);
    assert_eq!(out.lines().count(), 4);
    assert!(
        out.lines()
            .all(|l| l.split_once(": ").unwrap().1.starts_with("zoë")),
        "{out}"
    );
    let err = fails(&["sample", "--run", s(&run), "--prompt", "kaX!"]);
    assert!(err.contains("'!', 'X'"), "{err}");
}

#[test]
fn temperature_study_reports_uniqueness_novelty_length_and_nll() {
    let dir = tmp("temperatures");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "20", "--num-samples", "0"]);
    ok(&[
        "sample",
        "--run",
        s(&run),
        "--temperatures",
        "0.2,0.5,1.0",
        "--num-samples",
        "30",
    ]);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("temperatures.json")).unwrap())
            .unwrap();
    let rows = j["temperatures"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, t) in rows.iter().zip([0.2, 0.5, 1.0]) {
        assert_eq!(row["temperature"].as_f64().unwrap(), t);
        assert_eq!(row["samples"].as_array().unwrap().len(), 30);
        for k in ["unique_frac", "novel_frac"] {
            let v = row[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
        assert!(row["mean_length"].as_f64().unwrap() >= 0.0);
        assert!(row["nll_per_char"].as_f64().unwrap() > 0.0);
    }
    let unique = |i: usize| rows[i]["unique_frac"].as_f64().unwrap();
    assert!(
        unique(0) < unique(2),
        "T=0.2 gives {} unique, T=1.0 {}: a colder softmax must repeat itself more",
        unique(0),
        unique(2)
    );
    let md = std::fs::read_to_string(run.join("temperatures.md")).unwrap();
    assert!(md.contains("| 0.5 |") && md.contains("final BOS"), "{md}");

    // A run being trained has one writer: the study says so and writes nothing.
    std::fs::remove_file(run.join("temperatures.json")).unwrap();
    let writer = microgpt::rundir::lock::RunLock::acquire(&run).unwrap();
    let err = fails(&["sample", "--run", s(&run), "--temperatures", "0.5"]);
    let holder = format!("is being trained by process {}", std::process::id());
    assert!(err.contains(&holder), "{err}");
    assert!(!run.join("temperatures.json").exists());
    drop(writer);

    fails(&["sample", "--run", s(&run), "--temperatures", "0.5,1e-310"]);
    fails(&["sample", "--run", s(&run), "--temperature", "-1"]);
}
