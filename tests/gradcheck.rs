//! Gradient checks on random small models and documents: the tensor engine against the
//! scalar reference engine (f64 to ~1e-10, f32 loosely), and both engines against central
//! finite differences.

use microgpt::model::config::{Activation, ModelConfig};
use microgpt::model::engine::Engine;
use microgpt::model::scalar::ScalarGpt;
use microgpt::model::tensor::TensorGpt;
use microgpt::numerics::dtype::Float;
use microgpt::numerics::rng::Rng;
use microgpt::training::gradcheck::deviations as compare;

const ACTIVATIONS: [Activation; 3] = [Activation::Relu, Activation::Gelu, Activation::Relu2];

/// A uniform integer in `lo..=hi`.
fn between(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    lo + rng.randbelow((hi - lo + 1) as u32) as usize
}

fn random_config(rng: &mut Rng, activation: Activation) -> ModelConfig {
    let n_head = between(rng, 1, 4);
    ModelConfig {
        vocab_size: between(rng, 2, 12),
        n_embd: n_head * between(rng, 1, 8),
        n_head,
        n_layer: between(rng, 1, 3),
        block_size: between(rng, 1, 16),
        activation,
    }
}

/// Encoded documents `[BOS] + ids + [BOS]` with 0 to `2 * block_size` ids, so some are
/// shorter than the block and some are cropped.
fn random_docs(rng: &mut Rng, cfg: &ModelConfig, count: usize) -> Vec<Vec<usize>> {
    let bos = cfg.vocab_size - 1;
    (0..count)
        .map(|_| {
            let len = between(rng, 0, 2 * cfg.block_size);
            let mut doc = vec![bos];
            doc.extend((0..len).map(|_| between(rng, 0, bos - 1)));
            doc.push(bos);
            doc
        })
        .collect()
}

/// Batches of `batch_size` consecutive documents.
fn batches(docs: &[Vec<usize>], batch_size: usize) -> Vec<Vec<&[usize]>> {
    docs.chunks(batch_size)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect()
}

/// Relative error allowed of the f64 tensor engine: its GEMMs sum in another order than the
/// scalar graph, nothing more; the loss is one sum over the batch.
fn f64_tolerance(name: &str) -> f64 {
    match name {
        "loss" => 1e-12,
        _ => 1e-10,
    }
}

/// The case's description for failure messages.
fn describe(cfg: &ModelConfig, batch_size: usize) -> String {
    format!(
        "vocab {} n_embd {} n_head {} n_layer {} block {} {} batch {batch_size}",
        cfg.vocab_size, cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.block_size, cfg.activation
    )
}

/// The tensor engine in `F` against the scalar engine on each of `cases` (a config, its
/// parameters, its batches): llm.c's table of every tensor of every case (name, max abs,
/// max rel, OK / NOT OK), then one verdict, so a failure shows everything that is off.
fn check_against_scalar<F: Float>(title: &str, cases: &[Case], tolerance: impl Fn(&str) -> f64) {
    let mut failed = Vec::new();
    println!("{title}");
    for (cfg, params, docs, batch_size) in cases {
        let mut tensor = TensorGpt::<F>::new(cfg, params).unwrap();
        let mut scalar = ScalarGpt::new(cfg, params).unwrap();
        let found = compare(&mut tensor, &mut scalar, &batches(docs, *batch_size));
        println!("{}", describe(cfg, *batch_size));
        for d in &found {
            let ok = d.max_rel <= tolerance(&d.name);
            println!(
                "  {:<18} max abs {:.2e}  max rel {:.2e}  {}",
                d.name,
                d.max_abs,
                d.max_rel,
                if ok { "OK" } else { "NOT OK" }
            );
            if !ok {
                failed.push(format!("{} ({})", d.name, describe(cfg, *batch_size)));
            }
        }
    }
    let verdict = if failed.is_empty() { "OK" } else { "NOT OK" };
    println!("overall: {verdict}");
    assert!(
        failed.is_empty(),
        "too far from the scalar engine: {failed:?}"
    );
}

/// A model, its parameters, its documents and the batch size to split them by.
type Case = (ModelConfig, Vec<f64>, Vec<Vec<usize>>, usize);

/// `count` random configs (activations in turn), parameters and two batches each, of
/// `batch_size(case)` documents.
fn random_cases(seed: u64, count: usize, batch_size: fn(usize) -> usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|case| {
            let cfg = random_config(&mut rng, ACTIVATIONS[case % 3]);
            let batch_size = batch_size(case);
            let params = cfg.layout().init(&mut rng, 0.3);
            let docs = random_docs(&mut rng, &cfg, 2 * batch_size);
            (cfg, params, docs, batch_size)
        })
        .collect()
}

#[test]
fn tensor_engine_matches_the_scalar_engine_on_random_models() {
    check_against_scalar::<f64>(
        "f64, 36 random models",
        &random_cases(2024, 36, |case| [1, 3][case / 3 % 2]),
        f64_tolerance,
    );
}

#[test]
fn f32_tensor_engine_stays_close_to_the_f64_scalar_engine() {
    check_against_scalar::<f32>(
        "f32, 12 random models",
        &random_cases(7, 12, |case| [1, 3][case % 2]),
        |_| 1e-3,
    );
}

/// An engine's gradients against `(loss(p + h) - loss(p - h)) / 2h` for a sample of each
/// tensor's parameters, on a tiny two-document batch with every activation.
fn check_finite_differences<E: Engine<F = f64>>(build: impl Fn(&ModelConfig, &[f64]) -> E) {
    let mut rng = Rng::new(99);
    for act in ACTIVATIONS {
        let cfg = ModelConfig {
            vocab_size: 5,
            n_embd: 4,
            n_head: 2,
            n_layer: 2,
            block_size: 4,
            activation: act,
        };
        let params = cfg.layout().init(&mut rng, 0.5);
        let docs = random_docs(&mut rng, &cfg, 2);
        let batch: Vec<&[usize]> = docs.iter().map(Vec::as_slice).collect();
        let mut engine = build(&cfg, &params);
        engine.forward_backward(&batch);
        let grads = engine.grads().to_vec();
        let h = 1e-6;
        for spec in &cfg.layout().specs {
            for _ in 0..4 {
                let i = spec.offset + between(&mut rng, 0, spec.len() - 1);
                let mut at = |delta: f64| {
                    engine.params_and_grads_mut().0[i] = params[i] + delta;
                    engine.loss(&batch)
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                at(0.0);
                assert!(
                    (fd - grads[i]).abs() <= 1e-8 + 1e-5 * grads[i].abs(),
                    "{}[{}] ({act}): backward {:e}, finite difference {:e}",
                    spec.name,
                    i - spec.offset,
                    grads[i],
                    fd
                );
            }
        }
    }
}

#[test]
fn scalar_engine_gradients_match_finite_differences() {
    check_finite_differences(|c, p| ScalarGpt::new(c, p).unwrap());
}

#[test]
fn tensor_engine_gradients_match_finite_differences() {
    check_finite_differences(|c, p| TensorGpt::<f64>::new(c, p).unwrap());
}

/// Decoding token by token with the key/value cache gives the scalar engine's logits.
#[test]
fn tensor_decoding_matches_the_scalar_engine() {
    let mut rng = Rng::new(11);
    for case in 0..9 {
        let cfg = random_config(&mut rng, ACTIVATIONS[case % 3]);
        let params = cfg.layout().init(&mut rng, 0.3);
        let mut tensor = TensorGpt::<f64>::new(&cfg, &params).unwrap();
        let mut scalar = ScalarGpt::new(&cfg, &params).unwrap();
        let (mut ours, mut want) = (vec![0.0; cfg.vocab_size], vec![0.0; cfg.vocab_size]);
        for _ in 0..2 {
            tensor.reset_decode();
            scalar.reset_decode();
            for pos in 0..cfg.block_size {
                let token = between(&mut rng, 0, cfg.vocab_size - 1);
                tensor.decode(token, pos, &mut ours);
                scalar.decode(token, pos, &mut want);
                for (a, b) in ours.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "logit at position {pos}: {a} vs {b} with {}",
                        describe(&cfg, 1)
                    );
                }
            }
        }
    }
}

/// Documents of `lo..=hi` ids each.
fn docs_between(
    rng: &mut Rng,
    cfg: &ModelConfig,
    count: usize,
    lo: usize,
    hi: usize,
) -> Vec<Vec<usize>> {
    let bos = cfg.vocab_size - 1;
    (0..count)
        .map(|_| {
            let len = between(rng, lo, hi);
            let mut doc = vec![bos];
            doc.extend((0..len).map(|_| between(rng, 0, bos - 1)));
            doc.push(bos);
            doc
        })
        .collect()
}

/// Heads of 16 to 64 and blocks of 32 to 128 take attention's GEMM path (documents of at
/// least 32 positions), with several causal blocks at 128; shorter documents in the same
/// batch take the loop path. Prints every tensor's deviation, then fails if any is too big.
#[test]
fn tensor_engine_matches_the_scalar_engine_at_long_context() {
    let mut rng = Rng::new(31);
    // (n_embd, n_head, block_size, batch size)
    let shapes = [(32, 2, 32, 3), (64, 2, 64, 2), (64, 1, 128, 2)];
    let cases: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(n_embd, n_head, block_size, batch_size))| {
            let cfg = ModelConfig {
                vocab_size: 7,
                n_embd,
                n_head,
                n_layer: 1,
                block_size,
                activation: ACTIVATIONS[i % 3],
            };
            let params = cfg.layout().init(&mut rng, 0.3);
            let docs = docs_between(&mut rng, &cfg, batch_size, 8, 2 * block_size);
            (cfg, params, docs, batch_size)
        })
        .collect();
    check_against_scalar::<f64>("f64, long context", &cases, f64_tolerance);
}
