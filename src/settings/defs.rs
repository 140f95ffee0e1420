//! One definition per setting, ripgrep's `defs.rs` style: each setting's name (its flag and
//! `config.json` key), kind and rule, default, role, the formats that record it, and its
//! help, in [`GROUPS`]; beside it the plain typed groups a run's code reads (nanoGPT style,
//! the model's arguments apart). Each field of a group is the setting of its name in
//! [`GROUPS`]; everything else (flags, defaults, parsing, validation, `config.json`, sweep
//! keys, what a resume may change, `compare` labels) is derived from the table.
//!
//! Adding a setting: a field in its group, an entry in its group of [`GROUPS`], the code
//! that uses it, and its docs. A setting that older run directories lack is `since` a new
//! format version, with the value that reproduces the old behaviour.

use super::choice::{names, DataMode};
use super::kind::DefaultValue::{Cores, Null, Text};
use super::kind::Kind::{Choice, Count, Path, Real, Whole};
use super::kind::Role::{Identity, Length, Runtime};
use super::kind::Since::{Always, Format};
use super::kind::{non_negative, positive, temperature, unit_interval, Setting};
use crate::model::config::Activation;
use crate::model::engine::EngineKind;
use crate::model::optim::LrSchedule;
use crate::numerics::dtype::Dtype;
use crate::numerics::pool::MAX_THREADS;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The largest `batch_size`, `block_size`, `n_embd` and `n_head`, and `n_layer`:
/// far beyond what trains on a CPU, small enough that a typo is an error rather than an
/// allocator abort.
pub const MAX_WIDTH: u64 = 1 << 16;
pub const MAX_LAYERS: u64 = 1 << 10;

/// The documents and the seed of the one RNG stream (shuffle, init, samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub input: Option<PathBuf>,
    pub data: DataMode,
    pub seed: u64,
    pub val_frac: f64,
}

/// The model's shape (the vocabulary size comes from the data) and its initialisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArgs {
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub block_size: usize,
    pub activation: Activation,
    pub init_std: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSettings {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub grad_clip: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub steps: usize,
    pub batch_size: usize,
    pub lr_schedule: LrSchedule,
    pub warmup_steps: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    pub eval_every: usize,
    pub eval_windows: usize,
}

/// The samples drawn after training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSettings {
    pub temperature: f64,
    pub num_samples: usize,
}

/// How the run is computed and saved, not what it computes (but for `dtype`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSettings {
    pub engine: EngineKind,
    pub dtype: Dtype,
    pub threads: usize,
    pub save_every: usize,
}

/// Every stored setting of a run, by group as `config.json` stores them. The defaults
/// ([`Default`], from [`GROUPS`]) are microgpt.py's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub data: DataSettings,
    pub model: ModelArgs,
    pub optimizer: OptimizerSettings,
    pub schedule: ScheduleSettings,
    pub evaluation: EvalSettings,
    pub sampling: SamplingSettings,
    pub system: SystemSettings,
}

/// A group of [`RunSettings`] (its field's name) and its settings, in `--help`'s order.
pub type Group = (&'static str, &'static [Setting]);

/// Every setting, by group.
pub const GROUPS: &[Group] = &[
    ("data", DATA),
    ("model", MODEL),
    ("optimizer", OPTIMIZER),
    ("schedule", SCHEDULE),
    ("evaluation", EVALUATION),
    ("sampling", SAMPLING),
    ("system", SYSTEM),
];

const DATA: &[Setting] = &[
    Setting {
        name: "input",
        kind: Path,
        default: Null("input.txt, downloaded when missing"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Text file",
    },
    Setting {
        name: "data",
        kind: Choice(names::<DataMode>),
        default: Text("lines"),
        role: Identity,
        since: Format { version: 3, absent_means: "lines" },
        value_name: None,
        help: "lines: one document per line (the original's); stream: the whole text as one sequence, trained on random windows",
    },
    Setting {
        name: "seed",
        kind: Whole,
        default: Text("42"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Seed of the RNG that shuffles the documents, initialises weights and samples",
    },
    Setting {
        name: "val_frac",
        kind: Real(unit_interval),
        default: Text("0"),
        role: Identity,
        since: Always,
        value_name: Some("F"),
        help: "Hold out the last fraction F for validation: of the shuffled documents (lines), the contiguous tail of the text (stream)",
    },
];

const MODEL: &[Setting] = &[
    Setting {
        name: "n_embd",
        kind: Count(MAX_WIDTH),
        default: Text("16"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Embedding width (a multiple of --n-head)",
    },
    Setting {
        name: "n_head",
        kind: Count(MAX_WIDTH),
        default: Text("4"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Attention heads per layer",
    },
    Setting {
        name: "n_layer",
        kind: Count(MAX_LAYERS),
        default: Text("1"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Transformer layers",
    },
    Setting {
        name: "block_size",
        kind: Count(MAX_WIDTH),
        default: Text("16"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Context length: the most positions the model attends over",
    },
    Setting {
        name: "activation",
        kind: Choice(names::<Activation>),
        default: Text("relu"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "MLP non-linearity (gelu: GPT-2's tanh approximation; relu2: squared relu)",
    },
    Setting {
        name: "init_std",
        kind: Real(positive),
        default: Text("0.08"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Standard deviation of the Gaussian weight init",
    },
];

const OPTIMIZER: &[Setting] = &[
    Setting {
        name: "lr",
        kind: Real(positive),
        default: Text("0.01"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Adam's learning rate before warm-up and decay",
    },
    Setting {
        name: "beta1",
        kind: Real(unit_interval),
        default: Text("0.85"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Adam's decay rate of the gradient's mean",
    },
    Setting {
        name: "beta2",
        kind: Real(unit_interval),
        default: Text("0.99"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Adam's decay rate of the gradient's square",
    },
    Setting {
        name: "eps",
        kind: Real(positive),
        default: Text("1e-8"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Adam's epsilon, added to the root of the second moment",
    },
    Setting {
        name: "weight_decay",
        kind: Real(non_negative),
        default: Text("0"),
        role: Identity,
        since: Format {
            version: 3,
            absent_means: "0",
        },
        value_name: None,
        help: "Decoupled weight decay (AdamW) of the weight matrices: p <- p (1 - lr W) before each Adam update (0: the original's Adam)",
    },
    Setting {
        name: "grad_clip",
        kind: Real(positive),
        default: Null("no clipping"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Clip the global gradient norm to this value",
    },
];

const SCHEDULE: &[Setting] = &[
    Setting {
        name: "steps",
        kind: Count(u64::MAX),
        default: Text("1000"),
        role: Length,
        since: Always,
        value_name: None,
        help: "Training steps of the run (--resume --steps M extends it to M)",
    },
    Setting {
        name: "batch_size",
        kind: Count(MAX_WIDTH),
        default: Text("1"),
        role: Identity,
        since: Always,
        value_name: None,
        help:
            "Sequences per step: documents (lines) or windows of block_size + 1 characters (stream)",
    },
    Setting {
        name: "lr_schedule",
        kind: Choice(names::<LrSchedule>),
        default: Text("linear"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Learning-rate decay over the run's steps",
    },
    Setting {
        name: "warmup_steps",
        kind: Whole,
        default: Text("0"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Steps of linear learning-rate warm-up before the schedule",
    },
];

const EVALUATION: &[Setting] = &[
    Setting {
        name: "eval_every",
        kind: Whole,
        default: Text("0"),
        role: Runtime,
        since: Always,
        value_name: Some("N"),
        help: "Record the validation loss every N steps (0: only at the last step)",
    },
    Setting {
        name: "eval_windows",
        kind: Whole,
        default: Text("512"),
        role: Runtime,
        since: Format {
            version: 3,
            absent_means: "0",
        },
        value_name: Some("N"),
        help:
            "Stream mode: validate on at most N evenly spaced windows of the held-out text, the same at every evaluation (0: all)",
    },
];

const SAMPLING: &[Setting] = &[
    Setting {
        name: "temperature",
        kind: Real(temperature),
        default: Text("0.5"),
        role: Runtime,
        since: Always,
        value_name: None,
        help: "Sampling temperature after training (0: greedy, always the most likely character)",
    },
    Setting {
        name: "num_samples",
        kind: Whole,
        default: Text("20"),
        role: Runtime,
        since: Always,
        value_name: None,
        help:
            "Names to sample after training (0 skips sampling; stream runs draw one continuation)",
    },
];

const SYSTEM: &[Setting] = &[
    Setting {
        name: "engine",
        kind: Choice(names::<EngineKind>),
        default: Text("tensor"),
        role: Runtime,
        since: Always,
        value_name: None,
        help: "tensor: batched GEMMs, fast; scalar: the bit-exact autograd reference, slow",
    },
    Setting {
        name: "dtype",
        kind: Choice(names::<Dtype>),
        default: Text("f64"),
        role: Identity,
        since: Always,
        value_name: None,
        help: "Element type of the tensor engine (the scalar engine is always f64)",
    },
    Setting {
        name: "threads",
        kind: Count(MAX_THREADS as u64),
        default: Cores,
        role: Runtime,
        since: Format { version: 2, absent_means: "1" },
        value_name: Some("N"),
        help: "Threads for the tensor engine. Runs are reproducible for a given count; large models' last bits can differ between counts",
    },
    Setting {
        name: "save_every",
        kind: Whole,
        default: Text("250"),
        role: Runtime,
        since: Always,
        value_name: Some("N"),
        help: "Save the checkpoint and metrics every N steps (0: only when stopping)",
    },
];
