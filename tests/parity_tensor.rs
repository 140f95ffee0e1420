//! The tensor engine against the original program's real output (`../shared/golden`): every
//! step's loss (f64 to 1e-9, f32 to 1e-4) and, in f64, the same samples; and the
//! `microgpt gradcheck` command end to end.

mod common;

use microgpt::model::engine::Engine;
use microgpt::model::tensor::TensorGpt;
use microgpt::numerics::dtype::Float;
use microgpt::training::sample;
use std::process::Command;

/// Trains the tensor engine in `F` on every golden run; checks each loss within
/// `tolerance` and, when `check_samples`, the samples.
fn check_goldens<F: Float>(tolerance: f64, check_samples: bool) {
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
        let mut trainer = g.trainer(TensorGpt::<F>::new(&cfg, &params).unwrap());
        for (s, &want) in g.losses.iter().enumerate() {
            let loss = common::step(&mut trainer, &corpus).loss;
            assert!(
                (loss - want).abs() <= tolerance,
                "{} {}: step {} loss {loss} vs {want}",
                g.name,
                F::DTYPE,
                s + 1
            );
        }
        if check_samples {
            let samples: Vec<String> = (0..g.num_samples)
                .map(|_| {
                    let ids = sample::generate(&mut trainer.engine, &mut rng, &[], g.temperature);
                    corpus.vocab.decode(&ids)
                })
                .collect();
            assert_eq!(samples, g.samples, "{} {}", g.name, F::DTYPE);
        }
    }
}

#[test]
fn f64_tensor_engine_reproduces_every_golden() {
    check_goldens::<f64>(1e-9, true);
}

#[test]
fn f32_tensor_engine_follows_every_golden() {
    check_goldens::<f32>(1e-4, false);
}

#[test]
fn f64_first_step_gradients_match_the_golden() {
    let Some(names) = common::names_path() else {
        return;
    };
    for g in common::goldens() {
        let common::GoldenStart {
            rng: _,
            corpus,
            cfg,
            params,
        } = g.start(&names);
        let mut engine = TensorGpt::<f64>::new(&cfg, &params).unwrap();
        let first = corpus.batches(1, cfg.block_size, 0).batch(0);
        engine.forward_backward(&first);
        for spec in &cfg.layout().specs {
            let (ours, want) = (
                &engine.grads()[spec.range()],
                &g.first_step_grads[spec.range()],
            );
            let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
            let err = ours
                .iter()
                .zip(want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-10 * scale,
                "{}: first-step gradient of {} off by {err:e} (scale {scale:e})",
                g.name,
                spec.name
            );
        }
    }
}

fn gradcheck(args: &[&str]) -> Option<std::process::Output> {
    let names = common::names_path()?;
    Some(
        Command::new(env!("CARGO_BIN_EXE_microgpt"))
            .arg("gradcheck")
            .arg("--input")
            .arg(names)
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn gradcheck_command_passes_on_a_valid_config() {
    for args in [
        &["--batch-size", "3"][..],
        &[
            "--n-layer",
            "2",
            "--n-head",
            "2",
            "--activation",
            "gelu",
            "--batches",
            "2",
        ],
        &["--dtype", "f32", "--batch-size", "2", "--block-size", "8"],
    ] {
        let Some(out) = gradcheck(args) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("max relative error: "),
            "{args:?}: {stdout}"
        );
        assert!(
            stdout.contains("layer0.mlp_fc2") && !stdout.contains("NOT OK"),
            "{stdout}"
        );
    }
}

#[test]
fn gradcheck_command_fails_beyond_its_tolerance_and_on_bad_input() {
    let Some(out) = gradcheck(&["--dtype", "f32", "--tolerance", "1e-12"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT OK"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeds the tolerance"), "{err}");

    let out = gradcheck(&["--n-head", "3"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: n_embd (16) must be divisible by n_head (3)"
    );
}
