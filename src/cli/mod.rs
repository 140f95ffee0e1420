//! Command-line arguments (clap derive). The settings' flags are built from the library's
//! table (`flags.rs`), so their defaults are microgpt.py's and their rules the ones
//! `config.json` is checked with; `train` flags convert into a [`RunSettings`]. A command
//! lists only the flags it takes.

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use flags::{setting, AllSettings, GradcheckSettings, SettingFlags};
use microgpt::model::engine::EngineKind;
use microgpt::numerics::dtype::Dtype;
use microgpt::settings::{RunSettings, SettingsMap};
use std::path::PathBuf;
use values::*;

mod flags;
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
    /// Parses `std::env::args`; errors are one line and exit 2. Which `train` settings were
    /// given explicitly is recorded by their flags (a resumed run takes only those: see
    /// [`TrainArgs::given_settings`]).
    pub fn parse_with_sources() -> Cli {
        let cli = Cli::try_parse().unwrap_or_else(|e| {
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
            Command::Sweep(a) => a.memory.max_memory,
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

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub flags: SettingFlags<AllSettings>,
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
}

impl TrainArgs {
    /// The run's settings from the flags.
    pub fn settings(&self) -> RunSettings {
        self.flags.settings()
    }

    /// The settings given on the command line, by flat name.
    pub fn given_settings(&self) -> SettingsMap {
        let mut map = self.settings().to_map();
        map.retain(|k, _| self.flags.given.contains_key(k));
        map
    }
}

#[derive(Args, Clone, Debug)]
pub struct SampleArgs {
    /// Run directory written by `train --out`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Sampling temperature (0: greedy) [default: the run's].
    #[arg(long, value_parser = setting::<f64>("temperature"))]
    pub temperature: Option<f64>,
    /// Samples to draw [default: the run's --num-samples; 200 per temperature with --temperatures].
    #[arg(long, value_parser = setting::<usize>("num_samples"))]
    pub num_samples: Option<usize>,
    /// Seed a fresh RNG [default: continue the run's own stream, as train's samples did].
    #[arg(long, value_parser = setting::<u64>("seed"))]
    pub seed: Option<u64>,
    /// Start every sample with this text; stream runs continue it, an empty one from a
    /// newline.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Stream runs: characters to generate after the prompt [default: 300].
    #[arg(long, value_parser = at_least_one, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Compare these temperatures (mission B): writes DIR/temperatures.md and .json.
    #[arg(long, value_delimiter = ',', value_parser = setting::<f64>("temperature"))]
    pub temperatures: Option<Vec<f64>>,
    /// Run the model on this engine [default: the run's].
    #[arg(long, value_parser = setting::<EngineKind>("engine"))]
    pub engine: Option<EngineKind>,
    /// Run the tensor engine in this dtype [default: the run's].
    #[arg(long, value_parser = setting::<Dtype>("dtype"))]
    pub dtype: Option<Dtype>,
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
    /// The sweep's directory: each run's directory is OUT/KEY=V,KEY=V.
    #[arg(long, value_name = "OUT", value_parser = Utf8Path)]
    pub out: PathBuf,
    /// The settings every run shares; the grid's keys vary.
    #[command(flatten)]
    pub flags: SettingFlags<AllSettings>,
    #[command(flatten)]
    pub memory: MemoryArgs,
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
    pub flags: SettingFlags<GradcheckSettings>,
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
        let dtype = self.flags.settings().system.dtype;
        self.tolerance
            .unwrap_or_else(|| microgpt::training::gradcheck::default_tolerance(dtype))
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
    #[arg(long, value_parser = setting::<EngineKind>("engine"))]
    pub engine: Option<EngineKind>,
    /// Run the tensor engine in this dtype [default: the run's].
    #[arg(long, value_parser = setting::<Dtype>("dtype"))]
    pub dtype: Option<Dtype>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use microgpt::settings;

    /// The long flags of `command`, as setting names (`n_embd` for `--n-embd`).
    fn flags(command: &str) -> Vec<(String, clap::Arg)> {
        let cli = Cli::command();
        let sub = cli.find_subcommand(command).expect("a command");
        sub.get_arguments()
            .filter_map(|a| Some((a.get_long()?.replace('-', "_"), a.clone())))
            .collect()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Resume, sweeps and `given` read a flag's id as its setting's name.
    #[test]
    fn every_setting_is_a_train_and_sweep_flag_of_its_name_and_no_other_flag_is_one() {
        let own: &[(&str, &[&str])] = &[
            (
                "train",
                &["out", "stop_after", "resume", "quiet", "max_memory"],
            ),
            (
                "sweep",
                &[
                    "grid",
                    "jobs",
                    "print_commands",
                    "extend",
                    "force",
                    "out",
                    "max_memory",
                ],
            ),
        ];
        for (command, own) in own {
            let flags = flags(command);
            for s in settings::all() {
                let flag = flags.iter().find(|(name, _)| name == s.name);
                let flag = flag.unwrap_or_else(|| panic!("{command} has no flag {}", s.flag()));
                assert_eq!(flag.1.get_id().as_str(), s.name, "{command} {}", s.flag());
            }
            for (name, _) in &flags {
                assert!(
                    settings::setting(name).is_some() || own.contains(&name.as_str()),
                    "{command} --{name} is neither a setting nor one of the command's own flags"
                );
            }
        }
    }

    /// Wherever a flag is named as a setting, it takes what the setting's rule takes.
    #[test]
    fn a_flag_named_as_a_setting_follows_the_settings_rule_in_every_command() {
        let probes = [
            "0", "1", "2", "-1", "0.5", "1e-310", "100000", "x", "f32", "gelu",
        ];
        let base: &[(&str, &[&str])] = &[
            ("train", &[]),
            ("sweep", &["--out", "o"]),
            ("gradcheck", &[]),
            ("sample", &["--run", "r"]),
            ("inspect", &["--run", "r", "--text", "t"]),
            ("compare", &["r", "--out", "o"]),
        ];
        for (command, base) in base {
            for (name, _) in flags(command) {
                let Some(setting) = settings::setting(&name) else {
                    continue;
                };
                let flag = setting.flag();
                for probe in probes {
                    let args = [&["microgpt", command], *base, &[&flag, probe]].concat();
                    let parsed = Cli::try_parse_from(&args).is_ok();
                    let rule = setting.parse_text(probe).is_ok();
                    assert_eq!(parsed, rule, "{args:?}: the flag and the setting disagree");
                }
            }
        }
    }
}
