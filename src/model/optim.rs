//! Adam with bias correction over flat parameter and moment buffers (docs/SPEC.md §4), the
//! learning-rate schedules, and global gradient-norm clipping.

use super::tensor::for_rows;
use crate::numerics::dtype::{fold_lanes, Float};
use crate::numerics::pool;
use crate::numerics::pow;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    /// The original's settings.
    fn default() -> Self {
        AdamConfig {
            lr: 0.01,
            beta1: 0.85,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
}

/// How the learning rate moves over the run's steps after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr * (1 - s/steps)`, the original's.
    #[default]
    Linear,
    /// `lr * (1 + cos(π s/steps)) / 2`.
    Cosine,
    Constant,
}

impl LrSchedule {
    /// The learning rate of 0-based `step` of `steps`. A linear warm-up over `warmup` steps
    /// comes first; the schedule then runs over the remaining steps. With no warm-up, linear
    /// is the original's `lr * (1 - step / num_steps)` to the bit.
    pub fn lr(self, lr: f64, step: usize, steps: usize, warmup: usize) -> f64 {
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        let progress = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
        match self {
            LrSchedule::Linear => lr * (1.0 - progress),
            LrSchedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrSchedule::Constant => lr,
        }
    }
}

/// How [`Adam::update`] rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// The original's operations in its order, bit for bit (`g**2` and `v_hat**0.5` as the C
    /// `pow`, three divisions per parameter): for the scalar engine's exact reproduction.
    Python,
    /// The same update with the bias corrections folded into two per-step scalars: one
    /// square root and one division per parameter, within a few ULPs of `Python`.
    Fast,
}

/// Adam's state: first and second moments and the number of updates taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<F> {
    pub config: AdamConfig,
    pub m: Vec<F>,
    pub v: Vec<F>,
    pub t: usize,
}

impl<F: Float> Adam<F> {
    pub fn new(config: AdamConfig, n_params: usize) -> Self {
        Adam {
            config,
            m: vec![F::zero(); n_params],
            v: vec![F::zero(); n_params],
            t: 0,
        }
    }

    /// One update with learning rate `lr_t`, after AdamW's decoupled weight decay at rate
    /// `decay` (`lr_t · weight_decay`, 0 for the original's Adam): `p = p (1 - decay)`, then
    /// `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g**2; p -= lr_t * m_hat / (v_hat**0.5 + eps)`
    /// with `m_hat = m / (1 - b1**t)`, `v_hat = v / (1 - b2**t)`. Every parameter of this
    /// model is a 2-D weight matrix (no biases or norm gains), so every one decays, as nanoGPT
    /// decays all tensors of two or more dimensions. The decay rides in this pass over the
    /// parameters rather than one of its own; times 1, when it is 0, changes no bits.
    pub fn update(
        &mut self,
        params: &mut [F],
        grads: &[F],
        lr_t: f64,
        decay: f64,
        rounding: Rounding,
    ) {
        self.t += 1;
        let c = self.config;
        let (b1, b2) = (F::of(c.beta1), F::of(c.beta2));
        let (one_minus_b1, one_minus_b2) = (F::of(1.0 - c.beta1), F::of(1.0 - c.beta2));
        let bias1 = 1.0 - pow(c.beta1, self.t as f64);
        let bias2 = 1.0 - pow(c.beta2, self.t as f64);
        let eps = F::of(c.eps);
        let keep = F::of(1.0 - decay);
        // Elementwise, so any cut into chunks gives the same bits: chunks run on the tensor
        // engine's threads when there are enough parameters to pay for them.
        let n = params.len();
        let outs = [(params, 1), (&mut self.m[..], 1), (&mut self.v[..], 1)];
        for_rows(n, 12.0 * n as f64, outs, &|r, [params, m, v]| {
            let moments = params.iter_mut().zip(&grads[r]).zip(m.iter_mut().zip(v));
            match rounding {
                Rounding::Python => {
                    let (bias1, bias2, lr_t) = (F::of(bias1), F::of(bias2), F::of(lr_t));
                    // Opaque exponents: `pow(g, 2)` and `pow(v, 0.5)` must stay the C `pow`
                    // (see pymath).
                    let two = F::of(std::hint::black_box(2.0));
                    let half = F::of(std::hint::black_box(0.5));
                    for ((p, &g), (m, v)) in moments {
                        *p *= keep;
                        *m = b1 * *m + one_minus_b1 * g;
                        *v = b2 * *v + one_minus_b2 * g.powf(two);
                        let m_hat = *m / bias1;
                        let v_hat = *v / bias2;
                        *p -= lr_t * m_hat / (v_hat.powf(half) + eps);
                    }
                }
                Rounding::Fast => {
                    // lr_t * (m / bias1) / ((v / bias2)**0.5 + eps)
                    //   = (lr_t / bias1) * m / (v**0.5 * bias2**-0.5 + eps)
                    let step = F::of(lr_t / bias1);
                    let inv_sqrt_bias2 = F::of(1.0 / bias2.sqrt());
                    // Gradients so small that `(1 - b2) g²` would be subnormal count as 0
                    // (see `Float::flush_subnormal`): they would move their weight by less
                    // than `lr · 1e-10` in f32, and at d384 they made Adam 5x slower.
                    let tiny = if one_minus_b2 > F::zero() {
                        (F::min_positive_value() / one_minus_b2).sqrt()
                    } else {
                        F::zero()
                    };
                    for ((p, &g), (m, v)) in moments {
                        *p *= keep;
                        let g = if g.abs() < tiny { F::zero() } else { g };
                        *m = (b1 * *m + one_minus_b1 * g).flush_subnormal();
                        *v = (b2 * *v + one_minus_b2 * g * g).flush_subnormal();
                        *p -= step * *m / (v.sqrt() * inv_sqrt_bias2 + eps);
                    }
                }
            }
        });
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the norm before.
/// The sum of squares runs in f64 over a fixed number of chunks on the pool, each chunk in
/// SIMD lanes ([`fold_lanes`]), then the chunks' sums in order: the same bits on any thread
/// count. (One running f64 sum took ~1 ms a step at 0.8M parameters.)
pub fn clip_grad_norm<F: Float>(grads: &mut [F], max_norm: f64) -> f64 {
    const CHUNKS: usize = 64;
    let n = grads.len();
    let cost = pool::pass_cost(n);
    let mut sums = [0.0f64; CHUNKS];
    for_rows(CHUNKS, cost, [(&mut sums[..], 1)], &|chunks, [sums]| {
        let square = |s: f64, g: F| s + g.as_f64() * g.as_f64();
        for (sum, chunk) in sums.iter_mut().zip(chunks) {
            let g = &grads[pool::split(n, CHUNKS, chunk)];
            *sum = fold_lanes(g, 0.0, square, |a, b| a + b);
        }
    });
    let norm = sums.iter().sum::<f64>().sqrt();
    if norm > max_norm {
        let scale = F::of(max_norm / (norm + 1e-6));
        for_rows(n, cost, [(grads, 1)], &|_, [grads]| {
            grads.iter_mut().for_each(|g| *g *= scale);
        });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_is_the_originals_formula() {
        for step in [0, 1, 499, 999] {
            let ours = LrSchedule::Linear.lr(0.01, step, 1000, 0);
            assert_eq!(
                ours.to_bits(),
                (0.01 * (1.0 - step as f64 / 1000.0)).to_bits()
            );
        }
    }

    #[test]
    fn warmup_then_cosine() {
        assert_eq!(LrSchedule::Cosine.lr(1.0, 0, 110, 10), 0.1);
        assert_eq!(LrSchedule::Cosine.lr(1.0, 9, 110, 10), 1.0);
        assert_eq!(LrSchedule::Cosine.lr(1.0, 10, 110, 10), 1.0);
        assert!((LrSchedule::Cosine.lr(1.0, 60, 110, 10) - 0.5).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr(0.3, 77, 100, 0), 0.3);
    }

    #[test]
    fn fast_rounding_makes_the_same_updates_within_a_few_ulps() {
        let config = AdamConfig::default();
        let mut rng = crate::numerics::rng::Rng::new(3);
        let (mut python, mut fast) = (Adam::new(config, 1000), Adam::new(config, 1000));
        let mut p_python: Vec<f64> = (0..1000).map(|_| rng.gauss(0.0, 1.0)).collect();
        let mut p_fast = p_python.clone();
        for step in 0..50 {
            let grads: Vec<f64> = (0..1000).map(|_| rng.gauss(0.0, 0.1)).collect();
            let lr = LrSchedule::Linear.lr(0.01, step, 50, 0);
            python.update(&mut p_python, &grads, lr, 0.0, Rounding::Python);
            fast.update(&mut p_fast, &grads, lr, 0.0, Rounding::Fast);
        }
        for (a, b) in p_python.iter().zip(&p_fast) {
            assert!((a - b).abs() <= 1e-14 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn fast_rounding_keeps_subnormals_out_of_the_moments() {
        let mut adam = Adam::<f32>::new(AdamConfig::default(), 3);
        // Weight 0 has not seen a gradient for a long time: its moments decay below the
        // normal range this step; weight 1 just had a tiny gradient; weight 2's gradient
        // squared is subnormal.
        adam.m = vec![1.1 * f32::MIN_POSITIVE, 2e-30, 0.0];
        adam.v = vec![1.005 * f32::MIN_POSITIVE, 1e-30, 0.0];
        let mut params = vec![1.0f32; 3];
        adam.update(&mut params, &[0.0, 0.0, 1e-20], 0.01, 0.0, Rounding::Fast);
        assert_eq!(
            (adam.m[0], adam.v[0]),
            (0.0, 0.0),
            "subnormal moments flushed"
        );
        assert_eq!(adam.m[1], 0.85 * 2e-30, "normal moments kept");
        assert_eq!(adam.v[1], 0.99 * 1e-30);
        assert_eq!(
            (adam.m[2], adam.v[2], params[2]),
            (0.0, 0.0, 1.0),
            "tiny gradient"
        );
    }

    #[test]
    fn weight_decay_is_the_decay_pass_before_adam_to_the_bit() {
        let grads: Vec<f64> = (0..37).map(|i| (i as f64 - 18.0) * 0.013).collect();
        let start: Vec<f64> = (0..37).map(|i| (i as f64 * 0.7).sin()).collect();
        let (lr, decay) = (0.01, 0.01 * 0.1);
        for rounding in [Rounding::Python, Rounding::Fast] {
            let mut fused = start.clone();
            let mut adam = Adam::new(AdamConfig::default(), 37);
            adam.update(&mut fused, &grads, lr, decay, rounding);
            let mut apart: Vec<f64> = start.iter().map(|p| p * (1.0 - decay)).collect();
            let mut adam = Adam::new(AdamConfig::default(), 37);
            adam.update(&mut apart, &grads, lr, 0.0, rounding);
            assert_eq!(fused, apart, "{rounding:?}");
            assert_ne!(fused, {
                let mut plain = start.clone();
                Adam::new(AdamConfig::default(), 37).update(&mut plain, &grads, lr, 0.0, rounding);
                plain
            });
        }
    }

    #[test]
    fn the_gradient_norm_is_the_f64_norm() {
        let mut g: Vec<f32> = (0..100_003)
            .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
            .collect();
        let want = g.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let norm = clip_grad_norm(&mut g, 1.0);
        assert!((norm - want).abs() <= 1e-12 * want, "{norm} vs {want}");
        let after = g.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        assert!((after - 1.0).abs() < 1e-5, "norm after clipping: {after}");
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let mut g = vec![3.0f64, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
        let mut small = vec![0.3f32, 0.4];
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small, [0.3, 0.4]);
    }
}
