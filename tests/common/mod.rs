//! Shared test helpers: locating `../shared` data (a missing file fails its test unless a
//! skip is asked for) and reading the golden files.
#![allow(dead_code)]

use microgpt::data::Corpus;
use microgpt::model::config::{Activation, ModelConfig};
use microgpt::model::engine::Engine;
use microgpt::numerics::rng::Rng;
use microgpt::settings::{DataMode, DataSettings, ModelArgs, RunSettings};
use microgpt::training::step::{StepStats, Trainer};
use std::path::{Path, PathBuf};

/// Set to 1 to skip, visibly, the tests whose data or tools are missing; without it they
/// fail, so a test never passes for want of what it checks against.
pub const SKIP_VAR: &str = "MICROGPT_SKIP_MISSING_DATA";

/// Fails the test, saying `what` is missing and how to skip; when [`SKIP_VAR`] asks for
/// skips, prints a SKIPPED line instead and returns (the caller then skips).
pub fn missing(what: &str) {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        // Straight to the terminal, past the test harness's capture, so the skip shows.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED (not a pass): {what}");
        return;
    }
    panic!("{what} (set {SKIP_VAR}=1 to skip the tests that need it)");
}

/// `../shared/<rel>` beside the project root; missing, see [`missing`].
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    missing(&format!("{} not found", path.display()));
    None
}

pub fn names_path() -> Option<PathBuf> {
    shared("data/names.txt")
}

/// One golden file: the original program's real output for one configuration.
pub struct Golden {
    pub name: String,
    pub seed: u64,
    pub steps: usize,
    pub temperature: f64,
    pub num_samples: usize,
    pub model: ModelArgs,
    pub num_docs: usize,
    pub vocab_size: usize,
    pub num_params: usize,
    pub losses: Vec<f64>,
    pub samples: Vec<String>,
    pub first_step_grads: Vec<f64>,
}

/// Where a golden run starts: the shuffled corpus, the initial weights, and the RNG stream
/// after them (sampling continues from it).
pub struct GoldenStart {
    pub rng: Rng,
    pub corpus: Corpus,
    pub cfg: ModelConfig,
    pub params: Vec<f64>,
}

impl Golden {
    pub fn config(&self) -> ModelConfig {
        self.model.config(self.vocab_size)
    }

    /// Seeds, shuffles and initialises as the original did for this golden.
    pub fn start(&self, names: &Path) -> GoldenStart {
        let mut rng = Rng::new(self.seed);
        let data = DataSettings {
            input: Some(names.to_path_buf()),
            data: DataMode::Lines,
            seed: self.seed,
            val_frac: 0.0,
        };
        let corpus = Corpus::load(&data, self.model.block_size, &mut rng).unwrap();
        assert_eq!(corpus.num_docs(), self.num_docs, "{}", self.name);
        let cfg = self.config();
        let params = cfg.layout().init(&mut rng, self.model.init_std);
        assert_eq!(params.len(), self.num_params, "{}", self.name);
        GoldenStart {
            rng,
            corpus,
            cfg,
            params,
        }
    }

    /// A trainer with the original's settings for this golden's number of steps.
    pub fn trainer<E: Engine>(&self, engine: E) -> Trainer<E> {
        let mut settings = RunSettings::default();
        settings.schedule.steps = self.steps;
        Trainer::new(engine, &settings)
    }
}

/// The trainer's next step on the corpus's documents, one at a time (the original's order).
pub fn step<E: Engine>(trainer: &mut Trainer<E>, corpus: &Corpus) -> StepStats {
    let batch = corpus
        .batches(1, trainer.engine.config().block_size, 0)
        .batch(trainer.step);
    trainer.step(&batch).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().parse().unwrap())
        .collect()
}

pub fn goldens() -> Vec<Golden> {
    let Some(dir) = shared("golden") else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    files
        .iter()
        .map(|path| {
            let j: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let c = &j["config"];
            let get = |k: &str, default: u64| c.get(k).map_or(default, |v| v.as_u64().unwrap());
            assert!(c.get("input").is_none(), "golden on another dataset");
            Golden {
                name: path.file_name().unwrap().to_string_lossy().into(),
                seed: get("seed", 42),
                steps: get("steps", 1000) as usize,
                temperature: c.get("temperature").map_or(0.5, |v| v.as_f64().unwrap()),
                num_samples: get("num_samples", 20) as usize,
                model: ModelArgs {
                    n_embd: get("n_embd", 16) as usize,
                    n_head: get("n_head", 4) as usize,
                    n_layer: get("n_layer", 1) as usize,
                    block_size: get("block_size", 16) as usize,
                    activation: Activation::Relu,
                    init_std: 0.08,
                },
                num_docs: j["num_docs"].as_u64().unwrap() as usize,
                vocab_size: j["vocab_size"].as_u64().unwrap() as usize,
                num_params: j["num_params"].as_u64().unwrap() as usize,
                losses: floats(&j["losses"]),
                samples: j["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
                first_step_grads: floats(&j["first_step_grads"]),
            }
        })
        .collect()
}

pub mod alloc;
pub mod cli;
pub mod deadline;
pub mod live;
