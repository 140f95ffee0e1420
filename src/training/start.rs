//! What a run starts from — its data and initial weights, drawn in the original's order
//! (shuffle, then init) — and, for a resumed run, its directory taken for writing and its
//! checkpoint, settings and metrics loaded and checked against each other and against the
//! dataset, so that the run continues exactly where its last checkpoint left it.

use crate::data::{input, Corpus, Text};
use crate::model::config::ModelConfig;
use crate::numerics::bf16;
use crate::numerics::dtype::Dtype;
use crate::numerics::rng::Rng;
use crate::rundir::checkpoint::{
    self, ModelCheckpoint, OptimizerState, RunConfig, CONFIG_FILE, METRICS_FILE, SAMPLES_FILE,
};
use crate::rundir::lock::RunLock;
use crate::rundir::metrics::{self, Row};
use crate::settings::validate::resumed;
use crate::settings::DataMode;
use crate::settings::{RunSettings, SettingsMap};
use crate::training::memory::{self, Kind, Need, Workload};
use crate::training::sample::STREAM_CHARS;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Parameters a model may have: four copies (weights, gradients, Adam's two moments) of
/// 2^28 f64s are 8 GiB, beyond which a typo is more likely than intent.
const MAX_PARAMS: usize = 1 << 28;

/// What a run starts from, in the original's order of draws: shuffle, then init.
pub struct Start {
    pub corpus: Corpus,
    pub cfg: ModelConfig,
    /// The initial weights in layout order.
    pub init: Vec<f64>,
    /// The stream after both, for sampling at the end.
    pub rng: Rng,
    /// The bytes the run is estimated to need at its peak, in all (checked against the
    /// limits before anything of the model is allocated).
    pub memory: u128,
}

impl Start {
    pub fn new(settings: &RunSettings) -> Result<Self> {
        let mut rng = Rng::new(settings.data.seed);
        let budget = |read, most| {
            let build = Need {
                what: "splitting it into documents and tokens".into(),
                bytes: Some(most),
                kind: Kind::Resident,
                advice: "use a smaller dataset",
            };
            memory::check_needs_now(&[Need::dataset(read), build]).map(|_| ())
        };
        let block_size = settings.model.block_size;
        let corpus = Corpus::load_within(&settings.data, block_size, &mut rng, &budget)?;
        let cfg = settings.model.config(corpus.vocab.size());
        cfg.validate()?;
        let samples = match settings.data.data {
            DataMode::Lines => Need::samples(settings.sampling.num_samples, block_size),
            DataMode::Stream => Need::samples(settings.sampling.num_samples.min(1), STREAM_CHARS),
        };
        let needs = [
            Need::dataset(corpus.bytes()),
            samples,
            Need::threads(settings.system.threads),
        ];
        let memory = memory::check_with(&cfg, &[Workload::for_run(settings, &corpus)], &needs)?;
        let total = cfg.layout().total;
        if total > MAX_PARAMS {
            bail!("the model would have {total} parameters; microgpt trains at most {MAX_PARAMS}: choose a smaller --n-embd, --n-layer or --block-size");
        }
        let init = cfg.layout().init(&mut rng, settings.model.init_std);
        Ok(Start {
            corpus,
            cfg,
            init,
            rng,
            memory,
        })
    }

    /// `config.json` of a run of `settings` from this start.
    pub fn run_config(&self, settings: &RunSettings) -> Result<RunConfig> {
        let c = &self.corpus;
        // A pipe (`--input <(zcat names.gz)`) is gone once read: recorded as given.
        let dataset = std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone());
        let (num_train_docs, num_val_docs) = match &c.text {
            Text::Lines { docs, n_train, .. } => (*n_train, docs.len() - n_train),
            Text::Stream { .. } => (0, 0),
        };
        let (num_train_chars, num_val_chars) = c.split_sizes();
        Ok(RunConfig {
            format_version: checkpoint::FORMAT_VERSION,
            settings: settings.clone(),
            model: self.cfg.clone(),
            dataset,
            dataset_sha256: Some(c.sha256.clone()),
            vocab: c.vocab.chars().iter().collect(),
            num_docs: c.num_docs(),
            num_train_docs,
            num_val_docs,
            num_train_chars: Some(num_train_chars),
            num_val_chars: Some(num_val_chars),
            num_params: self.cfg.layout().total,
            bf16_kernel: match settings.system.dtype {
                Dtype::Bf16 => Some(bf16::kernel()?),
                _ => None,
            },
        })
    }
}

/// Where a resumed run continues from.
pub struct Resumed {
    pub model: ModelCheckpoint,
    pub optimizer: OptimizerState,
    /// Every step of the run so far.
    pub rows: Vec<Row>,
}

/// Takes the run in `dir` for writing and loads it, with the `given` settings that may
/// change on resume (see [`crate::settings::Role`]).
pub fn resume(dir: &Path, given: &SettingsMap) -> Result<(RunLock, RunSettings, Start, Resumed)> {
    // A clear error for what is no run directory, before anything is created in it.
    RunConfig::read(dir)?;
    let mut lock = RunLock::acquire(dir)?;
    let (run, model) = checkpoint::load_run(dir)?;
    let mut given = given.clone();
    let dataset = dataset_path(&run, &mut given)?;
    let mut settings = resumed(&run.settings, given.clone(), &dir.join(CONFIG_FILE))?;
    let done = model.step;
    let steps = settings.schedule.steps;
    // A run stopped between its last checkpoint and its samples only samples.
    let unsampled = done == steps && !dir.join(SAMPLES_FILE).exists();
    if done >= steps && !unsampled {
        if given.contains_key("steps") {
            bail!(
                "--steps {steps} is not beyond the {done} steps the run in {} has done",
                dir.display()
            );
        }
        bail!(
            "the run in {} is finished ({done} of {steps} steps): pass --steps M to train it further",
            dir.display()
        );
    }
    let optimizer = checkpoint::load_optimizer(dir, &model)?;
    // The same documents as the run started with, wherever it was started from.
    settings.data.input = Some(dataset);
    let start = Start::new(&settings)
        .with_context(|| format!("cannot rebuild the data of the run in {}", dir.display()))?;
    same_data(&start, &run, &model)?;
    let rows = metrics::read_span(&dir.join(METRICS_FILE), &model.manifest.metrics)?;
    lock.write_atomic(CONFIG_FILE, &start.run_config(&settings)?.json()?)?;
    let resumed = Resumed {
        model,
        optimizer,
        rows,
    };
    Ok((lock, settings, start, resumed))
}
/// Where to read the run's dataset from: its recorded path when that is a regular file;
/// else (a pipe or FIFO it was trained from, a file since removed) `--input` taken out of
/// `given`, whose text must be the same (checked by [`same_data`]).
fn dataset_path(run: &RunConfig, given: &mut SettingsMap) -> Result<PathBuf> {
    if input::check_rereadable(&run.dataset).is_ok() {
        return Ok(run.dataset.clone());
    }
    match given.remove("input").as_ref().and_then(|v| v.as_str()) {
        Some(path) => {
            let path = PathBuf::from(path);
            input::check_rereadable(&path)
                .with_context(|| format!("--input {}", path.display()))?;
            Ok(path)
        }
        None => match input::check_rereadable(&run.dataset) {
            Err(e) => {
                bail!("the run's dataset {e:#}: resume with --input FILE holding the same text")
            }
            Ok(()) => Ok(run.dataset.clone()),
        },
    }
}

/// Errors unless the dataset is still the one the run was trained on.
fn same_data(start: &Start, run: &RunConfig, model: &ModelCheckpoint) -> Result<()> {
    if start.corpus.vocab != model.vocab {
        bail!(
            "the vocabulary of {} ({} characters) differs from the checkpoint's ({}): the dataset changed since the run started",
            run.dataset.display(),
            start.corpus.vocab.chars().len(),
            model.vocab.chars().len()
        );
    }
    let sizes = (start.corpus.num_docs(), start.corpus.split_sizes());
    // Formats before 3 recorded no split sizes.
    let then = (run.num_docs, run.split_sizes().unwrap_or(sizes.1));
    if sizes != then {
        bail!(
            "{} is not the text the run was trained on ({} documents and {} + {} characters now, {} and {} + {} then): the dataset changed since the run started",
            run.dataset.display(),
            sizes.0,
            sizes.1 .0,
            sizes.1 .1,
            then.0,
            then.1 .0,
            then.1 .1
        );
    }
    if run
        .dataset_sha256
        .as_ref()
        .is_some_and(|then| *then != start.corpus.sha256)
    {
        bail!(
            "{} is not the text the run was trained on (its SHA-256 differs): the dataset changed since the run started; put the original back to resume",
            run.dataset.display()
        );
    }
    Ok(())
}
