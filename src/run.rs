//! A training run from start to end: data, model, loop, samples, and the run directory.

use crate::cli::TrainArgs;
use crate::config::ModelConfig;
use crate::data::{self, Vocab};
use crate::engine::{with_engine, Engine, EngineTask};
use crate::files::write_atomic;
use crate::rng::Rng;
use crate::sample;
use crate::train::Trainer;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The shuffled documents, their vocabulary and their encodings.
pub struct Corpus {
    pub path: PathBuf,
    pub docs: Vec<String>,
    pub vocab: Vocab,
    pub tokens: Vec<Vec<usize>>,
}

impl Corpus {
    /// Reads the dataset and shuffles it with `rng`, the first draws of the stream.
    pub fn load(input: Option<&std::path::Path>, rng: &mut Rng) -> Result<Self> {
        let url = std::env::var("MICROGPT_DATA_URL").unwrap_or_else(|_| data::NAMES_URL.into());
        let path = data::resolve_input(input, &url)?;
        let mut docs = data::read_docs(&path)?;
        rng.shuffle(&mut docs);
        let vocab = Vocab::from_docs(&docs);
        let tokens = docs.iter().map(|d| vocab.encode_doc(d)).collect();
        Ok(Corpus {
            path,
            docs,
            vocab,
            tokens,
        })
    }
}

pub fn train(args: &TrainArgs) -> Result<()> {
    crate::tensor::set_threads(args.threads);
    let mut rng = Rng::new(args.data.seed);
    let corpus = Corpus::load(args.data.input.as_deref(), &mut rng)?;
    let cfg = args.model.config(corpus.vocab.size());
    cfg.validate()?;
    let params = cfg.layout().init(&mut rng, args.init_std);
    let task = TrainTask {
        args,
        corpus: &corpus,
        rng,
    };
    with_engine(args.engine, args.dtype, &cfg, &params, task)?
}

struct TrainTask<'a> {
    args: &'a TrainArgs,
    corpus: &'a Corpus,
    rng: Rng,
}

impl EngineTask for TrainTask<'_> {
    type Output = Result<()>;
    fn run<E: Engine>(self, engine: E) -> Result<()> {
        train_with(engine, self.args, self.corpus, self.rng)
    }
}

fn train_with<E: Engine>(engine: E, args: &TrainArgs, corpus: &Corpus, mut rng: Rng) -> Result<()> {
    let cfg: ModelConfig = engine.config().clone();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create run directory {}", dir.display()))?;
    }
    if !args.quiet {
        println!("num docs: {}", corpus.docs.len());
        println!("vocab size: {}", cfg.vocab_size);
        println!("num params: {}", engine.layout().total);
    }
    let mut trainer = Trainer::new(engine, args.options());
    let mut metrics = String::from("step,loss,lr,tokens\n");
    let mut total_tokens = 0;
    while !trainer.is_done() {
        let stats = trainer.step(&corpus.tokens)?;
        total_tokens += stats.tokens;
        writeln!(
            metrics,
            "{},{},{},{}",
            stats.step, stats.loss, stats.lr, total_tokens
        )?;
        if !args.quiet {
            println!(
                "step {:4} / {:4} | loss {:.4}",
                stats.step, args.steps, stats.loss
            );
        }
    }
    let mut samples = Vec::with_capacity(args.num_samples);
    if args.num_samples > 0 && !args.quiet {
        println!("\n--- inference (new, hallucinated names) ---");
    }
    for i in 0..args.num_samples {
        let ids = sample::generate(&mut trainer.engine, &mut rng, &[], args.temperature);
        let name = corpus.vocab.decode(&ids);
        if !args.quiet {
            println!("sample {:2}: {name}", i + 1);
        }
        samples.push(name);
    }
    if let Some(dir) = &args.out {
        let config = serde_json::json!({
            "args": args,
            "model": cfg,
            "dataset": corpus.path,
            "num_docs": corpus.docs.len(),
            "vocab": corpus.vocab.chars().iter().collect::<String>(),
            "num_params": trainer.engine.layout().total,
        });
        write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        write_atomic(&dir.join("metrics.csv"), metrics.as_bytes())?;
        let mut text = String::new();
        for s in &samples {
            text.push_str(s);
            text.push('\n');
        }
        write_atomic(&dir.join("samples.txt"), text.as_bytes())?;
    }
    Ok(())
}
