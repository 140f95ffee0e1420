//! The training loop: batches of documents, forward/backward on any [`Engine`], optional
//! gradient clipping, the learning-rate schedule and Adam.

use crate::dtype::Float;
use crate::engine::Engine;
use crate::optim::{clip_grad_norm, Adam, AdamConfig, LrSchedule};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Everything that decides how the weights move, beyond the model's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub steps: usize,
    pub batch_size: usize,
    pub adam: AdamConfig,
    pub lr_schedule: LrSchedule,
    pub warmup_steps: usize,
    /// Clip the global gradient norm to this (none: the original's behaviour).
    pub grad_clip: Option<f64>,
}

impl Default for TrainOptions {
    /// The original's: 1000 steps of one document, linear decay, no clipping.
    fn default() -> Self {
        TrainOptions {
            steps: 1000,
            batch_size: 1,
            adam: AdamConfig::default(),
            lr_schedule: LrSchedule::Linear,
            warmup_steps: 0,
            grad_clip: None,
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// 1-based.
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    /// Target tokens of this step.
    pub tokens: usize,
}

/// Documents of 0-based `step`: `docs[(step*B + b) % len]` for `b < B`.
pub fn batch_of(docs: &[Vec<usize>], step: usize, batch_size: usize) -> Vec<&[usize]> {
    (0..batch_size)
        .map(|b| docs[(step * batch_size + b) % docs.len()].as_slice())
        .collect()
}

/// Target tokens a batch predicts: `min(block_size, len - 1)` per document.
pub fn target_tokens(batch: &[&[usize]], block_size: usize) -> usize {
    batch.iter().map(|t| block_size.min(t.len() - 1)).sum()
}

pub struct Trainer<E: Engine> {
    pub engine: E,
    pub adam: Adam<E::F>,
    pub options: TrainOptions,
    /// Steps taken so far.
    pub step: usize,
}

impl<E: Engine> Trainer<E> {
    pub fn new(engine: E, options: TrainOptions) -> Self {
        let adam = Adam::new(options.adam, engine.layout().total);
        Trainer {
            engine,
            adam,
            options,
            step: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.options.steps
    }

    /// One optimisation step on the next batch. A non-finite loss is an error and leaves
    /// the weights as they were.
    pub fn step(&mut self, docs: &[Vec<usize>]) -> Result<StepStats> {
        let o = &self.options;
        let batch = batch_of(docs, self.step, o.batch_size);
        let tokens = target_tokens(&batch, self.engine.config().block_size);
        let loss = self.engine.forward_backward(&batch);
        if !loss.is_finite() {
            bail!(
                "loss became {loss} at step {}: the weights diverged (try a lower --lr, --grad-clip or a smaller --init-std)",
                self.step + 1
            );
        }
        let lr = o
            .lr_schedule
            .lr(o.adam.lr, self.step, o.steps, o.warmup_steps);
        let (params, grads) = self.engine.params_and_grads_mut();
        if let Some(max_norm) = o.grad_clip {
            clip_grad_norm(grads, max_norm);
        }
        self.adam.update(params, grads, lr);
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            lr,
            tokens,
        })
    }

    /// Mean loss over `docs` in batches of `batch_size`, weighted by target tokens.
    pub fn evaluate(&mut self, docs: &[Vec<usize>]) -> f64 {
        let block_size = self.engine.config().block_size;
        let (mut sum, mut count) = (0.0, 0usize);
        for chunk in docs.chunks(self.options.batch_size.max(1)) {
            let batch: Vec<&[usize]> = chunk.iter().map(Vec::as_slice).collect();
            let n = target_tokens(&batch, block_size);
            sum += self.engine.loss(&batch) * n as f64;
            count += n;
        }
        sum / count.max(1) as f64
    }
}

/// Converts layout-ordered `f64` parameters into an engine's element type.
pub fn cast_params<F: Float>(params: &[f64]) -> Vec<F> {
    params.iter().map(|&p| F::of(p)).collect()
}
