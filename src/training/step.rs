//! One training step on any [`Engine`] (forward/backward, optional gradient clipping, the
//! learning-rate schedule, Adam) and the validation loss.

use crate::model::config::predictions;
use crate::model::engine::Engine;
use crate::model::optim::{clip_grad_norm, Adam};
use crate::settings::{OptimizerSettings, RunSettings, ScheduleSettings};
use anyhow::{bail, Result};

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

/// Target tokens a batch predicts.
pub fn target_tokens(batch: &[&[usize]], block_size: usize) -> usize {
    batch.iter().map(|t| predictions(t.len(), block_size)).sum()
}

pub struct Trainer<E: Engine> {
    pub engine: E,
    pub adam: Adam<E::F>,
    pub optimizer: OptimizerSettings,
    pub schedule: ScheduleSettings,
    /// Steps taken so far.
    pub step: usize,
}

impl<E: Engine> Trainer<E> {
    pub fn new(engine: E, settings: &RunSettings) -> Self {
        let adam = Adam::new(settings.optimizer.adam(), engine.layout().total);
        Trainer {
            engine,
            adam,
            optimizer: settings.optimizer.clone(),
            schedule: settings.schedule.clone(),
            step: 0,
        }
    }

    /// One optimisation step on `batch`. A non-finite loss is an error and leaves the
    /// weights as they were.
    pub fn step(&mut self, batch: &[&[usize]]) -> Result<StepStats> {
        let tokens = target_tokens(batch, self.engine.config().block_size);
        let loss = self.engine.forward_backward(batch);
        if !loss.is_finite() {
            bail!(
                "loss became {loss} at step {}: the weights diverged (try a lower --lr, --grad-clip or a smaller --init-std)",
                self.step + 1
            );
        }
        let s = &self.schedule;
        let lr = s
            .lr_schedule
            .lr(self.optimizer.lr, self.step, s.steps, s.warmup_steps);
        let (params, grads) = self.engine.params_and_grads_mut();
        if let Some(max_norm) = self.optimizer.grad_clip {
            clip_grad_norm(grads, max_norm);
        }
        let decay = lr * self.optimizer.weight_decay;
        self.adam.update(params, grads, lr, decay, E::ADAM_ROUNDING);
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            lr,
            tokens,
        })
    }
}

/// Mean loss of `engine` over `sequences` in batches of `batch_size`, weighted by target
/// tokens.
pub fn evaluate<E: Engine>(engine: &mut E, sequences: &[&[usize]], batch_size: usize) -> f64 {
    let block_size = engine.config().block_size;
    let (mut sum, mut count) = (0.0, 0usize);
    for batch in sequences.chunks(batch_size.max(1)) {
        let n = target_tokens(batch, block_size);
        sum += engine.loss(batch) * n as f64;
        count += n;
    }
    sum / count.max(1) as f64
}
