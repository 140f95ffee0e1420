//! Command-line arguments (clap derive). The defaults are [`RunSettings::default`]'s, which
//! are microgpt.py's; `train` flags convert into a [`RunSettings`].

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use microgpt::model::config::Activation;
use microgpt::model::engine::EngineKind;
use microgpt::model::optim::LrSchedule;
use microgpt::numerics::dtype::Dtype;
use microgpt::settings::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use values::*;

mod values;

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

impl Cli {
    /// Parses `std::env::args`, recording which `train` flags were given explicitly: a
    /// resumed run keeps its stored settings and takes only those (see [`TrainArgs::given`]).
    pub fn parse_with_sources() -> Cli {
        let parsed = Cli::command()
            .try_get_matches()
            .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (m, cli)));
        let (matches, mut cli) = parsed.unwrap_or_else(|e| {
            if matches!(
                e.kind(),
                ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                eprintln!("error: {}", no_command());
                std::process::exit(2);
            }
            if e.use_stderr() {
                eprintln!("error: {}", one_line(&e));
                std::process::exit(2);
            }
            e.exit() // --help, --version
        });
        if let (Command::Train(args), Some(("train", m))) = (&mut cli.command, matches.subcommand())
        {
            args.given = m
                .ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.to_string())
                .collect();
        }
        cli
    }
}

/// What `microgpt` with no command says: the commands, in one line.
fn no_command() -> String {
    let cmd = Cli::command();
    let names: Vec<&str> = cmd
        .get_subcommands()
        .map(|c| c.get_name())
        .filter(|&n| n != "help")
        .collect();
    format!(
        "no command given: use one of {} (microgpt --help describes them)",
        names.join(", ")
    )
}

// Negative numbers parse as values in every command, so `--temperature -1` is refused by
// its flag's own check ("must be a positive number"), not as an unknown argument.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (by default exactly microgpt.py's run) and sample from it.
    #[command(allow_negative_numbers = true)]
    Train(TrainArgs),
    /// Sample from a trained run, or compare temperatures (--temperatures).
    #[command(allow_negative_numbers = true)]
    Sample(SampleArgs),
    /// Train every combination of a grid of settings, then compare the runs.
    #[command(allow_negative_numbers = true)]
    Sweep(SweepArgs),
    /// Plot and summarise run directories side by side.
    #[command(allow_negative_numbers = true)]
    Compare(CompareArgs),
    /// Check the tensor engine's loss and gradients against the scalar reference engine.
    #[command(allow_negative_numbers = true)]
    Gradcheck(GradcheckArgs),
    /// Show a trained model's prediction at every position of a text and its attention maps.
    #[command(allow_negative_numbers = true)]
    Inspect(InspectArgs),
}

impl Command {
    /// `--max-memory`, for the commands that build a model.
    pub fn max_memory(&self) -> Option<u64> {
        match self {
            Command::Train(a) => a.memory.max_memory,
            Command::Sweep(a) => a.train.memory.max_memory,
            Command::Sample(a) => a.memory.max_memory,
            Command::Gradcheck(a) => a.memory.max_memory,
            // Readers of a run: the checkpoint's size bounds what they build.
            Command::Compare(_) | Command::Inspect(_) => None,
        }
    }
}

/// The memory limit of the check before a model is built ([`microgpt::training::memory`]).
#[derive(Args, Clone, Debug)]
pub struct MemoryArgs {
    /// Refuse models estimated to need more than SIZE of memory (8G, 512M, ...)
    /// [default: the memory available when the command starts].
    #[arg(long, value_parser = size, value_name = "SIZE")]
    pub max_memory: Option<u64>,
}

/// The defaults every flag shows.
fn d() -> RunSettings {
    RunSettings::default()
}

/// Where the documents come from and the seed of the one RNG stream.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Text file [default: input.txt, downloaded when missing].
    #[arg(long, value_parser = Utf8Path)]
    pub input: Option<PathBuf>,
    /// lines: one document per line (the original's); stream: the whole text as one
    /// sequence, trained on random windows.
    #[arg(long, default_value_t = d().data.data, value_parser = choice::<DataMode>())]
    pub data: DataMode,
    /// Seed of the RNG that shuffles the documents, initialises weights and samples.
    #[arg(long, default_value_t = d().data.seed, value_parser = whole::<u64>)]
    pub seed: u64,
}

/// The model's shape (the vocabulary size comes from the data) and its initialisation.
#[derive(Args, Clone, Debug)]
pub struct ModelFlags {
    #[arg(long, default_value_t = d().model.n_embd, value_parser = at_least_one)]
    pub n_embd: usize,
    #[arg(long, default_value_t = d().model.n_head, value_parser = at_least_one)]
    pub n_head: usize,
    #[arg(long, default_value_t = d().model.n_layer, value_parser = at_least_one)]
    pub n_layer: usize,
    #[arg(long, default_value_t = d().model.block_size, value_parser = at_least_one)]
    pub block_size: usize,
    /// MLP non-linearity.
    #[arg(long, default_value_t = d().model.activation, value_parser = choice::<Activation>())]
    pub activation: Activation,
    /// Standard deviation of the Gaussian weight init.
    #[arg(long, default_value_t = d().model.init_std, value_parser = positive)]
    pub init_std: f64,
}

impl ModelFlags {
    pub fn args(&self) -> ModelArgs {
        ModelArgs {
            n_embd: self.n_embd,
            n_head: self.n_head,
            n_layer: self.n_layer,
            block_size: self.block_size,
            activation: self.activation,
            init_std: self.init_std,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Hold out the last fraction F of the shuffled documents for validation.
    #[arg(long, default_value_t = d().data.val_frac, value_parser = unit_interval, value_name = "F")]
    pub val_frac: f64,
    #[command(flatten)]
    pub model: ModelFlags,
    #[arg(long, default_value_t = d().optimizer.lr, value_parser = positive)]
    pub lr: f64,
    #[arg(long, default_value_t = d().optimizer.beta1, value_parser = unit_interval)]
    pub beta1: f64,
    #[arg(long, default_value_t = d().optimizer.beta2, value_parser = unit_interval)]
    pub beta2: f64,
    #[arg(long, default_value_t = d().optimizer.eps, value_parser = positive)]
    pub eps: f64,
    /// Decoupled weight decay (AdamW) of the weight matrices (0: the original's Adam).
    #[arg(long, default_value_t = d().optimizer.weight_decay, value_parser = non_negative)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value [default: no clipping].
    #[arg(long, value_parser = positive)]
    pub grad_clip: Option<f64>,
    #[arg(long, default_value_t = d().schedule.steps, value_parser = at_least_one)]
    pub steps: usize,
    /// Documents per step.
    #[arg(long, default_value_t = d().schedule.batch_size, value_parser = at_least_one)]
    pub batch_size: usize,
    #[arg(long, default_value_t = d().schedule.lr_schedule, value_parser = choice::<LrSchedule>())]
    pub lr_schedule: LrSchedule,
    /// Steps of linear learning-rate warm-up before the schedule.
    #[arg(long, default_value_t = d().schedule.warmup_steps, value_parser = whole::<usize>)]
    pub warmup_steps: usize,
    /// Record the validation loss every N steps (0: only at the last step).
    #[arg(long, default_value_t = d().evaluation.eval_every, value_parser = whole::<usize>, value_name = "N")]
    pub eval_every: usize,
    /// Stream mode: validate on at most N evenly spaced windows of the held-out text
    /// (0: all).
    #[arg(long, default_value_t = d().evaluation.eval_windows, value_name = "N")]
    pub eval_windows: usize,
    /// Sampling temperature after training.
    #[arg(long, default_value_t = d().sampling.temperature, value_parser = positive)]
    pub temperature: f64,
    /// Names to sample after training (0 skips sampling).
    #[arg(long, default_value_t = d().sampling.num_samples, value_parser = whole::<usize>)]
    pub num_samples: usize,
    #[arg(long, default_value_t = d().system.engine, value_parser = choice::<EngineKind>())]
    pub engine: EngineKind,
    /// Element type of the tensor engine (the scalar engine is always f64).
    #[arg(long, default_value_t = d().system.dtype, value_parser = choice::<Dtype>())]
    pub dtype: Dtype,
    /// Threads for the tensor engine. Runs are reproducible for a given count; large
    /// models' last bits can differ between counts.
    #[arg(long, default_value_t = d().system.threads, value_parser = at_least_one, value_name = "N")]
    pub threads: usize,
    /// Save the checkpoint and metrics every N steps (0: only when stopping).
    #[arg(long, default_value_t = d().system.save_every, value_parser = whole::<usize>, value_name = "N")]
    pub save_every: usize,
    /// Run directory: config.json, metrics.csv, samples.txt and the checkpoint.
    #[arg(long, value_name = "DIR", value_parser = Utf8Path)]
    pub out: Option<PathBuf>,
    /// Stop (and save) once N steps of the run are done; continue later with --resume.
    #[arg(long, value_parser = at_least_one, value_name = "N")]
    pub stop_after: Option<usize>,
    /// Continue the run in DIR with its stored settings (--steps M extends it to M steps).
    #[arg(long, value_name = "DIR", value_parser = Utf8Path)]
    pub resume: Option<PathBuf>,
    /// Print neither progress nor step lines.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub memory: MemoryArgs,
    /// Flags given on the command line (clap ids), filled by [`Cli::parse_with_sources`].
    #[arg(skip)]
    pub given: BTreeSet<String>,
}

impl TrainArgs {
    /// The run's settings from the flags.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            data: DataSettings {
                input: self.data.input.clone(),
                data: self.data.data,
                seed: self.data.seed,
                val_frac: self.val_frac,
            },
            model: self.model.args(),
            optimizer: OptimizerSettings {
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                grad_clip: self.grad_clip,
            },
            schedule: ScheduleSettings {
                steps: self.steps,
                batch_size: self.batch_size,
                lr_schedule: self.lr_schedule,
                warmup_steps: self.warmup_steps,
            },
            evaluation: EvalSettings {
                eval_every: self.eval_every,
                eval_windows: self.eval_windows,
            },
            sampling: SamplingSettings {
                temperature: self.temperature,
                num_samples: self.num_samples,
            },
            system: SystemSettings {
                engine: self.engine,
                dtype: self.dtype,
                threads: self.threads,
                save_every: self.save_every,
            },
        }
    }

    /// The settings given on the command line, by flat name.
    pub fn given_settings(&self) -> SettingsMap {
        let mut map = self.settings().to_map();
        map.retain(|k, _| self.given.contains(k));
        map
    }
}

#[derive(Args, Clone, Debug)]
pub struct SampleArgs {
    /// Run directory written by `train --out`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Sampling temperature [default: the run's].
    #[arg(long, value_parser = positive)]
    pub temperature: Option<f64>,
    /// Samples to draw [default: the run's --num-samples; 200 per temperature with --temperatures].
    #[arg(long, value_parser = whole::<usize>)]
    pub num_samples: Option<usize>,
    /// Seed a fresh RNG [default: continue the run's own stream, as train's samples did].
    #[arg(long, value_parser = whole::<u64>)]
    pub seed: Option<u64>,
    /// Start every sample with this text (stream runs: continue it; default a newline).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Stream runs: characters to generate after the prompt [default: 300].
    #[arg(long, value_parser = at_least_one, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Compare these temperatures (mission B): writes DIR/temperatures.md and .json.
    #[arg(long, value_delimiter = ',', value_parser = positive)]
    pub temperatures: Option<Vec<f64>>,
    /// Run the model on this engine [default: the run's].
    #[arg(long, value_parser = choice::<EngineKind>())]
    pub engine: Option<EngineKind>,
    #[command(flatten)]
    pub memory: MemoryArgs,
}

#[derive(Args, Clone, Debug)]
pub struct SweepArgs {
    /// KEY=V1,V2,...: a train setting (n_embd, n_layer, lr, activation, ...) and its values;
    /// repeat for more keys. Runs go to OUT/KEY=V,KEY=V.
    #[arg(long, value_name = "KEY=VALUES")]
    pub grid: Vec<String>,
    /// Runs to train at once.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub jobs: usize,
    /// Print one `microgpt train` command line per run instead of running them.
    #[arg(long)]
    pub print_commands: bool,
    /// Train finished runs of an earlier sweep on to this sweep's --steps (else refused).
    #[arg(long)]
    pub extend: bool,
    /// Replace the comparison (summary.md, ...) an earlier sweep wrote to OUT (else refused).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Args, Clone, Debug)]
pub struct CompareArgs {
    /// Run directories to compare.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where loss_curves.svg/.png and summary.md/.csv go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Plot the loss on a logarithmic axis covering every value, the first steps included
    /// [default: a linear axis over the runs' robust extent].
    #[arg(long)]
    pub log_y: bool,
    /// Replace outputs that exist (else refused).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Clone, Debug)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelFlags,
    /// Documents per checked batch.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Element type of the tensor engine (the reference is always f64).
    #[arg(long, default_value_t = Dtype::F64, value_parser = choice::<Dtype>())]
    pub dtype: Dtype,
    /// Largest accepted relative error per tensor [default: 1e-9 for f64, 1e-3 for f32].
    #[arg(long, value_parser = positive)]
    pub tolerance: Option<f64>,
    /// Batches to check (the first ones of the shuffled documents).
    #[arg(long, default_value_t = 3, value_parser = at_least_one, value_name = "N")]
    pub batches: usize,
    #[command(flatten)]
    pub memory: MemoryArgs,
}

impl GradcheckArgs {
    pub fn tolerance(&self) -> f64 {
        self.tolerance.unwrap_or(match self.dtype {
            Dtype::F64 => 1e-9,
            Dtype::F32 => 1e-3,
        })
    }
}

#[derive(Args, Clone, Debug)]
pub struct InspectArgs {
    /// Run directory written by `train --out`; repeat to compare runs position by position.
    #[arg(long, required = true, value_name = "DIR")]
    pub run: Vec<PathBuf>,
    /// A name (lines runs, at most block_size characters) or a passage (stream runs, at
    /// most block_size + 1 characters).
    #[arg(long, allow_hyphen_values = true)]
    pub text: String,
    /// Write inspect.md, inspect.json and the attention maps here [default: the table to
    /// stdout, each run's attention maps to its directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run the model on this engine [default: the run's].
    #[arg(long, value_parser = choice::<EngineKind>())]
    pub engine: Option<EngineKind>,
    /// Replace outputs that exist (else refused).
    #[arg(long)]
    pub force: bool,
}

/// A clap error as one line: its message without the usage and help hints.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    message.join(" ").trim_start_matches("error: ").to_string()
}
