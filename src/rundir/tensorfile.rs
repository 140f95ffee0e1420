//! Safetensors files of parameter-shaped tensors: written with a header built here in a fixed
//! order (the crate's writer serialises its metadata from a `HashMap`, whose order changes
//! from run to run, so the same checkpoint would get different bytes), read back with the
//! crate's parser and checked against the model's layout.

use crate::model::config::ParamLayout;
use crate::numerics::dtype::{Dtype, Float};
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn type_name(d: Dtype) -> &'static str {
    match d.storage() {
        Dtype::F64 => "F64",
        _ => "F32",
    }
}

fn st_dtype(d: Dtype) -> safetensors::Dtype {
    match d.storage() {
        Dtype::F64 => safetensors::Dtype::F64,
        _ => safetensors::Dtype::F32,
    }
}

/// The safetensors bytes of `prefix + name` for every layout entry of every group, in that
/// order, with `metadata`. Equal inputs give equal bytes.
pub fn serialize<F: Float>(
    layout: &ParamLayout,
    groups: &[(&str, &[F])],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata)?);
    let mut data = Vec::new();
    for &(prefix, values) in groups {
        for s in &layout.specs {
            let start = data.len();
            for x in &values[s.range()] {
                match F::DTYPE.storage() {
                    Dtype::F64 => data.extend(x.as_f64().to_le_bytes()),
                    _ => data.extend((x.as_f64() as f32).to_le_bytes()),
                }
            }
            header.insert(
                format!("{prefix}{}", s.name),
                serde_json::json!({
                    "dtype": type_name(F::DTYPE),
                    "shape": [s.rows, s.cols],
                    "data_offsets": [start, data.len()],
                }),
            );
        }
    }
    let mut header = serde_json::to_vec(&header)?;
    // The format pads the header with spaces to a multiple of 8 bytes.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header);
    out.extend(data);
    Ok(out)
}

/// A parsed safetensors file: its tensors and its metadata.
pub struct TensorFile<'a> {
    pub path: PathBuf,
    tensors: SafeTensors<'a>,
    meta: HashMap<String, String>,
}

impl<'a> TensorFile<'a> {
    pub fn parse(bytes: &'a [u8], path: &Path) -> Result<Self> {
        let broken = |e: safetensors::SafeTensorError| {
            anyhow!(
                "{} is truncated or corrupt ({e}): not a readable checkpoint",
                path.display()
            )
        };
        let tensors = SafeTensors::deserialize(bytes).map_err(broken)?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(broken)?;
        let meta = header.metadata().clone().unwrap_or_default();
        Ok(TensorFile {
            path: path.to_path_buf(),
            tensors,
            meta,
        })
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("{}: metadata has no {key}", self.path.display()))
    }

    pub fn meta_opt(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    pub fn meta_usize(&self, key: &str) -> Result<usize> {
        let v = self.meta(key)?;
        v.parse()
            .with_context(|| format!("{}: metadata {key} = {v:?}", self.path.display()))
    }

    /// The tensors `prefix + name` of every layout entry, flattened in layout order, one
    /// vector per group; the groups must cover every tensor in the file.
    pub fn read(
        &self,
        layout: &ParamLayout,
        dtype: Dtype,
        groups: &[&str],
    ) -> Result<Vec<Vec<f64>>> {
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
                    match dtype.storage() {
                        Dtype::F64 => out.extend(
                            t.data()
                                .chunks_exact(8)
                                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
                        ),
                        _ => out.extend(t.data().chunks_exact(4).map(|b| {
                            f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        })),
                    }
                }
                Ok(out)
            })
            .collect()
    }
}

/// The name and index within it of the first value of `values` (layout order) that fails
/// `ok`, for errors that say where.
pub fn first_bad(layout: &ParamLayout, values: &[f64], ok: impl Fn(f64) -> bool) -> Option<String> {
    let i = values.iter().position(|&x| !ok(x))?;
    let spec = layout.specs.iter().find(|s| s.range().contains(&i))?;
    Some(format!("{} in {}", values[i], spec.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Activation, ModelConfig};

    #[test]
    fn f32_tensors_round_trip_exactly_and_bytes_are_deterministic() {
        let cfg = ModelConfig {
            vocab_size: 4,
            n_embd: 4,
            n_head: 2,
            n_layer: 1,
            block_size: 3,
            activation: Activation::Gelu,
        };
        let layout = cfg.layout();
        let params: Vec<f32> = (0..layout.total)
            .map(|i| (i as f32 * 0.37).sin() / 3.0)
            .collect();
        let meta: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("key{i}"), i.to_string()))
            .collect();
        let bytes = serialize(&layout, &[("", &params)], &meta).unwrap();
        assert_eq!(bytes, serialize(&layout, &[("", &params)], &meta).unwrap());
        let file = TensorFile::parse(&bytes, Path::new("t.safetensors")).unwrap();
        assert_eq!(file.meta_usize("key7").unwrap(), 7);
        let back = file.read(&layout, Dtype::F32, &[""]).unwrap().remove(0);
        let back: Vec<f32> = back.iter().map(|&x| x as f32).collect();
        assert_eq!(back, params);
        let err = file.read(&layout, Dtype::F64, &[""]).unwrap_err();
        assert!(err.to_string().contains("expected F64"), "{err}");
    }
}
