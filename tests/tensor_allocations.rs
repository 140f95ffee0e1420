//! The tensor engine allocates its buffers once: after the first step of the largest batch,
//! training steps and decoded tokens allocate nothing (counted by a global allocator), on
//! one thread and on two (the thread pool allocates only when the thread count changes).
//! Only with OpenBLAS: ndarray's own GEMM allocates packing buffers on every call. One
//! test: the counter and the thread count are process-wide.
#![cfg(microgpt_openblas)]

use microgpt::model::config::{Activation, ModelConfig};
use microgpt::model::engine::Engine;
use microgpt::model::tensor::{set_threads, TensorGpt};
use microgpt::numerics::bf16::Kernel;
use microgpt::numerics::rng::Rng;
use microgpt::settings::RunSettings;
use microgpt::training::step::Trainer;
mod common;

use common::alloc::{allocations_during, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steps_and_decoding_allocate_nothing_after_the_first_batch() {
    let small = ModelConfig {
        vocab_size: 6,
        n_embd: 8,
        n_head: 2,
        n_layer: 2,
        block_size: 5,
        activation: Activation::Gelu,
    };
    // Large enough that every layer runs on both threads and attention takes its GEMM path.
    let large = ModelConfig {
        n_embd: 64,
        block_size: 40,
        ..small.clone()
    };
    for (cfg, threads) in [(&small, 1), (&small, 2), (&large, 2)] {
        set_threads(threads).unwrap();
        check(cfg, |p| TensorGpt::<f64>::new(cfg, p).unwrap());
    }
    // bf16: the weights' copy is made again after each update, into the same buffer, and
    // each thread's packing scratch is allocated by its first GEMM.
    for kernel in Kernel::ALL.into_iter().filter(|k| k.supported()) {
        check(&large, |p| TensorGpt::new_bf16(&large, p, kernel).unwrap());
    }
    set_threads(1).unwrap();
}

fn check<E: Engine>(cfg: &ModelConfig, engine: impl FnOnce(&[f64]) -> E) {
    let mut rng = Rng::new(1);
    let params = cfg.layout().init(&mut rng, 0.1);
    // Documents shorter and longer than the block.
    let docs: Vec<Vec<usize>> = (0..8)
        .map(|len| {
            let mut doc = vec![5];
            doc.extend((0..=len * cfg.block_size / 4).map(|i| i % 5));
            doc.push(5);
            doc
        })
        .collect();
    let settings = RunSettings::default();
    let mut trainer = Trainer::new(engine(&params), &settings);
    // The first step, of the 4 longest documents, sizes the buffers (to the rows a batch
    // has, not to 4 × block_size) for any batch of up to 4.
    trainer
        .step(&[&docs[4], &docs[5], &docs[6], &docs[7]])
        .unwrap();
    let n = allocations_during(|| {
        let engine = &mut trainer.engine;
        engine.forward_backward(&[&docs[0], &docs[7], &docs[3]]);
        engine.loss(&[&docs[2]]);
    });
    assert_eq!(
        n, 0,
        "allocations in forward/backward, n_embd {}",
        cfg.n_embd
    );
    let mut logits = vec![0.0; cfg.vocab_size];
    let n = allocations_during(|| {
        let engine = &mut trainer.engine;
        for _ in 0..3 {
            engine.reset_decode();
            for pos in 0..cfg.block_size {
                engine.decode(pos % 5, pos, &mut logits);
            }
        }
    });
    assert_eq!(n, 0, "allocations while decoding, n_embd {}", cfg.n_embd);
}
