//! The run directory's format and its validation.
//!
//! - `config.json`: [`RunConfig`], every setting of the run plus its dataset and vocabulary.
//! - `metrics.csv`: see [`crate::metrics`].
//! - `samples.txt`: the samples drawn after training, one per line.
//! - `model.safetensors`: one tensor per parameter matrix, named as the original's
//!   `state_dict` (`wte`, `layer0.attn_wq`, ...), shape `[out, in]`, row-major, in the run's
//!   dtype; `__metadata__` holds `format`, `format_version`, `config` (the model's shape as
//!   JSON), `vocab` (the characters in id order; BOS is the id after the last), `dtype`
//!   and `step` (training steps done).
//! - `optimizer.safetensors`: Adam's moments as `m.<name>` and `v.<name>`, same shapes and
//!   dtype; `__metadata__` holds `format`, `format_version`, `step` and `adam_t`.
//!
//! Every file is written atomically, so an interrupted save leaves the previous one whole.

use crate::config::{ModelConfig, ParamLayout};
use crate::data::Vocab;
use crate::dtype::{Dtype, Float};
use crate::files::write_atomic;
use crate::optim::Adam;
use crate::settings::RunSettings;
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bumped whenever a file of the run directory changes incompatibly.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT: &str = "microgpt";

pub const CONFIG_FILE: &str = "config.json";
pub const METRICS_FILE: &str = "metrics.csv";
pub const SAMPLES_FILE: &str = "samples.txt";
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub format_version: u32,
    /// Every setting of the run; `steps` is its current total (`--resume --steps`
    /// rewrites it).
    pub settings: RunSettings,
    pub model: ModelConfig,
    /// Absolute path of the dataset.
    pub dataset: PathBuf,
    /// The characters in id order.
    pub vocab: String,
    /// Documents (lines mode; 0 for a stream): the shuffle drew this many.
    pub num_docs: usize,
    pub num_train_docs: usize,
    pub num_val_docs: usize,
    /// Characters of the training and validation parts.
    pub num_train_chars: usize,
    pub num_val_chars: usize,
    pub num_params: usize,
}

impl RunConfig {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "{} is not a run directory (no {CONFIG_FILE})",
                    dir.display()
                )
            }
            r => r.with_context(|| format!("cannot read {}", path.display()))?,
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        check_version(value.get("format_version").and_then(|v| v.as_u64()), &path)?;
        serde_json::from_value(value).with_context(|| format!("{} is malformed", path.display()))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join(CONFIG_FILE),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    pub fn vocab(&self) -> Vocab {
        Vocab::from_chars(self.vocab.chars().collect())
    }
}

fn check_version(found: Option<u64>, path: &Path) -> Result<()> {
    match found {
        Some(v) if v == u64::from(FORMAT_VERSION) => Ok(()),
        Some(v) if v < u64::from(FORMAT_VERSION) => bail!(
            "{} was made by an older version of microgpt (format {v}; this one reads format {FORMAT_VERSION}): train the run again with this version",
            path.display()
        ),
        Some(v) => bail!(
            "{} was made by a newer version of microgpt (format {v}; this one reads format {FORMAT_VERSION})",
            path.display()
        ),
        None => bail!(
            "{} has no format version: not written by this microgpt",
            path.display()
        ),
    }
}

/// `model.safetensors`, weights widened to `f64` (exact for both dtypes).
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    pub config: ModelConfig,
    pub vocab: Vocab,
    pub dtype: Dtype,
    pub step: usize,
    pub params: Vec<f64>,
}

/// `optimizer.safetensors`, moments widened to `f64`.
#[derive(Clone, Debug)]
pub struct OptimizerState {
    pub t: usize,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
}

/// Writes `optimizer.safetensors` then `model.safetensors` for the state after `step` steps.
pub fn save<F: Float>(
    dir: &Path,
    cfg: &ModelConfig,
    vocab: &Vocab,
    step: usize,
    params: &[F],
    adam: &Adam<F>,
) -> Result<()> {
    let layout = cfg.layout();
    let optimizer = serialize(
        &layout,
        &[("m.", &adam.m), ("v.", &adam.v)],
        metadata([("step", step.to_string()), ("adam_t", adam.t.to_string())]),
    )?;
    write_atomic(&dir.join(OPTIMIZER_FILE), &optimizer)?;
    let model = serialize(
        &layout,
        &[("", params)],
        metadata([
            ("config", serde_json::to_string(cfg)?),
            ("vocab", vocab.chars().iter().collect()),
            ("dtype", F::DTYPE.to_string()),
            ("step", step.to_string()),
        ]),
    )?;
    write_atomic(&dir.join(MODEL_FILE), &model)
}

fn metadata<const N: usize>(entries: [(&str, String); N]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    m.insert("format".into(), FORMAT.into());
    m.insert("format_version".into(), FORMAT_VERSION.to_string());
    m
}

fn st_dtype(d: Dtype) -> safetensors::Dtype {
    match d {
        Dtype::F32 => safetensors::Dtype::F32,
        Dtype::F64 => safetensors::Dtype::F64,
    }
}

fn serialize<F: Float>(
    layout: &ParamLayout,
    groups: &[(&str, &[F])],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = groups
        .iter()
        .flat_map(|&(prefix, data)| {
            layout.specs.iter().map(move |s| {
                let bytes = match F::DTYPE {
                    Dtype::F32 => data[s.range()]
                        .iter()
                        .flat_map(|x| (x.as_f64() as f32).to_le_bytes())
                        .collect(),
                    Dtype::F64 => data[s.range()]
                        .iter()
                        .flat_map(|x| x.as_f64().to_le_bytes())
                        .collect(),
                };
                (format!("{prefix}{}", s.name), vec![s.rows, s.cols], bytes)
            })
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(st_dtype(F::DTYPE), shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// A parsed safetensors file of ours: its tensors and its checked metadata.
struct File<'a> {
    path: PathBuf,
    tensors: SafeTensors<'a>,
    meta: HashMap<String, String>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no checkpoint: {} is missing", path.display())
        }
        r => r.with_context(|| format!("cannot read {}", path.display())),
    }
}

impl<'a> File<'a> {
    fn parse(bytes: &'a [u8], path: &Path) -> Result<Self> {
        let broken = |e: safetensors::SafeTensorError| {
            anyhow!(
                "{} is truncated or corrupt ({e}): not a readable checkpoint",
                path.display()
            )
        };
        let tensors = SafeTensors::deserialize(bytes).map_err(broken)?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(broken)?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            bail!("{} is not a microgpt checkpoint", path.display());
        }
        let version = meta.get("format_version").and_then(|v| v.parse().ok());
        check_version(version, path)?;
        Ok(File {
            path: path.to_path_buf(),
            tensors,
            meta,
        })
    }

    fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("{}: metadata has no {key}", self.path.display()))
    }

    fn meta_usize(&self, key: &str) -> Result<usize> {
        let v = self.meta(key)?;
        v.parse()
            .with_context(|| format!("{}: metadata {key} = {v:?}", self.path.display()))
    }

    /// The tensors `prefix + name` of every layout entry, flattened in layout order.
    /// `groups` prefixes must cover every tensor in the file.
    fn read(&self, layout: &ParamLayout, dtype: Dtype, groups: &[&str]) -> Result<Vec<Vec<f64>>> {
        let path = self.path.display();
        if self.tensors.len() != layout.specs.len() * groups.len() {
            bail!(
                "{path} holds {} tensors, expected {} for this model",
                self.tensors.len(),
                layout.specs.len() * groups.len()
            );
        }
        groups
            .iter()
            .map(|prefix| {
                let mut out = Vec::with_capacity(layout.total);
                for s in &layout.specs {
                    let name = format!("{prefix}{}", s.name);
                    let t = self
                        .tensors
                        .tensor(&name)
                        .map_err(|_| anyhow!("{path} has no tensor {name}"))?;
                    if t.dtype() != st_dtype(dtype) || t.shape() != [s.rows, s.cols] {
                        bail!(
                            "{path}: tensor {name} is {:?} {:?}, expected {:?} {:?}",
                            t.dtype(),
                            t.shape(),
                            st_dtype(dtype),
                            [s.rows, s.cols]
                        );
                    }
                    match dtype {
                        Dtype::F32 => out.extend(t.data().chunks_exact(4).map(|b| {
                            f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        })),
                        Dtype::F64 => out.extend(
                            t.data()
                                .chunks_exact(8)
                                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
                        ),
                    }
                }
                Ok(out)
            })
            .collect()
    }
}

pub fn load_model(dir: &Path) -> Result<ModelCheckpoint> {
    let path = dir.join(MODEL_FILE);
    let bytes = read_bytes(&path)?;
    let file = File::parse(&bytes, &path)?;
    let config: ModelConfig = serde_json::from_str(file.meta("config")?)
        .with_context(|| format!("{}: metadata config is malformed", path.display()))?;
    config
        .validate()
        .with_context(|| format!("{}: metadata config", path.display()))?;
    // A config claiming more parameters than the file holds is corrupt: refused before its
    // layout is built, which for an absurd one would not fit in memory.
    let room = bytes.len() as u128 / 4;
    if crate::memory::param_count(&config).is_none_or(|p| p > room) {
        bail!(
            "{}: metadata config has more parameters than the file holds",
            path.display()
        );
    }
    let chars: Vec<char> = file.meta("vocab")?.chars().collect();
    if chars.windows(2).any(|w| w[0] >= w[1]) || chars.len() + 1 != config.vocab_size {
        bail!(
            "{}: metadata vocab does not fit vocab_size {}",
            path.display(),
            config.vocab_size
        );
    }
    let dtype = match file.meta("dtype")? {
        "f32" => Dtype::F32,
        "f64" => Dtype::F64,
        other => bail!("{}: unknown dtype {other:?}", path.display()),
    };
    let step = file.meta_usize("step")?;
    let params = file.read(&config.layout(), dtype, &[""])?.remove(0);
    Ok(ModelCheckpoint {
        config,
        vocab: Vocab::from_chars(chars),
        dtype,
        step,
        params,
    })
}

/// Adam's state for `model`, which it must match step for step.
pub fn load_optimizer(dir: &Path, model: &ModelCheckpoint) -> Result<OptimizerState> {
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = read_bytes(&path)?;
    let file = File::parse(&bytes, &path)?;
    let step = file.meta_usize("step")?;
    if step != model.step {
        bail!(
            "{} is at step {step} but {MODEL_FILE} at step {}: the save was cut short",
            path.display(),
            model.step
        );
    }
    let t = file.meta_usize("adam_t")?;
    let mut moments = file.read(&model.config.layout(), model.dtype, &["m.", "v."])?;
    let v = moments.pop().expect("two groups");
    let m = moments.pop().expect("two groups");
    Ok(OptimizerState { t, m, v })
}

/// A run's config and model checkpoint, checked against each other.
pub fn load_run(dir: &Path) -> Result<(RunConfig, ModelCheckpoint)> {
    let config = RunConfig::read(dir)?;
    let model = load_model(dir)?;
    if model.config != config.model || model.vocab != config.vocab() {
        bail!(
            "{} does not match {} in {}",
            MODEL_FILE,
            CONFIG_FILE,
            dir.display()
        );
    }
    if model.dtype != config.settings.system.dtype {
        bail!(
            "{} is {} but the run's dtype is {}",
            dir.join(MODEL_FILE).display(),
            model.dtype,
            config.settings.system.dtype
        );
    }
    Ok((config, model))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;

    #[test]
    fn f32_checkpoints_round_trip_exactly() {
        let dir = std::env::temp_dir().join(format!("microgpt-ckpt-f32-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = ModelConfig {
            vocab_size: 4,
            n_embd: 4,
            n_head: 2,
            n_layer: 1,
            block_size: 3,
            activation: Activation::Gelu,
        };
        let vocab = Vocab::from_chars(vec!['a', 'b', 'é']);
        let n = cfg.layout().total;
        let params: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() / 3.0).collect();
        let mut adam = Adam::<f32>::new(Default::default(), n);
        adam.m = params.iter().map(|p| p * 0.5).collect();
        adam.v = params.iter().map(|p| p * p).collect();
        adam.t = 7;
        save(&dir, &cfg, &vocab, 7, &params, &adam).unwrap();

        let model = load_model(&dir).unwrap();
        assert_eq!((model.dtype, model.step), (Dtype::F32, 7));
        assert_eq!(model.config, cfg);
        assert_eq!(model.vocab, vocab);
        let back: Vec<f32> = model.params.iter().map(|&p| p as f32).collect();
        assert_eq!(back, params);
        let opt = load_optimizer(&dir, &model).unwrap();
        assert_eq!(opt.t, 7);
        assert_eq!(opt.m.iter().map(|&x| x as f32).collect::<Vec<_>>(), adam.m);
        assert_eq!(opt.v.iter().map(|&x| x as f32).collect::<Vec<_>>(), adam.v);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
