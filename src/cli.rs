//! Command-line arguments (clap derive). Defaults equal microgpt.py's settings.

use crate::config::{Activation, ModelConfig};
use crate::dtype::Dtype;
use crate::engine::EngineKind;
use crate::optim::{AdamConfig, LrSchedule};
use crate::train::TrainOptions;
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "microgpt",
    version,
    about = "Train and sample tiny GPTs on a CPU"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (by default exactly microgpt.py's run) and sample from it.
    // Negative numbers parse as values, so `--temperature -1` is refused by its own check.
    #[command(allow_negative_numbers = true)]
    Train(TrainArgs),
    /// Check the tensor engine's loss and gradients against the scalar reference engine.
    Gradcheck(GradcheckArgs),
}

/// Where the documents come from and the seed of the one RNG stream.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct DataArgs {
    /// Text file, one document per line [default: input.txt, downloaded when missing].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Seed of the RNG that shuffles the documents, initialises weights and samples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The model's shape (the vocabulary size comes from the data).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct ModelArgs {
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub n_embd: usize,
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    pub n_head: usize,
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub n_layer: usize,
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub block_size: usize,
    /// MLP non-linearity.
    #[arg(long, value_enum, default_value_t = Activation::Relu)]
    pub activation: Activation,
}

impl ModelArgs {
    pub fn config(&self, vocab_size: usize) -> ModelConfig {
        ModelConfig {
            vocab_size,
            n_embd: self.n_embd,
            n_head: self.n_head,
            n_layer: self.n_layer,
            block_size: self.block_size,
            activation: self.activation,
        }
    }
}

#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, value_enum, default_value_t = EngineKind::default())]
    pub engine: EngineKind,
    /// Element type of the tensor engine (the scalar engine is always f64).
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub steps: usize,
    /// Documents per step.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.01, value_parser = positive)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.85, value_parser = unit_interval)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.99, value_parser = unit_interval)]
    pub beta2: f64,
    #[arg(long, default_value_t = 1e-8, value_parser = positive)]
    pub eps: f64,
    /// Standard deviation of the Gaussian weight init.
    #[arg(long, default_value_t = 0.08, value_parser = positive)]
    pub init_std: f64,
    #[arg(long, value_enum, default_value_t = LrSchedule::Linear)]
    pub lr_schedule: LrSchedule,
    /// Steps of linear learning-rate warm-up before the schedule.
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// Clip the global gradient norm to this value [default: no clipping].
    #[arg(long, value_parser = positive)]
    pub grad_clip: Option<f64>,
    /// Sampling temperature after training.
    #[arg(long, default_value_t = 0.5, value_parser = positive)]
    pub temperature: f64,
    /// Names to sample after training (0 skips sampling).
    #[arg(long, default_value_t = 20)]
    pub num_samples: usize,
    /// Run directory for config.json, metrics.csv and samples.txt.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print neither progress nor step lines.
    #[arg(long)]
    pub quiet: bool,
    /// Threads for the tensor engine's GEMMs (OpenBLAS) and attention.
    #[arg(long, default_value_t = available_cores(), value_parser = at_least_one)]
    pub threads: usize,
}

impl TrainArgs {
    pub fn options(&self) -> TrainOptions {
        TrainOptions {
            steps: self.steps,
            batch_size: self.batch_size,
            adam: AdamConfig {
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
            },
            lr_schedule: self.lr_schedule,
            warmup_steps: self.warmup_steps,
            grad_clip: self.grad_clip,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Documents per checked batch.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Element type of the tensor engine (the reference is always f64).
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    /// Standard deviation of the Gaussian weight init.
    #[arg(long, default_value_t = 0.08, value_parser = positive)]
    pub init_std: f64,
    /// Largest accepted relative error per tensor [default: 1e-9 for f64, 1e-3 for f32].
    #[arg(long, value_parser = positive)]
    pub tolerance: Option<f64>,
    /// Batches to check (the first ones of the shuffled documents).
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub docs: usize,
}

impl GradcheckArgs {
    pub fn tolerance(&self) -> f64 {
        self.tolerance.unwrap_or(match self.dtype {
            Dtype::F64 => 1e-9,
            Dtype::F32 => 1e-3,
        })
    }
}

/// The machine's cores, for `--threads`.
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        Ok(_) => Err("must be a positive number".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        Ok(_) => Err("must be in [0, 1)".into()),
        Err(e) => Err(e.to_string()),
    }
}
