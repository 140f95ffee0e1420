//! Safetensors files of parameter-shaped tensors, never whole in memory. Written tensor by
//! tensor from the engine's buffers in bounded chunks, hashed as they go, after a header
//! built here in a fixed order (the crate's writer serialises its metadata from a
//! `HashMap`, whose order changes from run to run, so the same checkpoint would get
//! different bytes). Read the same way: the header parsed by the crate and checked against
//! the model's layout, the data streamed into the engine's buffers and hashed as it passes.

use crate::data::files::{hex, open_bounded, sha256_of};
use crate::model::config::ParamLayout;
use crate::numerics::dtype::{Dtype, Float};
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Metadata, SafeTensorError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Values encoded or decoded at a time: all a save or a load holds beyond the tensors
/// themselves (64 KiB of f64).
const CHUNK: usize = 8192;

/// The largest header read: the crate's own bound.
const MAX_HEADER_BYTES: u64 = 100_000_000;

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

/// Bytes per stored value.
fn width(d: Dtype) -> usize {
    match d.storage() {
        Dtype::F64 => 8,
        _ => 4,
    }
}

/// The header (its length, then the JSON padded with spaces to a multiple of 8 bytes as
/// the format asks) of a file of `prefix + name` for every layout entry of every prefix.
fn header(
    layout: &ParamLayout,
    dtype: Dtype,
    prefixes: &[&str],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata)?);
    let mut offset = 0;
    for prefix in prefixes {
        for s in &layout.specs {
            let end = offset + s.range().len() * width(dtype);
            header.insert(
                format!("{prefix}{}", s.name),
                serde_json::json!({
                    "dtype": type_name(dtype),
                    "shape": [s.rows, s.cols],
                    "data_offsets": [offset, end],
                }),
            );
            offset = end;
        }
    }
    let mut json = serde_json::to_vec(&header)?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    Ok(out)
}

/// Writes to `out` the safetensors file of `prefix + name` for every layout entry of every
/// group, in that order, with `metadata`, a chunk at a time; returns its SHA-256. Equal
/// inputs give equal bytes.
pub fn write<F: Float>(
    out: &mut impl Write,
    layout: &ParamLayout,
    groups: &[(&str, &[F])],
    metadata: &BTreeMap<String, String>,
) -> Result<String> {
    let prefixes: Vec<&str> = groups.iter().map(|&(prefix, _)| prefix).collect();
    let mut hasher = Sha256::new();
    let mut put = |bytes: &[u8]| {
        hasher.update(bytes);
        out.write_all(bytes)
    };
    put(&header(layout, F::DTYPE, &prefixes, metadata)?)?;
    let mut bytes = Vec::with_capacity(CHUNK * 8);
    for &(_, values) in groups {
        for chunk in values[..layout.total].chunks(CHUNK) {
            bytes.clear();
            for x in chunk {
                match F::DTYPE.storage() {
                    Dtype::F64 => bytes.extend(x.as_f64().to_le_bytes()),
                    _ => bytes.extend((x.as_f64() as f32).to_le_bytes()),
                }
            }
            put(&bytes)?;
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// A safetensors file opened for streaming, its checksum verified: the header parsed and
/// kept, the data read on demand (and hashed again as it passes).
#[derive(Clone, Debug)]
pub struct TensorReader {
    pub path: PathBuf,
    /// Held open: a reader's file stays whole when a live run replaces its checkpoint.
    file: Arc<File>,
    /// The bytes before the data: the header's length and the header.
    head: Vec<u8>,
    header: Metadata,
    meta: HashMap<String, String>,
    sha256: String,
}

/// The error of a file whose bytes are not the ones recorded when it was saved.
fn changed(path: &Path) -> anyhow::Error {
    anyhow!(
        "{} does not match the checksum recorded when it was saved: it was changed or damaged",
        path.display()
    )
}

fn broken(path: &Path, e: SafeTensorError) -> anyhow::Error {
    anyhow!(
        "{} is truncated or corrupt ({e}): not a readable checkpoint",
        path.display()
    )
}

impl TensorReader {
    /// Opens `path`, a regular file of at most `limit` bytes whose SHA-256 must be `sha256`
    /// (hashed in chunks, never held whole), and parses its header.
    pub fn open(path: &Path, limit: u64, sha256: &str) -> Result<Self> {
        let (file, len) = open_bounded(path, limit)?;
        let actual = sha256_of((&file).take(len))
            .with_context(|| format!("cannot read {}", path.display()))?;
        if actual != sha256 {
            return Err(changed(path));
        }
        let (head, header) = read_header(&file, len).map_err(|e| broken(path, e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        Ok(TensorReader {
            path: path.to_path_buf(),
            file: Arc::new(file),
            head,
            header,
            meta,
            sha256: sha256.to_string(),
        })
    }

    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.head.len() as u64 + self.header.data_len() as u64
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

    /// Where each tensor of the file goes, in the file's order: its group (the index of
    /// its prefix in `groups`) and its range in the group's layout-ordered values. The
    /// tensors must be `prefix + name` of every layout entry of every group, in `dtype`.
    fn plan(
        &self,
        layout: &ParamLayout,
        dtype: Dtype,
        groups: &[&str],
    ) -> Result<Vec<(usize, Range<usize>)>> {
        let path = self.path.display();
        let tensors = self.header.tensors();
        if tensors.len() != layout.specs.len() * groups.len() {
            bail!(
                "{path} holds {} tensors, expected {} for this model",
                tensors.len(),
                layout.specs.len() * groups.len()
            );
        }
        let mut plan = Vec::with_capacity(tensors.len());
        for (g, prefix) in groups.iter().enumerate() {
            for s in &layout.specs {
                let name = format!("{prefix}{}", s.name);
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| anyhow!("{path} has no tensor {name}"))?;
                if t.dtype != st_dtype(dtype) || t.shape != [s.rows, s.cols] {
                    bail!(
                        "{path}: tensor {name} is {:?} {:?}, expected {:?} {:?}",
                        t.dtype,
                        t.shape,
                        st_dtype(dtype),
                        [s.rows, s.cols]
                    );
                }
                plan.push((t.data_offsets.0, (g, s.range())));
            }
        }
        // The crate checked that the tensors tile the data in offset order.
        plan.sort_by_key(|&(offset, _)| offset);
        Ok(plan.into_iter().map(|(_, to)| to).collect())
    }

    /// Streams the tensors `prefix + name` of every layout entry of every group, in the
    /// file's order, to `sink(group, first index, values)` a chunk at a time, widened to
    /// f64 (exact); with `verify`, hashes them as they pass and errors at the end unless
    /// the file is still the one opened.
    pub fn stream(
        &self,
        layout: &ParamLayout,
        dtype: Dtype,
        groups: &[&str],
        verify: bool,
        mut sink: impl FnMut(usize, usize, &[f64]) -> Result<()>,
    ) -> Result<()> {
        let plan = self.plan(layout, dtype, groups)?;
        let w = width(dtype);
        let mut hasher = Sha256::new();
        hasher.update(&self.head);
        let mut file: &File = &self.file;
        file.seek(SeekFrom::Start(self.head.len() as u64))?;
        let (mut bytes, mut values) = (vec![0u8; CHUNK * w], Vec::with_capacity(CHUNK));
        for (group, range) in plan {
            for at in range.clone().step_by(CHUNK) {
                let n = (range.end - at).min(CHUNK);
                let buf = &mut bytes[..n * w];
                file.read_exact(buf).map_err(|_| changed(&self.path))?;
                if verify {
                    hasher.update(&*buf);
                }
                values.clear();
                match dtype.storage() {
                    Dtype::F64 => values.extend(
                        buf.chunks_exact(8)
                            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
                    ),
                    _ => values
                        .extend(buf.chunks_exact(4).map(|b| {
                            f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        })),
                }
                sink(group, at, &values)?;
            }
        }
        if verify && hex(&hasher.finalize()) != self.sha256 {
            return Err(changed(&self.path));
        }
        Ok(())
    }

    /// Reads the tensors of every group into its buffer of `dest` (layout order, rounded
    /// to `F`), verifying the checksum as they pass. On an error the buffers hold part of
    /// the file: not to be used.
    pub fn read_into<F: Float>(
        &self,
        layout: &ParamLayout,
        dtype: Dtype,
        groups: &[&str],
        dest: &mut [&mut [F]],
    ) -> Result<()> {
        if dest.len() != groups.len() || dest.iter().any(|d| d.len() != layout.total) {
            bail!(
                "{}: buffers for {} values expected",
                self.path.display(),
                layout.total
            );
        }
        self.stream(layout, dtype, groups, true, |group, at, values| {
            let out = &mut dest[group][at..at + values.len()];
            for (o, &x) in out.iter_mut().zip(values) {
                *o = F::of(x);
            }
            Ok(())
        })
    }
}

/// The header of `file` (`len` bytes), read from its start as the crate's `read_metadata`
/// reads a whole buffer, with the same checks, without the data.
fn read_header(mut file: &File, len: u64) -> Result<(Vec<u8>, Metadata), SafeTensorError> {
    file.seek(SeekFrom::Start(0))?;
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| SafeTensorError::HeaderTooSmall)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES {
        return Err(SafeTensorError::HeaderTooLarge);
    }
    if n > len.saturating_sub(8) {
        return Err(SafeTensorError::InvalidHeaderLength);
    }
    let mut head = vec![0u8; 8 + n as usize];
    head[..8].copy_from_slice(&n.to_le_bytes());
    file.read_exact(&mut head[8..])?;
    let text = std::str::from_utf8(&head[8..]).map_err(SafeTensorError::InvalidHeader)?;
    let header: Metadata =
        serde_json::from_str(text).map_err(SafeTensorError::InvalidHeaderDeserialization)?;
    if header.data_len() as u64 != len - 8 - n {
        return Err(SafeTensorError::MetadataIncompleteBuffer);
    }
    Ok((head, header))
}

/// The name and index within it of the first value of `values` (layout order) that fails
/// `ok`, for errors that say where.
pub fn first_bad<F: Float>(
    layout: &ParamLayout,
    values: &[F],
    ok: impl Fn(f64) -> bool,
) -> Option<String> {
    let i = values.iter().position(|x| !ok(x.as_f64()))?;
    bad_at(layout, i, values[i].as_f64())
}

/// `x`, the value at `index` (layout order), and the tensor it is in.
pub fn bad_at(layout: &ParamLayout, index: usize, x: f64) -> Option<String> {
    let spec = layout.specs.iter().find(|s| s.range().contains(&index))?;
    Some(format!("{x} in {}", spec.name))
}

#[cfg(test)]
#[path = "tensorfile_tests.rs"]
mod tests;
