//! The scalar engine against the original program's real output (`../shared/golden`):
//! every loss, every first-step gradient and every sample equal to the last bit.

mod common;

use microgpt::model::engine::Engine;
use microgpt::model::scalar::ScalarGpt;
use microgpt::numerics::rng::Rng;
use microgpt::training::sample;

#[test]
fn scalar_engine_reproduces_every_golden_bit_for_bit() {
    let Some(names) = common::names_path() else {
        return;
    };
    for g in common::goldens() {
        let common::GoldenStart {
            mut rng,
            corpus,
            cfg,
            params,
        } = g.start(&names);
        let mut trainer = g.trainer(ScalarGpt::new(&cfg, &params).unwrap());
        for (s, &want) in g.losses.iter().enumerate() {
            let stats = common::step(&mut trainer, &corpus);
            assert_eq!(
                stats.loss.to_bits(),
                want.to_bits(),
                "{} step {}: {} vs {}",
                g.name,
                s + 1,
                stats.loss,
                want
            );
            if s == 0 {
                // The Adam update zeroes nothing here: gradients stay until the next step.
                let grads = trainer.engine.grads();
                let layout = cfg.layout();
                for spec in &layout.specs {
                    for i in spec.range() {
                        assert_eq!(
                            grads[i].to_bits(),
                            g.first_step_grads[i].to_bits(),
                            "{}: first-step gradient of {}[{}]",
                            g.name,
                            spec.name,
                            i - spec.offset
                        );
                    }
                }
            }
        }
        let samples: Vec<String> = (0..g.num_samples)
            .map(|_| {
                let ids = sample::generate(&mut trainer.engine, &mut rng, &[], g.temperature);
                corpus.vocab.decode(&ids)
            })
            .collect();
        assert_eq!(samples, g.samples, "{}", g.name);
    }
}

/// `train --out DIR` through the CLI: metrics.csv losses parse back to the golden's f64s
/// exactly, samples.txt holds the golden samples, config.json every setting.
#[test]
fn run_directory_holds_the_golden_run() {
    let Some(names) = common::names_path() else {
        return;
    };
    let g = common::goldens()
        .into_iter()
        .find(|g| g.name == "names_l2_h2_b8.json")
        .expect("names_l2_h2_b8.json golden");
    let dir = std::env::temp_dir().join(format!("microgpt-parity-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let m = &g.model;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(["train", "--engine", "scalar", "--quiet", "--input"])
        .arg(&names)
        .args(["--out"])
        .arg(&dir)
        .args([
            "--seed",
            &g.seed.to_string(),
            "--steps",
            &g.steps.to_string(),
            "--n-layer",
            &m.n_layer.to_string(),
            "--n-embd",
            &m.n_embd.to_string(),
            "--n-head",
            &m.n_head.to_string(),
            "--block-size",
            &m.block_size.to_string(),
            "--temperature",
            &g.temperature.to_string(),
            "--num-samples",
            &g.num_samples.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (step_col, loss_col) = (
        header.iter().position(|&c| c == "step").unwrap(),
        header.iter().position(|&c| c == "loss").unwrap(),
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), g.steps);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[step_col], (i + 1).to_string());
        let loss: f64 = row[loss_col].parse().unwrap();
        assert_eq!(loss.to_bits(), g.losses[i].to_bits(), "step {}", i + 1);
    }

    let samples = std::fs::read_to_string(dir.join("samples.txt")).unwrap();
    assert_eq!(samples.lines().collect::<Vec<_>>(), g.samples);

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let text = config.to_string();
    for key in [
        "n_embd",
        "n_head",
        "n_layer",
        "block_size",
        "seed",
        "lr",
        "beta1",
        "beta2",
    ] {
        assert!(
            text.contains(&format!("\"{key}\"")),
            "config.json lacks {key}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Backward is iterative: a graph far deeper than any call stack allows still trains.
#[test]
fn deep_graphs_do_not_overflow_the_stack() {
    use microgpt::model::config::{Activation, ModelConfig};
    let cfg = ModelConfig {
        vocab_size: 5,
        n_embd: 32,
        n_head: 2,
        n_layer: 6,
        block_size: 24,
        activation: Activation::Gelu,
    };
    let params = cfg.layout().init(&mut Rng::new(7), 0.08);
    let mut engine = ScalarGpt::new(&cfg, &params).unwrap();
    let doc: Vec<usize> = (0..30).map(|i| [4, 0, 1, 2, 3][i % 5]).collect();
    let loss = engine.forward_backward(&[&doc]);
    assert!(loss.is_finite());
    assert!(
        engine.graph().len() > 1_000_000,
        "{} nodes",
        engine.graph().len()
    );
    assert!(engine.grads().iter().any(|&g| g != 0.0));
}
