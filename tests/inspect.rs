//! `microgpt inspect`: its probabilities are the sampler's at temperature 1 and its
//! attention weights the engines' own softmax weights (the tensor engine's within 1e-12 of
//! the scalar reference, lines and stream), several runs side by side, and bad input.

mod common;

use common::cli::*;
use microgpt::model::engine::Engine;
use microgpt::model::scalar::ScalarGpt;
use microgpt::training::inspect::text_tokens;
use microgpt::training::sample::probs_at_temperature;
use serde_json::Value;

/// Two layers, so the maps of a layer that reads another's output are checked too.
const TWO_LAYERS: &[&str] = &["--n-layer", "2", "--steps", "40", "--num-samples", "0"];
const TOLERANCE: f64 = 1e-12;
/// serde_json's default float parser may land one ulp off the written value (it lacks the
/// `float_roundtrip` feature): what "bit for bit" can mean for numbers read back from JSON.
const JSON_ULPS: f64 = 2.0 * f64::EPSILON;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// `|got - want|`, relative for magnitudes above 1 (losses), absolute below.
fn off(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1.0)
}

/// What the scalar engine computes for `text` on `run`, through the library:
/// the sampler's probabilities at temperature 1 per position, and the attention weights
/// `[layer][head][query][key]`.
type Reference = (Vec<usize>, Vec<Vec<f64>>, Vec<Vec<Vec<Vec<f64>>>>);

fn scalar_reference(run: &Path, text: &str) -> Reference {
    let (config, model) = checkpoint::load_run(run).unwrap();
    let cfg = &model.config;
    let tokens = text_tokens(
        &model.vocab,
        config.settings.data.data,
        text,
        cfg.block_size,
    )
    .unwrap();
    let mut engine = ScalarGpt::new(cfg, &model.params().unwrap()).unwrap();
    let mut logits = vec![0.0; cfg.vocab_size];
    let mut probs = Vec::new();
    let mut att = vec![vec![Vec::new(); cfg.n_head]; cfg.n_layer];
    engine.reset_decode();
    for (pos, &t) in tokens[..tokens.len() - 1].iter().enumerate() {
        engine.decode(t, pos, &mut logits);
        let mut p = vec![0.0; cfg.vocab_size];
        probs_at_temperature(&logits, 1.0, &mut p);
        probs.push(p);
        for (layer, heads) in att.iter_mut().enumerate() {
            for (head, rows) in heads.iter_mut().enumerate() {
                let mut w = vec![0.0; pos + 1];
                engine.attention(layer, head, &mut w);
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "a softmax row");
                rows.push(w);
            }
        }
    }
    // The mean loss of a name is the training loss of its document.
    if tokens[0] == model.vocab.bos() {
        let loss = engine.loss(&[&tokens]);
        let mean: f64 = (0..probs.len())
            .map(|i| -probs[i][tokens[i + 1]].ln())
            .sum::<f64>()
            * (1.0 / probs.len() as f64);
        assert_eq!(mean, loss, "inspect's mean loss is the training loss");
    }
    (tokens, probs, att)
}

/// The largest deviation (see [`off`]) of `report`, one run of inspect.json, from the
/// reference.
fn deviation(report: &Value, (tokens, probs, att): &Reference) -> f64 {
    let positions = report["positions"].as_array().unwrap();
    assert_eq!(positions.len(), tokens.len() - 1);
    let mut worst: f64 = 0.0;
    for (i, p) in positions.iter().enumerate() {
        assert_eq!(p["target_id"].as_u64().unwrap() as usize, tokens[i + 1]);
        let expected = probs[i][tokens[i + 1]];
        worst = worst.max(off(f(&p["p_target"]), expected));
        worst = worst.max(off(f(&p["loss"]), -expected.ln()));
        let top = p["top5"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        for t in top {
            let id = t["id"].as_u64().unwrap() as usize;
            worst = worst.max(off(f(&t["p"]), probs[i][id]));
        }
    }
    let maps = report["attention"].as_array().unwrap();
    assert_eq!(maps.len(), att.len());
    for (layer, heads) in att.iter().enumerate() {
        for (head, rows) in heads.iter().enumerate() {
            let got = maps[layer][head].as_array().unwrap();
            assert_eq!(got.len(), rows.len());
            for (q, row) in rows.iter().enumerate() {
                let got = got[q].as_array().unwrap();
                assert_eq!(got.len(), q + 1, "keys 0..=query");
                for (k, &w) in row.iter().enumerate() {
                    worst = worst.max(off(f(&got[k]), w));
                }
            }
        }
    }
    worst
}

/// Inspects `text` on `run` with the run's (tensor f64) engine and with the scalar one;
/// both must match the scalar reference, the scalar one to the bit (as far as JSON tells).
fn check_parity(run: &Path, out: &Path, text: &str) {
    let reference = scalar_reference(run, text);
    ok(&["inspect", "--run", s(run), "--text", text, "--out", s(out)]);
    let report = json(&out.join("inspect.json"));
    assert_eq!(report["engine"], "tensor f64");
    let tensor = deviation(&report, &reference);
    // Shown with --nocapture: the measured agreement.
    println!(
        "{}: tensor f64 vs scalar, max Δ = {tensor:e}",
        run.display()
    );
    assert!(tensor <= TOLERANCE, "tensor engine off by {tensor:e}");

    let scalar_out = out.join("scalar");
    let args = [
        "--text",
        text,
        "--out",
        s(&scalar_out),
        "--engine",
        "scalar",
    ];
    ok(&[&["inspect", "--run", s(run)][..], &args[..]].concat());
    let report = json(&scalar_out.join("inspect.json"));
    let scalar = deviation(&report, &reference);
    assert!(scalar <= JSON_ULPS, "scalar engine off by {scalar:e}");
}

#[test]
fn lines_run_numbers_are_the_engines_own() {
    let dir = tmp("inspect-lines");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(
        &data,
        &run,
        &[&["--engine", "tensor"][..], TWO_LAYERS].concat(),
    );
    check_parity(&run, &dir.join("out"), "zoëka");
    // A name as long as the block: its end falls outside, as in training.
    check_parity(&run, &dir.join("full"), "anzoëtaß");

    let report = json(&dir.join("out/inspect.json"));
    let first = &report["positions"][0];
    assert_eq!(
        (&first["input"], &first["target"]),
        (&"⟨BOS⟩".into(), &"z".into())
    );
    assert_eq!(report["positions"][5]["target"], "⟨BOS⟩");
    let md = std::fs::read_to_string(dir.join("out/inspect.md")).unwrap();
    assert!(md.contains("| 0 | `⟨BOS⟩` | `z` |"), "{md}");
    assert!(md.contains("![attention of run](attention.png)"), "{md}");
    for file in ["attention.png", "attention.svg"] {
        assert!(dir.join("out").join(file).metadata().unwrap().len() > 1000);
    }
}

#[test]
fn stream_run_numbers_are_the_engines_own() {
    let dir = tmp("inspect-stream");
    let text = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind\n";
    let data = dir.join("play.txt");
    std::fs::write(&data, text.repeat(40)).unwrap();
    let run = dir.join("run");
    let stream = [
        "--data",
        "stream",
        "--batch-size",
        "2",
        "--engine",
        "tensor",
    ];
    train_ok(&data, &run, &[&stream[..], TWO_LAYERS].concat());
    // block_size + 1 = 9 characters: 8 predictions, across a newline.
    check_parity(&run, &dir.join("out"), "tion.\nWhe");
    let report = json(&dir.join("out/inspect.json"));
    assert_eq!(report["positions"][4]["target"], "↵");
    assert_eq!(report["positions"].as_array().unwrap().len(), 8);
}

#[test]
fn several_runs_side_by_side_and_without_out() {
    let dir = tmp("inspect-compare");
    let data = dataset(&dir);
    let (relu, gelu) = (dir.join("relu"), dir.join("gelu"));
    train_ok(&data, &relu, &["--steps", "20", "--num-samples", "0"]);
    let gelu_args = [
        "--steps",
        "20",
        "--num-samples",
        "0",
        "--activation",
        "gelu",
    ];
    train_ok(&data, &gelu, &gelu_args);
    let out = dir.join("out");
    let both = |extra: &[&str]| {
        let runs = ["inspect", "--run", s(&relu), "--run", s(&gelu)];
        ok(&[&runs[..], extra].concat())
    };
    let md = both(&["--text", "moni", "--out", s(&out)]);
    assert!(
        md.contains("| pos | input | target | `relu` | `gelu` |"),
        "{md}"
    );
    assert!(md.contains("\n| mean | | |"), "{md}");
    let j = json(&out.join("inspect.json"));
    assert_eq!(j["comparison"]["runs"], serde_json::json!(["relu", "gelu"]));
    assert_eq!(j["comparison"]["loss"].as_array().unwrap().len(), 5);
    for (i, run) in [&relu, &gelu].iter().enumerate() {
        let report = &j["runs"][i];
        assert!(deviation(report, &scalar_reference(run, "moni")) <= JSON_ULPS);
        assert_eq!(
            j["comparison"]["loss"][2][i],
            report["positions"][2]["loss"]
        );
    }
    for name in ["attention_relu", "attention_gelu"] {
        assert!(out.join(format!("{name}.png")).exists(), "{name}");
        assert!(out.join(format!("{name}.svg")).exists(), "{name}");
    }
    // Without --out: the table on stdout, each run's maps in its own directory.
    let table = both(&["--text", "ka"]);
    assert!(table.contains("| 2 | `a` | `⟨BOS⟩` |"), "{table}");
    for run in [&relu, &gelu] {
        assert!(run.join("attention.png").exists());
        assert!(!run.join("inspect.json").exists());
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tmp("inspect-errors");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "3", "--num-samples", "0"]);
    let inspect = |text: &str| fails(&["inspect", "--run", s(&run), "--text", text]);
    let err = inspect("kaX!");
    assert!(
        err.contains("outside the run's vocabulary: '!', 'X'"),
        "{err}"
    );
    assert!(inspect("").contains("the text is empty"));
    let err = inspect("kamoréluan");
    assert!(
        err.contains("10 characters") && err.contains("only 8 positions"),
        "{err}"
    );

    let stream = dir.join("stream");
    let text = dir.join("text.txt");
    std::fs::write(&text, "the cat sat on the mat\n".repeat(30)).unwrap();
    train_ok(&text, &stream, &["--data", "stream", "--steps", "3"]);
    let err = fails(&["inspect", "--run", s(&stream), "--text", "the cat sat"]);
    assert!(err.contains("give at most 9 characters"), "{err}");
    let err = fails(&["inspect", "--run", s(&stream), "--text", "t"]);
    assert!(err.contains("at least 2 characters"), "{err}");
    let err = fails(&[
        "inspect",
        "--run",
        s(&run),
        "--run",
        s(&stream),
        "--text",
        "at",
    ]);
    assert!(
        err.contains("lines run but") && err.contains("stream run"),
        "{err}"
    );

    // A run directory whose checkpoint is missing, and no run directory at all.
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(run.join("config.json"), broken.join("config.json")).unwrap();
    let err = fails(&["inspect", "--run", s(&broken), "--text", "ka"]);
    assert!(err.contains("holds no checkpoint yet"), "{err}");
    let err = fails(&["inspect", "--run", s(&dir.join("nothing")), "--text", "ka"]);
    assert!(err.contains("not a run directory"), "{err}");
}
