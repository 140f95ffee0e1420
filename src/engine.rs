//! What the training loop, the sampler and the gradient check need from a model engine.
//! The scalar reference engine and the tensor engine both implement it.

use crate::config::{ModelConfig, ParamLayout};
use crate::dtype::{Dtype, Float};
use crate::optim::Rounding;
use crate::scalar::ScalarGpt;
use crate::tensor::TensorGpt;
use serde::{Deserialize, Serialize};

pub trait Engine {
    /// The element type of parameters and gradients.
    type F: Float;

    /// How Adam rounds for this engine: only an exact reproduction needs Python's order.
    const ADAM_ROUNDING: Rounding = Rounding::Fast;

    fn config(&self) -> &ModelConfig;
    fn layout(&self) -> &ParamLayout;

    /// Forward and backward over a batch of encoded documents (`[BOS] + ids + [BOS]`, each
    /// cropped to `block_size` predictions). Overwrites the gradients and returns the batch
    /// loss: the mean over all target tokens of `-log p(target)`.
    fn forward_backward(&mut self, batch: &[&[usize]]) -> f64;

    /// The same loss without gradients.
    fn loss(&mut self, batch: &[&[usize]]) -> f64;

    /// Flat parameters and gradients in layout order.
    fn params(&self) -> &[Self::F];
    fn grads(&self) -> &[Self::F];
    fn params_and_grads_mut(&mut self) -> (&mut [Self::F], &mut [Self::F]);

    /// Starts a new sequence for [`Engine::decode`] (empties the key/value cache).
    fn reset_decode(&mut self);

    /// Feeds `token` at position `pos` of the current sequence and writes the next-token
    /// logits (length `vocab_size`).
    fn decode(&mut self, token: usize, pos: usize, logits: &mut [f64]);
}

/// Which engine runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Batched GEMMs on flat buffers, f32 or f64: the fast one.
    #[default]
    Tensor,
    /// The bit-exact scalar autograd reference (slow; f64 only).
    Scalar,
}

/// Code that runs on whichever engine a run asked for: [`with_engine`] builds it and hands
/// it over with its concrete type, so generic code needs no trait objects.
pub trait EngineTask {
    type Output;
    fn run<E: Engine>(self, engine: E) -> Self::Output;
}

/// Builds the `kind` engine in `dtype` from layout-ordered parameters and runs `task` on it.
pub fn with_engine<T: EngineTask>(
    kind: EngineKind,
    dtype: Dtype,
    cfg: &ModelConfig,
    params: &[f64],
    task: T,
) -> anyhow::Result<T::Output> {
    match (kind, dtype) {
        (EngineKind::Tensor, Dtype::F64) => Ok(task.run(TensorGpt::<f64>::new(cfg, params)?)),
        (EngineKind::Tensor, Dtype::F32) => Ok(task.run(TensorGpt::<f32>::new(cfg, params)?)),
        (EngineKind::Scalar, Dtype::F64) => Ok(task.run(ScalarGpt::new(cfg, params)?)),
        (EngineKind::Scalar, Dtype::F32) => {
            anyhow::bail!("the scalar engine runs in f64 only (use --dtype f64)")
        }
    }
}
