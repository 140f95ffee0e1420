//! The same seed and thread count give bit-identical training, at 1 and at 2 threads, on a
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

/// Losses and final parameters of 4 steps of batch 8 in f32 and 2 steps in f64.
fn train(threads: usize) -> (Vec<u64>, Vec<u64>) {
    set_threads(threads).unwrap();
    let cfg = config();
    let mut rng = Rng::new(5);
    let params = cfg.layout().init(&mut rng, 0.1);
    let docs = documents(&mut rng);
    let settings = RunSettings::default();
    let mut losses = Vec::new();
    let mut f32s = Trainer::new(TensorGpt::<f32>::new(&cfg, &params).unwrap(), &settings);
    let mut f64s = Trainer::new(TensorGpt::<f64>::new(&cfg, &params).unwrap(), &settings);
    for step in 0..4 {
        let batch: Vec<&[usize]> = (0..8)
            .map(|b| docs[(step * 8 + b) % docs.len()].as_slice())
            .collect();
        losses.push(f32s.step(&batch).unwrap().loss.to_bits());
        if step < 2 {
            losses.push(f64s.step(&batch).unwrap().loss.to_bits());
        }
    }
    let mut bits: Vec<u64> = f32s
        .engine
        .params()
        .iter()
        .map(|p| p.to_bits() as u64)
        .collect();
    bits.extend(f64s.engine.params().iter().map(|p| p.to_bits()));
    (losses, bits)
}

#[test]
fn same_thread_count_gives_identical_bits() {
    let mut failed = Vec::new();
    println!(
        "{:>7} {:>22} {:>22} {:>10}",
        "threads", "losses differing", "params differing", ""
    );
    for threads in [1, 2] {
        let (losses_a, params_a) = train(threads);
        let (losses_b, params_b) = train(threads);
        let differ = |a: &[u64], b: &[u64]| a.iter().zip(b).filter(|(x, y)| x != y).count();
        let (dl, dp) = (differ(&losses_a, &losses_b), differ(&params_a, &params_b));
        let ok = dl == 0 && dp == 0;
        println!(
            "{threads:>7} {:>22} {:>22} {:>10}",
            format!("{dl} of {}", losses_a.len()),
            format!("{dp} of {}", params_a.len()),
            if ok { "OK" } else { "NOT OK" }
        );
        if !ok {
            failed.push(threads);
        }
    }
    set_threads(1).unwrap();
    assert!(failed.is_empty(), "runs differ at {failed:?} thread(s)");
}
