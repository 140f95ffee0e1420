//! `config.json`: every setting of a run, its dataset and vocabulary, read strictly: an
//! unknown, missing or mistyped key is an error naming it, every setting passes the command
//! line's rules, and the file must agree with itself and with the checkpoint it describes.
//! A file of an older format is read as this one (`legacy.rs`); a newer one is refused.

use crate::data::files::read_regular_text;
use crate::data::Vocab;
use crate::model::config::{Activation, ModelConfig};
use crate::numerics::bf16::Kernel;
use crate::numerics::dtype::Dtype;
use crate::rundir::legacy;
use crate::settings::validate::flag;
use crate::settings::{role, Role, RunSettings, SettingsMap, SETTINGS_FORMAT};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Bumped whenever a file of the run directory changes: 2 stored the settings by group,
/// 3 made checkpoints directories with manifests; a setting added later raises it to its
/// [`crate::settings::Since`]. Every older format is read.
pub const FORMAT_VERSION: u32 = if SETTINGS_FORMAT > 3 {
    SETTINGS_FORMAT
} else {
    3
};
pub const CONFIG_FILE: &str = "config.json";

/// The largest `config.json` or `manifest.json` read: settings, and a vocabulary of every
/// Unicode character escaped.
pub const MAX_JSON_BYTES: u64 = 16 << 20;

/// `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub format_version: u32,
    /// Every setting of the run; `steps` is its current total (`--resume --steps`
    /// rewrites it).
    pub settings: RunSettings,
    pub model: ModelConfig,
    /// Absolute path of the dataset.
    pub dataset: PathBuf,
    /// SHA-256 of the dataset file's bytes: a resume on other data is refused. `None`: not
    /// recorded (formats before 3), recorded at the run's first resume.
    pub dataset_sha256: Option<String>,
    /// The characters in id order.
    pub vocab: String,
    /// Documents (lines mode; 0 for a stream): the shuffle drew this many.
    pub num_docs: usize,
    pub num_train_docs: usize,
    pub num_val_docs: usize,
    /// Characters of the training and validation parts; `None`: not recorded (formats
    /// before 3 but the last format 2).
    pub num_train_chars: Option<usize>,
    pub num_val_chars: Option<usize>,
    pub num_params: usize,
    /// bf16 runs only: the kernel that ran the GEMMs last (`avx512_bf16` or `portable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16_kernel: Option<Kernel>,
}

/// What a checkpoint was trained as: the settings that decide what a run computes (but the
/// dataset's path, which may move: its content is `dataset_sha256`), its shape and data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIdentity {
    pub settings: SettingsMap,
    pub model: ModelConfig,
    pub vocab: String,
    pub dataset_sha256: String,
}

/// The format `found`, if this microgpt reads it (this one or an older one).
pub fn check_version(found: Option<u64>, path: &Path) -> Result<u32> {
    match found {
        Some(v) if (1..=u64::from(FORMAT_VERSION)).contains(&v) => Ok(v as u32),
        Some(v) if v > u64::from(FORMAT_VERSION) => bail!(
            "{} was made by a newer version of microgpt (format {v}; this one reads formats 1 to {FORMAT_VERSION}): upgrade microgpt to use it",
            path.display()
        ),
        _ => bail!(
            "{} has no format version: not written by this microgpt",
            path.display()
        ),
    }
}

impl RunConfig {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        if std::fs::symlink_metadata(&path).is_err() {
            bail!(
                "{} is not a run directory (no {CONFIG_FILE})",
                dir.display()
            )
        }
        let text = read_regular_text(&path, MAX_JSON_BYTES)?;
        let mut value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let version = check_version(value.get("format_version").and_then(Value::as_u64), &path)?;
        legacy::upgrade_config(&mut value, version)
            .with_context(|| format!("{}", path.display()))?;
        let config = parse_strict(value).with_context(|| format!("{}", path.display()))?;
        config
            .check()
            .with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    /// The bytes of `config.json`, which a run's writer writes through its lock.
    pub fn json(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_string_pretty(self)?.into_bytes())
    }

    pub fn vocab(&self) -> Vocab {
        Vocab::from_chars(self.vocab.chars().collect())
    }

    /// The settings' rules, and the file's agreement with itself.
    fn check(&self) -> Result<()> {
        self.settings.validate()?;
        if self.format_version >= 3 {
            let recorded = [
                ("dataset_sha256", self.dataset_sha256.is_some()),
                ("num_train_chars", self.num_train_chars.is_some()),
                ("num_val_chars", self.num_val_chars.is_some()),
            ];
            if let Some((key, _)) = recorded.iter().find(|(_, some)| !some) {
                bail!("{key} is null");
            }
        }
        let chars: Vec<char> = self.vocab.chars().collect();
        if chars.is_empty() || chars.windows(2).any(|w| w[0] >= w[1]) {
            bail!("vocab is not a sorted list of distinct characters");
        }
        let expected = self.settings.model.config(chars.len() + 1);
        if let Some((key, stored, setting)) = architecture_differences(&self.model, &expected)
            .into_iter()
            .next()
        {
            bail!(
                "model.{key} is {stored} but settings {} is {setting}",
                flag(key)
            );
        }
        expected.validate()?;
        if self.num_train_docs + self.num_val_docs != self.num_docs {
            bail!("num_train_docs + num_val_docs is not num_docs");
        }
        Ok(())
    }

    pub fn identity(&self) -> RunIdentity {
        let mut settings = self.settings.to_map();
        settings.retain(|k, _| role(k) == Some(Role::Identity) && k != "input");
        RunIdentity {
            settings,
            model: self.model.clone(),
            vocab: self.vocab.clone(),
            dataset_sha256: self.dataset_sha256.clone().unwrap_or_default(),
        }
    }

    /// The characters of the training and validation parts, if recorded.
    pub fn split_sizes(&self) -> Option<(usize, usize)> {
        self.num_train_chars.zip(self.num_val_chars)
    }

    /// Errors, naming the setting, unless this config is what `trained` was trained as.
    pub fn check_identity(&self, trained: &RunIdentity, what: &str) -> Result<()> {
        let ours = self.identity();
        let edited = |key: &str, now: &dyn std::fmt::Display, then: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "{CONFIG_FILE} sets {key} to {now}, but {what} was trained with {then}: {CONFIG_FILE} was edited; put back {then}"
            )
        };
        for (key, then) in &trained.settings {
            let now = ours.settings.get(key).unwrap_or(&Value::Null);
            if now != then {
                return Err(edited(&format!("{key} ({})", flag(key)), now, then));
            }
        }
        if let Some((key, now, then)) = architecture_differences(&ours.model, &trained.model)
            .into_iter()
            .next()
        {
            return Err(edited(&format!("model.{key}"), &now, &then));
        }
        if ours.vocab != trained.vocab {
            return Err(edited("vocab", &ours.vocab, &trained.vocab));
        }
        if ours.dataset_sha256 != trained.dataset_sha256 {
            return Err(edited(
                "dataset_sha256",
                &ours.dataset_sha256,
                &trained.dataset_sha256,
            ));
        }
        Ok(())
    }
}

/// The fields where two model shapes differ: (name, a's, b's).
pub fn architecture_differences(
    a: &ModelConfig,
    b: &ModelConfig,
) -> Vec<(&'static str, String, String)> {
    let fields = |c: &ModelConfig| {
        [
            ("vocab_size", c.vocab_size.to_string()),
            ("n_embd", c.n_embd.to_string()),
            ("n_head", c.n_head.to_string()),
            ("n_layer", c.n_layer.to_string()),
            ("block_size", c.block_size.to_string()),
            ("activation", c.activation.to_string()),
        ]
    };
    fields(a)
        .into_iter()
        .zip(fields(b))
        .filter(|((_, x), (_, y))| x != y)
        .map(|((k, x), (_, y))| (k, x, y))
        .collect()
}

/// A config with every key, to check the keys of a file against; `bf16_kernel` only in a
/// bf16 run's.
fn template(dtype: Option<&Value>) -> Value {
    let bf16 = dtype == Some(&serde_json::json!(Dtype::Bf16));
    let config = RunConfig {
        format_version: FORMAT_VERSION,
        settings: RunSettings::default(),
        model: RunSettings::default().model.config(2),
        dataset: PathBuf::new(),
        dataset_sha256: Some(String::new()),
        vocab: String::new(),
        num_docs: 0,
        num_train_docs: 0,
        num_val_docs: 0,
        num_train_chars: Some(0),
        num_val_chars: Some(0),
        num_params: 0,
        bf16_kernel: bf16.then_some(Kernel::Portable),
    };
    debug_assert_eq!(config.model.activation, Activation::Relu);
    serde_json::to_value(config).expect("a config serializes")
}

/// `value` as a config; unknown and missing keys (optional ones included) and values of
/// the wrong type are errors naming the key.
fn parse_strict(value: Value) -> Result<RunConfig> {
    let template = template(value.pointer("/settings/system/dtype"));
    check_keys(&value, &template, "")?;
    if let Ok(config) = serde_json::from_value(value.clone()) {
        return Ok(config);
    }
    // Find the key: put each of the file's values alone into the template.
    let mut leaves = Vec::new();
    collect_leaves(&value, String::new(), &mut leaves);
    for (pointer, leaf) in leaves {
        let mut probe = template.clone();
        *probe.pointer_mut(&pointer).expect("keys checked") = leaf.clone();
        if let Err(e) = serde_json::from_value::<RunConfig>(probe) {
            let key = pointer.trim_start_matches('/').replace('/', ".");
            bail!("{key} = {leaf}: {}", serde_message(&e));
        }
    }
    bail!("does not parse")
}

/// serde's message without its trailing position.
fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn check_keys(found: &Value, template: &Value, at: &str) -> Result<()> {
    let (Value::Object(found), Value::Object(template)) = (found, template) else {
        return Ok(());
    };
    if let Some(key) = found.keys().find(|k| !template.contains_key(*k)) {
        bail!("unknown key {at}{key}");
    }
    for (key, t) in template {
        let value = found
            .get(key)
            .with_context(|| format!("key {at}{key} is missing"))?;
        check_keys(value, t, &format!("{at}{key}."))?;
    }
    Ok(())
}

fn collect_leaves(value: &Value, pointer: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                collect_leaves(v, format!("{pointer}/{key}"), out);
            }
        }
        leaf => out.push((pointer, leaf.clone())),
    }
}
