//! One training step (forward, backward, Adam) per engine and model size, on the names
//! dataset. Quick settings: each benchmark samples for about two seconds.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use microgpt::config::{Activation, ModelConfig};
use microgpt::data::Corpus;
use microgpt::engine::Engine;
use microgpt::optim::LrSchedule;
use microgpt::rng::Rng;
use microgpt::scalar::ScalarGpt;
use microgpt::settings::{DataMode, DataSettings, RunSettings};
use microgpt::tensor::TensorGpt;
use microgpt::train::Trainer;
use std::path::PathBuf;
use std::time::Duration;

fn corpus() -> (Corpus, Rng) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/names.txt");
    let mut rng = Rng::new(42);
    let data = DataSettings {
        input: Some(path.clone()),
        data: DataMode::Lines,
        seed: 42,
        val_frac: 0.0,
    };
    let corpus = Corpus::load(&data, 16, &mut rng)
        .unwrap_or_else(|e| panic!("benchmarks need {}: {e:#}", path.display()));
    (corpus, rng)
}

fn config(vocab_size: usize, n_embd: usize, n_layer: usize, n_head: usize) -> ModelConfig {
    ModelConfig {
        vocab_size,
        n_embd,
        n_head,
        n_layer,
        block_size: 16,
        activation: Activation::Relu,
    }
}

/// Benchmarks `Trainer::step` of `engine` on batches of `batch_size` documents.
fn bench_steps<E: Engine>(
    c: &mut Criterion,
    group: &str,
    id: String,
    engine: E,
    batch_size: usize,
) {
    let (corpus, _) = corpus();
    // A constant, small learning rate: the time per step does not depend on it, and the
    // larger models diverge at the default 0.01 over the many steps measured.
    let mut settings = RunSettings::default();
    settings.schedule.steps = usize::MAX;
    settings.schedule.lr_schedule = LrSchedule::Constant;
    settings.optimizer.lr = 1e-3;
    let mut trainer = Trainer::new(engine, &settings);
    let source = corpus.batches(batch_size, 16, 42);
    c.benchmark_group(group)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| trainer.step(&source.batch(trainer.step)).unwrap())
        });
}

fn steps(c: &mut Criterion) {
    microgpt::tensor::set_threads(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (corpus, mut rng) = corpus();
    let vocab = corpus.vocab.size();
    let default = config(vocab, 16, 1, 4);
    let params = default.layout().init(&mut rng, 0.08);
    bench_steps(
        c,
        "scalar_f64",
        "d16_L1_B1".into(),
        ScalarGpt::new(&default, &params).unwrap(),
        1,
    );
    for (n_embd, n_layer) in [(16, 1), (64, 2), (128, 4)] {
        let cfg = config(vocab, n_embd, n_layer, 4);
        let params = cfg.layout().init(&mut rng, 0.08);
        let engine = TensorGpt::<f64>::new(&cfg, &params).unwrap();
        bench_steps(
            c,
            "tensor_f64",
            format!("d{n_embd}_L{n_layer}_B1"),
            engine,
            1,
        );
    }
    for (n_embd, n_layer, n_head, batch) in [
        (16, 1, 4, 32),
        (64, 2, 4, 16),
        (128, 4, 4, 32),
        (256, 4, 8, 32),
        (512, 6, 8, 64),
    ] {
        let cfg = config(vocab, n_embd, n_layer, n_head);
        let params = cfg.layout().init(&mut rng, 0.08);
        let engine = TensorGpt::<f32>::new(&cfg, &params).unwrap();
        let id = format!("d{n_embd}_L{n_layer}_H{n_head}_B{batch}");
        bench_steps(c, "tensor_f32", id, engine, batch);
    }
}

criterion_group!(benches, steps);
criterion_main!(benches);
