//! One training step (forward, backward, Adam) per engine and model size: on the names
//! dataset at block_size 16, and on long documents (tiny Shakespeare in 300-character lines,
//! as `scripts/bench_vs_torch.py`'s context table) at block_size 16 to 256, in f32 and bf16
//! (the fastest bf16 kernel this CPU runs). Quick settings:
//! each benchmark samples for about two seconds. All threads of the machine.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use microgpt::data::Corpus;
use microgpt::model::config::{Activation, ModelConfig};
use microgpt::model::engine::Engine;
use microgpt::model::optim::LrSchedule;
use microgpt::model::scalar::ScalarGpt;
use microgpt::model::tensor::TensorGpt;
use microgpt::numerics::bf16::Kernel;
use microgpt::numerics::rng::Rng;
use microgpt::settings::{DataMode, DataSettings, RunSettings};
use microgpt::training::step::Trainer;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn load(path: &Path) -> (Corpus, Rng) {
    let mut rng = Rng::new(42);
    let data = DataSettings {
        input: Some(path.to_path_buf()),
        data: DataMode::Lines,
        seed: 42,
        val_frac: 0.0,
    };
    let corpus = Corpus::load(&data, 256, &mut rng)
        .unwrap_or_else(|e| panic!("benchmarks need {}: {e:#}", path.display()));
    (corpus, rng)
}

fn names() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/names.txt")
}

/// Tiny Shakespeare as one line cut into 300-character documents, written once under
/// `target/`: every document fills even a 256 block.
fn long_documents() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench-data/shakespeare_300.txt");
    if !out.exists() {
        let source = root.join("../shared/data/tinyshakespeare.txt");
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("benchmarks need {}: {e}", source.display()));
        let words: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let chars: Vec<char> = words.join(" ").chars().collect();
        let docs: Vec<String> = chars
            .chunks(300)
            .map(|c| c.iter().collect::<String>().trim().to_string())
            .filter(|d| d.len() > 1)
            .collect();
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, docs.join("\n") + "\n").unwrap();
    }
    out
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
    (group, id): (&str, String),
    corpus: &Corpus,
    engine: E,
    batch_size: usize,
) {
    // A constant, small learning rate: the time per step does not depend on it, and the
    // larger models diverge at the default 0.01 over the many steps measured.
    let mut settings = RunSettings::default();
    settings.schedule.steps = usize::MAX;
    settings.schedule.lr_schedule = LrSchedule::Constant;
    settings.optimizer.lr = 1e-3;
    let block_size = engine.config().block_size;
    let mut trainer = Trainer::new(engine, &settings);
    let source = corpus.batches(batch_size, block_size, 42);
    c.benchmark_group(group)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| trainer.step(&source.batch(trainer.step)).unwrap())
        });
}

fn steps(c: &mut Criterion) {
    microgpt::model::tensor::set_threads(
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    )
    .unwrap();
    let (corpus, mut rng) = load(&names());
    let vocab = corpus.vocab.size();
    let default = config(vocab, 16, 1, 4);
    let params = default.layout().init(&mut rng, 0.08);
    let scalar = ScalarGpt::new(&default, &params).unwrap();
    bench_steps(c, ("scalar_f64", "d16_L1_B1".into()), &corpus, scalar, 1);
    for (n_embd, n_layer) in [(16, 1), (64, 2), (128, 4)] {
        let cfg = config(vocab, n_embd, n_layer, 4);
        let params = cfg.layout().init(&mut rng, 0.08);
        let engine = TensorGpt::<f64>::new(&cfg, &params).unwrap();
        let id = format!("d{n_embd}_L{n_layer}_B1");
        bench_steps(c, ("tensor_f64", id), &corpus, engine, 1);
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
        bench_steps(c, ("tensor_f32", id), &corpus, engine, batch);
    }
    let (long, mut rng) = load(&long_documents());
    let contexts = [16, 64, 128, 256].map(|t| (128, 4, 4, 12, t));
    for (n_embd, n_layer, n_head, batch, block_size) in
        contexts.into_iter().chain([(384, 6, 6, 8, 256)])
    {
        let cfg = ModelConfig {
            block_size,
            ..config(long.vocab.size(), n_embd, n_layer, n_head)
        };
        let params = cfg.layout().init(&mut rng, 0.08);
        let engine = TensorGpt::<f32>::new(&cfg, &params).unwrap();
        let id = format!("d{n_embd}_L{n_layer}_H{n_head}_B{batch}_T{block_size}");
        bench_steps(c, ("tensor_f32_context", id.clone()), &long, engine, batch);
        let engine = TensorGpt::new_bf16(&cfg, &params, Kernel::best()).unwrap();
        bench_steps(c, ("tensor_bf16_context", id), &long, engine, batch);
    }
}

criterion_group!(benches, steps);
criterion_main!(benches);
