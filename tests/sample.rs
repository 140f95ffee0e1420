//! `microgpt sample`: the run's own samples, prompts, the temperature study (its report,
//! its picture, no progress noise for short work), and greedy decoding at temperature 0.

mod common;

use common::cli::*;
use microgpt::model::engine::Engine;
use microgpt::model::scalar::ScalarGpt;
use microgpt::numerics::rng::Rng;
use microgpt::training::sample::{continuation_steps, continue_text, continue_text_with, generate};

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
    assert!(md.contains("](temperatures.png)"), "{md}");
    let png = std::fs::read(run.join("temperatures.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    // Work of a fraction of a second says nothing on stderr (a terminal gets a bar).
    let out = microgpt(&["sample", "--run", s(&run), "--temperatures", "0.5,1"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );

    // A run being trained has one writer: the study says so and writes nothing.
    std::fs::remove_file(run.join("temperatures.json")).unwrap();
    let writer = microgpt::rundir::lock::RunLock::acquire(&run).unwrap();
    let err = fails(&["sample", "--run", s(&run), "--temperatures", "0.5"]);
    let holder = format!("is being trained by process {}", std::process::id());
    assert!(err.contains(&holder), "{err}");
    assert!(!run.join("temperatures.json").exists());
    drop(writer);

    fails(&["sample", "--run", s(&run), "--temperatures", "0.5,1e-310"]);
    fails(&["sample", "--run", s(&run), "--temperatures", "0.5,-1"]);
    fails(&["sample", "--run", s(&run), "--temperature", "-1"]);
}

/// The first largest logit: argmax as numpy and torch pick it, never `excluded`.
fn argmax(logits: &[f64], excluded: Option<usize>) -> usize {
    let candidates = (0..logits.len()).filter(|&i| Some(i) != excluded);
    candidates
        .reduce(|best, i| if logits[i] > logits[best] { i } else { best })
        .unwrap()
}

/// The logits after the last `block_size` tokens of `seq`, fed from an empty cache.
fn logits_after<E: Engine>(engine: &mut E, seq: &[usize]) -> Vec<f64> {
    let cfg = engine.config().clone();
    let mut logits = vec![0.0; cfg.vocab_size];
    engine.reset_decode();
    let window = &seq[seq.len().saturating_sub(cfg.block_size)..];
    for (pos, &t) in window.iter().enumerate() {
        engine.decode(t, pos, &mut logits);
    }
    logits
}

#[test]
fn temperature_zero_is_greedy_decoding() {
    let dir = tmp("greedy");
    let data = dataset(&dir);
    for mode in ["lines", "stream"] {
        let run = dir.join(mode);
        train_ok(
            &data,
            &run,
            &["--data", mode, "--steps", "60", "--num-samples", "0"],
        );
        let (_, model) = checkpoint::load_run(&run).unwrap();
        let cfg = &model.config;
        let bos = cfg.vocab_size - 1;
        let mut engine = ScalarGpt::new(cfg, &model.params().unwrap()).unwrap();
        let (mut a, mut b) = (Rng::new(1), Rng::new(2));
        let untouched = Rng::new(1).random();
        let (first, second) = if mode == "lines" {
            let name = generate(&mut engine, &mut a, &[], 0.0);
            // Every character is the argmax after BOS and those before it; the name ends
            // where BOS is the argmax, or where the block is full.
            let mut seq = vec![bos];
            for &id in &name {
                assert_eq!(id, argmax(&logits_after(&mut engine, &seq), None));
                seq.push(id);
            }
            if seq.len() < cfg.block_size {
                assert_eq!(argmax(&logits_after(&mut engine, &seq), None), bos);
            }
            (name, generate(&mut engine, &mut b, &[], 0.0))
        } else {
            // Longer than the block: the window slides, and BOS is never chosen.
            let n = 3 * cfg.block_size;
            let (text, _) = continue_text(&mut engine, &mut a, &[0], n, 0.0);
            let mut seq = vec![0];
            for &id in &text {
                assert_eq!(id, argmax(&logits_after(&mut engine, &seq), Some(bos)));
                seq.push(id);
            }
            assert_eq!(text.len(), n);
            // The steps reported as progress are the steps taken, and add up to the cost
            // the progress is measured against, with a prompt shorter or longer than the
            // block.
            for prompt in [vec![0], vec![0; cfg.block_size + 3]] {
                for max_new in [1, 2, cfg.block_size - 1, n] {
                    let mut steps = 0;
                    let mut rng = Rng::new(3);
                    continue_text_with(&mut engine, &mut rng, &prompt, max_new, 0.5, |s| {
                        steps += s
                    });
                    let cost = continuation_steps(prompt.len(), max_new, cfg.block_size);
                    assert_eq!(steps, cost, "prompt {} max_new {max_new}", prompt.len());
                }
            }
            (text, continue_text(&mut engine, &mut b, &[0], n, 0.0).0)
        };
        assert_eq!(first, second, "{mode}: greedy decoding depends on the RNG");
        assert_eq!(
            a.random(),
            untouched,
            "{mode}: greedy decoding drew from the RNG"
        );
    }
}
