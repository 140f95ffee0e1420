//! What the training loop, the sampler and the gradient check need from a model engine.
//! The scalar reference engine and the tensor engine both implement it.

use crate::model::config::{ModelConfig, ParamLayout};
use crate::model::optim::Rounding;
use crate::numerics::dtype::Float;
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

    /// The attention weights the last [`Engine::decode`] computed, at its position `pos`:
    /// for `layer` and `head`, the softmax of `q·k/√head_dim` over the keys of positions
    /// `0..=pos`, written to `weights` (length `pos + 1`). The engine's own numbers, read
    /// back, not recomputed: `microgpt inspect` draws them.
    fn attention(&self, layer: usize, head: usize, weights: &mut [f64]);
}

/// Which engine runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Batched GEMMs on flat buffers, f32 or f64: the fast one.
    #[default]
    Tensor,
    /// The bit-exact scalar autograd reference (slow; f64 only).
    Scalar,
}
