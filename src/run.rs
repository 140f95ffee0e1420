//! The `train` command: data, model, loop, samples, and the run directory — started fresh
//! or resumed from a checkpoint so that the result equals an uninterrupted run.

use crate::checkpoint::{
    self, ModelCheckpoint, OptimizerState, RunConfig, CONFIG_FILE, METRICS_FILE, MODEL_FILE,
    SAMPLES_FILE,
};
use crate::cli::TrainArgs;
use crate::config::{ModelConfig, ParamLayout};
use crate::data::{self, Vocab};
use crate::engine::{with_engine, Engine, EngineTask};
use crate::files::write_atomic;
use crate::interrupt::{self, Outcome};
use crate::metrics::{self, MetricsFile, Row};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::sample;
use crate::train::{cast_params, Trainer};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The shuffled documents, their vocabulary and their encodings.
pub struct Corpus {
    pub path: PathBuf,
    pub docs: Vec<String>,
    pub vocab: Vocab,
    pub tokens: Vec<Vec<usize>>,
}

impl Corpus {
    /// Reads the dataset and shuffles it with `rng`, the first draws of the stream.
    pub fn load(input: Option<&Path>, rng: &mut Rng) -> Result<Self> {
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

/// How many of `num_docs` shuffled documents train: the last `val_frac` of them (at least
/// one when `val_frac > 0`) are held out for validation.
pub fn train_split(num_docs: usize, val_frac: f64) -> Result<usize> {
    let n_val = if val_frac > 0.0 {
        ((num_docs as f64 * val_frac).round() as usize).max(1)
    } else {
        0
    };
    if n_val >= num_docs {
        bail!("--val-frac {val_frac} leaves none of the {num_docs} documents for training");
    }
    Ok(num_docs - n_val)
}

/// The run's RNG after the shuffle and the weight init, rebuilt without the dataset: the
/// shuffle's draws depend only on the number of documents. Training draws nothing, so
/// this is the stream the run's own samples come from.
pub fn rng_after_init(seed: u64, num_docs: usize, layout: &ParamLayout, init_std: f64) -> Rng {
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut vec![(); num_docs]);
    layout.init(&mut rng, init_std);
    rng
}

/// What a run starts from, in the original's order of draws: shuffle, then init.
struct Start {
    corpus: Corpus,
    n_train: usize,
    cfg: ModelConfig,
    init: Vec<f64>,
    /// The stream after both, for sampling at the end.
    rng: Rng,
}

impl Start {
    fn new(args: &TrainArgs) -> Result<Self> {
        let mut rng = Rng::new(args.data.seed);
        let corpus = Corpus::load(args.data.input.as_deref(), &mut rng)?;
        let cfg = args.model.config(corpus.vocab.size());
        cfg.validate()?;
        let init = cfg.layout().init(&mut rng, args.init_std);
        let n_train = train_split(corpus.docs.len(), args.val_frac)?;
        Ok(Start {
            corpus,
            n_train,
            cfg,
            init,
            rng,
        })
    }

    fn run_config(&self, args: &TrainArgs) -> Result<RunConfig> {
        let c = &self.corpus;
        let dataset = std::fs::canonicalize(&c.path)
            .with_context(|| format!("cannot resolve {}", c.path.display()))?;
        Ok(RunConfig {
            format_version: checkpoint::FORMAT_VERSION,
            args: args.clone(),
            model: self.cfg.clone(),
            dataset,
            vocab: c.vocab.chars().iter().collect(),
            num_docs: c.docs.len(),
            num_train_docs: self.n_train,
            num_val_docs: c.docs.len() - self.n_train,
            num_params: self.cfg.layout().total,
        })
    }
}

/// Where a resumed run continues from.
struct Resumed {
    model: ModelCheckpoint,
    optimizer: OptimizerState,
    rows: Vec<Row>,
}

pub fn train(cli_args: &TrainArgs) -> Result<Outcome> {
    let (args, start, resumed) = match &cli_args.resume {
        None => {
            let start = Start::new(cli_args)?;
            if let Some(dir) = &cli_args.out {
                if dir.join(MODEL_FILE).exists() {
                    bail!(
                        "{} already holds a trained run: continue it with --resume {0}, or choose another --out",
                        dir.display()
                    );
                }
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create run directory {}", dir.display()))?;
                start.run_config(cli_args)?.write(dir)?;
            }
            (cli_args.clone(), start, None)
        }
        Some(dir) => {
            let (args, start, resumed) = resume(dir, cli_args)?;
            (args, start, Some(resumed))
        }
    };
    let params = resumed
        .as_ref()
        .map_or(&start.init, |r| &r.model.params)
        .clone();
    let cfg = start.cfg.clone();
    crate::tensor::set_threads(args.threads);
    let task = TrainTask {
        args: &args,
        start,
        resumed,
    };
    with_engine(args.engine, args.dtype, &cfg, &params, task)?
}

/// Flags a resumed run takes from the command line; every other setting is the run's own.
fn resumed_args(stored: &TrainArgs, cli: &TrainArgs, dir: &Path) -> Result<TrainArgs> {
    let mut args = stored.clone();
    for key in &cli.given {
        match key.as_str() {
            "resume" => {}
            "steps" => args.steps = cli.steps,
            "stop_after" => args.stop_after = cli.stop_after,
            "save_every" => args.save_every = cli.save_every,
            "eval_every" => args.eval_every = cli.eval_every,
            "quiet" => args.quiet = cli.quiet,
            "engine" => args.engine = cli.engine,
            "threads" => args.threads = cli.threads,
            "num_samples" => args.num_samples = cli.num_samples,
            "temperature" => args.temperature = cli.temperature,
            other => bail!(
                "--{} cannot change when resuming: the run's settings are in {}",
                other.replace('_', "-"),
                dir.join(CONFIG_FILE).display()
            ),
        }
    }
    args.resume = Some(dir.to_path_buf());
    args.out = Some(dir.to_path_buf());
    Ok(args)
}

fn resume(dir: &Path, cli: &TrainArgs) -> Result<(TrainArgs, Start, Resumed)> {
    let (run, model) = checkpoint::load_run(dir)?;
    let mut args = resumed_args(&run.args, cli, dir)?;
    let done = model.step;
    if done >= args.steps {
        if cli.given.contains("steps") {
            bail!(
                "--steps {} is not beyond the {done} steps the run in {} has done",
                args.steps,
                dir.display()
            );
        }
        bail!(
            "the run in {} is finished ({done} of {} steps): pass --steps M to train it further",
            dir.display(),
            args.steps
        );
    }
    let optimizer = checkpoint::load_optimizer(dir, &model)?;
    // The same documents as the run started with, wherever it was started from.
    args.data.input = Some(run.dataset.clone());
    let start = Start::new(&args)
        .with_context(|| format!("cannot rebuild the data of the run in {}", dir.display()))?;
    if start.corpus.vocab != model.vocab {
        bail!(
            "the vocabulary of {} ({} characters) differs from the checkpoint's ({}): the dataset changed since the run started",
            run.dataset.display(),
            start.corpus.vocab.chars().len(),
            model.vocab.chars().len()
        );
    }
    if start.corpus.docs.len() != run.num_docs {
        bail!(
            "{} has {} documents, the run was trained on {}: the dataset changed since the run started",
            run.dataset.display(),
            start.corpus.docs.len(),
            run.num_docs
        );
    }
    let metrics_path = dir.join(METRICS_FILE);
    let mut rows = metrics::read(&metrics_path)?;
    // Steps after the checkpoint (a save cut short) are trained again.
    rows.truncate(done);
    if rows.len() != done || rows.iter().enumerate().any(|(i, r)| r.step != i + 1) {
        bail!(
            "{} does not hold steps 1..={done} of the checkpoint",
            metrics_path.display()
        );
    }
    start.run_config(&args)?.write(dir)?;
    Ok((
        args,
        start,
        Resumed {
            model,
            optimizer,
            rows,
        },
    ))
}

struct TrainTask<'a> {
    args: &'a TrainArgs,
    start: Start,
    resumed: Option<Resumed>,
}

impl EngineTask for TrainTask<'_> {
    type Output = Result<Outcome>;
    fn run<E: Engine>(self, engine: E) -> Result<Outcome> {
        let TrainTask {
            args,
            start,
            resumed,
        } = self;
        let mut trainer = Trainer::new(engine, args.options());
        let mut rows = Vec::new();
        if let Some(r) = resumed {
            trainer.step = r.model.step;
            trainer.adam.t = r.optimizer.t;
            trainer.adam.m = cast_params(&r.optimizer.m);
            trainer.adam.v = cast_params(&r.optimizer.v);
            rows = r.rows;
        }
        let Start {
            corpus,
            n_train,
            mut rng,
            ..
        } = start;
        if !args.quiet {
            println!("num docs: {}", corpus.docs.len());
            println!("vocab size: {}", corpus.vocab.size());
            println!("num params: {}", trainer.engine.layout().total);
        }
        let outcome = train_loop(&mut trainer, args, &corpus, n_train, &mut rows)?;
        if trainer.step < args.steps {
            let at = format!("step {} of {}", trainer.step, args.steps);
            let what = match outcome {
                Outcome::Interrupted => "interrupted",
                Outcome::Done => "stopped",
            };
            match &args.out {
                Some(dir) => eprintln!(
                    "{what} at {at}; saved. Continue with: microgpt train --resume {}",
                    dir.display()
                ),
                None => eprintln!("{what} at {at}; nothing saved (no --out)"),
            }
            return Ok(outcome);
        }
        let mut samples = String::new();
        if args.num_samples > 0 && !args.quiet {
            println!("\n--- inference (new, hallucinated names) ---");
        }
        for i in 0..args.num_samples {
            let ids = sample::generate(&mut trainer.engine, &mut rng, &[], args.temperature);
            let name = corpus.vocab.decode(&ids);
            if !args.quiet {
                println!("sample {:2}: {name}", i + 1);
            }
            samples.push_str(&name);
            samples.push('\n');
        }
        if let Some(dir) = &args.out {
            write_atomic(&dir.join(SAMPLES_FILE), samples.as_bytes())?;
        }
        Ok(Outcome::Done)
    }
}

/// Steps until the run's end, `--stop-after` or Ctrl-C, appending to `rows` and saving on
/// the way and at the end (with `--out`).
fn train_loop<E: Engine>(
    trainer: &mut Trainer<E>,
    args: &TrainArgs,
    corpus: &Corpus,
    n_train: usize,
    rows: &mut Vec<Row>,
) -> Result<Outcome> {
    let (train_docs, val_docs) = corpus.tokens.split_at(n_train);
    let stop_at = args.stop_after.unwrap_or(args.steps).min(args.steps);
    let (mut tokens, elapsed_before) = rows.last().map_or((0, 0.0), |r| (r.tokens, r.elapsed_s));
    let mut metrics_file = match &args.out {
        Some(dir) => Some(MetricsFile::create(&dir.join(METRICS_FILE), rows)?),
        None => None,
    };
    // Metrics first: rows past the checkpoint are dropped on resume, missing rows are not.
    let mut save = |trainer: &Trainer<E>, rows: &[Row]| -> Result<()> {
        let (Some(dir), Some(metrics_file)) = (&args.out, &mut metrics_file) else {
            return Ok(());
        };
        metrics_file.append(rows)?;
        checkpoint::save(
            dir,
            trainer.engine.config(),
            &corpus.vocab,
            trainer.step,
            trainer.engine.params(),
            &trainer.adam,
        )
    };
    interrupt::install()?;
    let mut progress = Progress::new(args.quiet, args.steps, rows);
    let started = Instant::now();
    let mut outcome = Outcome::Done;
    while trainer.step < stop_at {
        if interrupt::requested() {
            outcome = Outcome::Interrupted;
            break;
        }
        let stats = match trainer.step(train_docs) {
            Ok(stats) => stats,
            Err(diverged) => {
                // The weights are still those of the last good step: keep them and the metrics.
                progress.finish();
                save(trainer, rows)?;
                return Err(match &args.out {
                    Some(dir) => diverged.context(format!(
                        "training stopped; the {} steps before are saved in {}",
                        trainer.step,
                        dir.display()
                    )),
                    None => diverged,
                });
            }
        };
        tokens += stats.tokens as u64;
        let evaluate = !val_docs.is_empty()
            && (stats.step == args.steps
                || (args.eval_every > 0 && stats.step.is_multiple_of(args.eval_every)));
        let val_loss = evaluate.then(|| trainer.evaluate(val_docs));
        let row = Row {
            step: stats.step,
            loss: stats.loss,
            lr: stats.lr,
            tokens,
            elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
            val_loss,
        };
        rows.push(row);
        progress.step(&row);
        if args.save_every > 0 && stats.step.is_multiple_of(args.save_every) && stats.step < stop_at
        {
            save(trainer, rows)?;
        }
    }
    progress.finish();
    save(trainer, rows)?;
    Ok(outcome)
}
