//! The streaming writer against the whole-file serialiser checkpoints were written with
//! before it (kept here as the reference): byte for byte, for f64, f32 and a bf16 run.

use super::*;
use crate::model::config::{Activation, ModelConfig};
use crate::model::engine::Engine;
use crate::model::optim::{Adam, AdamConfig, Rounding};
use crate::model::tensor::TensorGpt;
use crate::numerics::bf16::Kernel;

/// The safetensors bytes as the files were made before streaming: the whole file in one
/// buffer.
fn serialize_whole<F: Float>(
    layout: &ParamLayout,
    groups: &[(&str, &[F])],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).unwrap(),
    );
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
    let mut header = serde_json::to_vec(&header).unwrap();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header);
    out.extend(data);
    out
}

/// A model whose tensors span several chunks.
fn cfg() -> ModelConfig {
    ModelConfig {
        vocab_size: 27,
        n_embd: 96,
        n_head: 4,
        n_layer: 2,
        block_size: 8,
        activation: Activation::Gelu,
    }
}

fn meta() -> BTreeMap<String, String> {
    (0..20)
        .map(|i| (format!("key{i}"), i.to_string()))
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microgpt-tensorfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The streamed file equals the whole one, and reads back exactly into `F` buffers.
fn streamed_equals_whole<F: Float>(name: &str, dtype: Dtype, params: &[F], adam: &Adam<F>) {
    let layout = cfg().layout();
    for groups in [
        vec![("", params)],
        vec![("m.", &adam.m[..]), ("v.", &adam.v[..])],
    ] {
        let whole = serialize_whole(&layout, &groups, &meta());
        let mut streamed = Vec::new();
        let sha = write(&mut streamed, &layout, &groups, &meta()).unwrap();
        assert!(streamed == whole, "{name}: streamed bytes differ");
        assert_eq!(sha, crate::data::files::sha256_hex(&whole));
        let path = tmp(name);
        std::fs::write(&path, &streamed).unwrap();
        let file = TensorReader::open(&path, 1 << 30, &sha).unwrap();
        assert_eq!(file.meta_usize("key7").unwrap(), 7);
        assert_eq!(file.size(), whole.len() as u64);
        let prefixes: Vec<&str> = groups.iter().map(|g| g.0).collect();
        let mut back = vec![vec![F::zero(); layout.total]; groups.len()];
        let mut dest: Vec<&mut [F]> = back.iter_mut().map(|b| &mut b[..]).collect();
        file.read_into(&layout, dtype, &prefixes, &mut dest)
            .unwrap();
        for (b, (_, want)) in back.iter().zip(&groups) {
            assert!(
                b[..] == want[..],
                "{name}: values differ after reading back"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
}

/// Trains `engine` a few steps so that weights and moments are a real run's.
fn trained<E: Engine>(mut engine: E) -> (E, Adam<E::F>) {
    let mut adam = Adam::new(AdamConfig::default(), engine.layout().total);
    let doc = [26, 1, 2, 3, 4, 26];
    for _ in 0..3 {
        engine.forward_backward(&[&doc]);
        let (p, g) = engine.params_and_grads_mut();
        adam.update(p, g, 0.01, 0.0, Rounding::Fast);
    }
    (engine, adam)
}

#[test]
fn streamed_checkpoints_are_byte_identical_to_whole_ones() {
    let c = cfg();
    let mut rng = crate::numerics::rng::Rng::new(42);
    let init = c.layout().init(&mut rng, 0.08);
    let (f64s, adam) = trained(TensorGpt::<f64>::new(&c, &init).unwrap());
    streamed_equals_whole("f64", Dtype::F64, f64s.params(), &adam);
    let (f32s, adam) = trained(TensorGpt::<f32>::new(&c, &init).unwrap());
    streamed_equals_whole("f32", Dtype::F32, f32s.params(), &adam);
    let bf16 = TensorGpt::new_bf16(&c, &init, Kernel::Portable).unwrap();
    let (bf16s, adam) = trained(bf16);
    assert!(bf16s.params() != f32s.params(), "the bf16 run is not f32's");
    streamed_equals_whole("bf16", Dtype::Bf16, bf16s.params(), &adam);
}

#[test]
fn a_changed_file_or_a_wrong_layout_is_refused() {
    let layout = cfg().layout();
    let params: Vec<f32> = (0..layout.total).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut bytes = Vec::new();
    let sha = write(&mut bytes, &layout, &[("", &params[..])], &meta()).unwrap();
    let path = tmp("changed");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = TensorReader::open(&path, 1 << 30, &sha).unwrap_err();
    assert!(
        err.to_string().contains("does not match the checksum"),
        "{err}"
    );
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = TensorReader::open(&path, 100, &sha).unwrap_err();
    assert!(err.to_string().contains("more than the 100"), "{err}");
    let file = TensorReader::open(&path, 1 << 30, &sha).unwrap();
    let mut out = vec![0.0f64; layout.total];
    let err = file
        .read_into(&layout, Dtype::F64, &[""], &mut [&mut out[..]])
        .unwrap_err();
    assert!(err.to_string().contains("expected F64"), "{err}");
    // Changed in place after it was opened: the bytes read do not hash as recorded.
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut out = vec![0.0f32; layout.total];
    let err = file
        .read_into(&layout, Dtype::F32, &[""], &mut [&mut out[..]])
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match the checksum"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}
