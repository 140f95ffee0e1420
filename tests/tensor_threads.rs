//! The same seed and thread count give bit-identical training, at 1 and at 2 threads, and
//! the two counts agree within a stated tolerance (only the order of sums differs), on a
//! model large enough that every layer runs in parallel (GEMM blocks, attention per
//! (document, head) on the GEMM path, row-wise layers, Adam). One test: the thread count is
//! process-wide.

use microgpt::model::config::{Activation, ModelConfig};
use microgpt::model::engine::Engine;
use microgpt::model::tensor::{set_threads, TensorGpt};
use microgpt::numerics::rng::Rng;
use microgpt::settings::RunSettings;
use microgpt::training::step::Trainer;

fn config() -> ModelConfig {
    ModelConfig {
        vocab_size: 11,
        n_embd: 64,
        n_head: 4,
        n_layer: 2,
        block_size: 64,
        activation: Activation::Gelu,
    }
}

/// Documents of 20 to 100 ids: most fill the block, a few take attention's loop path.
fn documents(rng: &mut Rng) -> Vec<Vec<usize>> {
    (0..24)
        .map(|_| {
            let len = 20 + rng.randbelow(81) as usize;
            let mut doc = vec![10];
            doc.extend((0..len).map(|_| rng.randbelow(10) as usize));
            doc.push(10);
            doc
        })
        .collect()
}

/// What a run computed: losses and final parameters, of 4 steps of batch 8 in f32 and 2
/// steps in f64.
struct Run {
    f32_losses: Vec<f64>,
    f32_params: Vec<f64>,
    f64_losses: Vec<f64>,
    f64_params: Vec<f64>,
}

fn train(threads: usize) -> Run {
    set_threads(threads).unwrap();
    let cfg = config();
    let mut rng = Rng::new(5);
    let params = cfg.layout().init(&mut rng, 0.1);
    let docs = documents(&mut rng);
    let settings = RunSettings::default();
    let (mut f32_losses, mut f64_losses) = (Vec::new(), Vec::new());
    let mut f32s = Trainer::new(TensorGpt::<f32>::new(&cfg, &params).unwrap(), &settings);
    let mut f64s = Trainer::new(TensorGpt::<f64>::new(&cfg, &params).unwrap(), &settings);
    for step in 0..4 {
        let batch: Vec<&[usize]> = (0..8)
            .map(|b| docs[(step * 8 + b) % docs.len()].as_slice())
            .collect();
        f32_losses.push(f32s.step(&batch).unwrap().loss);
        if step < 2 {
            f64_losses.push(f64s.step(&batch).unwrap().loss);
        }
    }
    Run {
        f32_losses,
        f32_params: f32s.engine.params().iter().map(|&p| f64::from(p)).collect(),
        f64_losses,
        f64_params: f64s.engine.params().to_vec(),
    }
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

/// Runs at 1 and at 2 threads may differ only in the order of their sums. The largest
/// absolute difference allowed: in f32, 1e-5 of a loss (~2.4: a few ulp) and 1e-4 of a
/// weight (a thousandth of the init's 0.1; Adam carries a reordered sum's last bits through
/// 4 steps, up to a tenth of one step's lr = 0.01 for a weight whose gradient is noise);
/// in f64, 1e-12 (both measured bit-identical).
const F32_LOSS: f64 = 1e-5;
const F32_WEIGHT: f64 = 1e-4;
const F64_ANY: f64 = 1e-12;

/// The largest absolute and relative difference of `a` from `b`.
fn deviation(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0.0, 0.0), |(abs, rel), (&x, &y)| {
        let d = (x - y).abs();
        (f64::max(abs, d), f64::max(rel, d / y.abs()))
    })
}

/// One test: the thread count is process-wide.
#[test]
fn threads_give_identical_bits_per_count_and_agree_across_counts() {
    let runs = [1, 2].map(|threads| (threads, train(threads), train(threads)));
    set_threads(1).unwrap();
    let mut failed = Vec::new();
    println!(
        "{:>7} {:>22} {:>22} {:>10}",
        "threads", "losses differing", "params differing", ""
    );
    for (threads, a, b) in &runs {
        let differ = |x: &[f64], y: &[f64]| {
            bits(x)
                .iter()
                .zip(bits(y))
                .filter(|(p, q)| **p != *q)
                .count()
        };
        let losses = [&a.f32_losses, &a.f64_losses]
            .map(|l| l.len())
            .iter()
            .sum::<usize>();
        let params = a.f32_params.len() + a.f64_params.len();
        let dl = differ(&a.f32_losses, &b.f32_losses) + differ(&a.f64_losses, &b.f64_losses);
        let dp = differ(&a.f32_params, &b.f32_params) + differ(&a.f64_params, &b.f64_params);
        let ok = dl == 0 && dp == 0;
        println!(
            "{threads:>7} {:>22} {:>22} {:>10}",
            format!("{dl} of {losses}"),
            format!("{dp} of {params}"),
            if ok { "OK" } else { "NOT OK" }
        );
        if !ok {
            failed.push(format!(
                "runs at {threads} thread(s) differ from each other"
            ));
        }
    }
    let (one, two) = (&runs[0].1, &runs[1].1);
    println!(
        "\n1 vs 2 threads {:>14} {:>12} {:>12} {:>10}",
        "max abs", "max rel", "abs limit", ""
    );
    let rows = [
        ("f32 losses", &one.f32_losses, &two.f32_losses, F32_LOSS),
        ("f32 params", &one.f32_params, &two.f32_params, F32_WEIGHT),
        ("f64 losses", &one.f64_losses, &two.f64_losses, F64_ANY),
        ("f64 params", &one.f64_params, &two.f64_params, F64_ANY),
    ];
    for (name, a, b, tolerance) in rows {
        let (abs, rel) = deviation(a, b);
        let ok = abs <= tolerance;
        println!(
            "{name:>14} {abs:>14.3e} {rel:>12.3e} {tolerance:>12.0e} {:>10}",
            if ok { "OK" } else { "NOT OK" }
        );
        if !ok {
            failed.push(format!(
                "{name} at 1 and 2 threads differ by {rel:e} (tolerance {tolerance:e})"
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("; "));
}
