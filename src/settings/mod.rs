//! A run's settings as plain data, nanoGPT style: every knob visible in one place, grouped
//! by what it decides, with the model's own arguments kept apart. `config.json` stores them,
//! sweeps vary them, `compare` labels runs by them. The command line (the binary's `cli`)
//! converts its flags into a [`RunSettings`]; this module knows nothing of it.
//!
//! Which settings are a run's identity is decided once, in [`ROLES`].
//!
//! Uses `numerics` and `model`; the rules each value must follow are in `validate`.

pub mod validate;

use crate::model::config::{Activation, ModelConfig};
use crate::model::engine::EngineKind;
use crate::model::optim::{AdamConfig, LrSchedule};
use crate::numerics::dtype::Dtype;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings chosen by name on the command line (`--activation gelu`): the names an enum
/// offers, which also name it in `config.json` and messages.
pub trait Choice: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

impl Choice for Dtype {
    const ALL: &'static [Self] = &[Dtype::F32, Dtype::F64];
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Choice for Activation {
    const ALL: &'static [Self] = &[Activation::Relu, Activation::Gelu, Activation::Relu2];
    fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Relu2 => "relu2",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Choice for LrSchedule {
    const ALL: &'static [Self] = &[LrSchedule::Linear, LrSchedule::Cosine, LrSchedule::Constant];
    fn name(self) -> &'static str {
        match self {
            LrSchedule::Linear => "linear",
            LrSchedule::Cosine => "cosine",
            LrSchedule::Constant => "constant",
        }
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Choice for EngineKind {
    const ALL: &'static [Self] = &[EngineKind::Tensor, EngineKind::Scalar];
    fn name(self) -> &'static str {
        match self {
            EngineKind::Tensor => "tensor",
            EngineKind::Scalar => "scalar",
        }
    }
}

/// How a text file becomes training sequences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    /// One document per line, framed by BOS (the original's).
    #[default]
    Lines,
    /// The whole file as one sequence of characters, newlines included; each step trains
    /// on windows at random positions.
    Stream,
}

impl Choice for DataMode {
    const ALL: &'static [Self] = &[DataMode::Lines, DataMode::Stream];
    fn name(self) -> &'static str {
        match self {
            DataMode::Lines => "lines",
            DataMode::Stream => "stream",
        }
    }
}

impl std::fmt::Display for DataMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The documents and the seed of the one RNG stream (shuffle, init, samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// The dataset; `None`: `input.txt`, downloaded when missing (as the original).
    pub input: Option<PathBuf>,
    pub data: DataMode,
    pub seed: u64,
    /// The fraction held out for validation: the last of the shuffled documents (lines),
    /// the last of the text (stream).
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
    /// Standard deviation of the Gaussian weight init.
    pub init_std: f64,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSettings {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW) of the 2-D weight matrices; 0 is the original's Adam.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (none: the original's behaviour).
    pub grad_clip: Option<f64>,
}

impl OptimizerSettings {
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// The run's total steps (`--resume --steps M` extends it).
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    pub lr_schedule: LrSchedule,
    /// Steps of linear learning-rate warm-up before the schedule.
    pub warmup_steps: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    /// The validation loss every N steps (0: only at the last step).
    pub eval_every: usize,
    /// Stream mode: validate on at most this many evenly spaced windows of the held-out
    /// text (0: all of them).
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
    /// Save the checkpoint every N steps (0: only when stopping).
    pub save_every: usize,
}

/// Every stored setting of a run. The defaults are microgpt.py's.
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

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            data: DataSettings {
                input: None,
                data: DataMode::Lines,
                seed: 42,
                val_frac: 0.0,
            },
            model: ModelArgs {
                n_embd: 16,
                n_head: 4,
                n_layer: 1,
                block_size: 16,
                activation: Activation::Relu,
                init_std: 0.08,
            },
            optimizer: OptimizerSettings {
                lr: 0.01,
                beta1: 0.85,
                beta2: 0.99,
                eps: 1e-8,
                weight_decay: 0.0,
                grad_clip: None,
            },
            schedule: ScheduleSettings {
                steps: 1000,
                batch_size: 1,
                lr_schedule: LrSchedule::Linear,
                warmup_steps: 0,
            },
            evaluation: EvalSettings {
                eval_every: 0,
                eval_windows: 512,
            },
            sampling: SamplingSettings {
                temperature: 0.5,
                num_samples: 20,
            },
            system: SystemSettings {
                engine: EngineKind::Tensor,
                dtype: Dtype::F64,
                threads: available_cores(),
                save_every: 250,
            },
        }
    }
}

/// The machine's cores: the default `threads`.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a setting is to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Decides what the run computes: fixed once it starts; labels it in `compare`.
    Identity,
    /// The run's length: `--resume --steps M` extends it; labels it in `compare`.
    Length,
    /// How the run is computed, saved or sampled: may change on resume; not a label.
    Runtime,
}

/// Every setting by its flat name (the command-line flag without `--`, `_` for `-`), and
/// its role. Every setting can be swept.
pub const ROLES: &[(&str, Role)] = &[
    ("input", Role::Identity),
    ("data", Role::Identity),
    ("seed", Role::Identity),
    ("val_frac", Role::Identity),
    ("n_embd", Role::Identity),
    ("n_head", Role::Identity),
    ("n_layer", Role::Identity),
    ("block_size", Role::Identity),
    ("activation", Role::Identity),
    ("init_std", Role::Identity),
    ("lr", Role::Identity),
    ("beta1", Role::Identity),
    ("beta2", Role::Identity),
    ("eps", Role::Identity),
    ("weight_decay", Role::Identity),
    ("grad_clip", Role::Identity),
    ("steps", Role::Length),
    ("batch_size", Role::Identity),
    ("lr_schedule", Role::Identity),
    ("warmup_steps", Role::Identity),
    ("dtype", Role::Identity),
    ("eval_every", Role::Runtime),
    ("eval_windows", Role::Runtime),
    ("temperature", Role::Runtime),
    ("num_samples", Role::Runtime),
    ("engine", Role::Runtime),
    ("threads", Role::Runtime),
    ("save_every", Role::Runtime),
];

/// The role of the setting `key`, if it is one.
pub fn role(key: &str) -> Option<Role> {
    ROLES.iter().find(|(k, _)| *k == key).map(|&(_, r)| r)
}

/// Settings as flat name → JSON value, and back.
pub type SettingsMap = BTreeMap<String, serde_json::Value>;

impl RunSettings {
    /// The settings by flat name (the groups dissolved).
    pub fn to_map(&self) -> SettingsMap {
        let mut out = SettingsMap::new();
        if let serde_json::Value::Object(groups) =
            serde_json::to_value(self).expect("settings serialize")
        {
            for (_, group) in groups {
                if let serde_json::Value::Object(fields) = group {
                    out.extend(fields);
                }
            }
        }
        out
    }

    /// The settings from flat names; every setting must be present, and no other.
    pub fn from_map(map: &SettingsMap) -> Result<Self> {
        if let Some(unknown) = map.keys().find(|k| role(k).is_none()) {
            bail!("unknown setting {unknown:?}");
        }
        let mut groups = serde_json::Map::new();
        let template = RunSettings::default().to_value();
        for (group, fields) in template.as_object().expect("settings are an object") {
            let mut values = serde_json::Map::new();
            for key in fields.as_object().expect("groups are objects").keys() {
                let value = map
                    .get(key)
                    .with_context(|| format!("setting {key} is missing"))?;
                values.insert(key.clone(), value.clone());
            }
            groups.insert(group.clone(), values.into());
        }
        serde_json::from_value(groups.into()).context("settings do not parse")
    }

    fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("settings serialize")
    }

    /// The settings that label a run among others: its identity and length.
    pub fn labels(&self) -> SettingsMap {
        let mut map = self.to_map();
        map.retain(|k, _| role(k) != Some(Role::Runtime));
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_one_role() {
        let map = RunSettings::default().to_map();
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut roles: Vec<&str> = ROLES.iter().map(|(k, _)| *k).collect();
        roles.sort_unstable();
        assert_eq!(keys, roles);
    }

    #[test]
    fn settings_round_trip_through_flat_names() {
        let mut s = RunSettings::default();
        s.model.n_embd = 32;
        s.optimizer.grad_clip = Some(1.0);
        assert_eq!(RunSettings::from_map(&s.to_map()).unwrap(), s);
        let mut map = s.to_map();
        map.remove("lr");
        let err = RunSettings::from_map(&map).unwrap_err().to_string();
        assert_eq!(err, "setting lr is missing");
    }
}
