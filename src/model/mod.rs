//! The model: its configuration and flat parameter layout (`config`), what an engine offers
//! (`engine`), the two engines (the bit-exact `scalar` reference and the fast `tensor`
//! engine) and Adam (`optim`), which updates any engine's parameters. Uses `numerics` only.

pub mod config;
pub mod engine;
pub mod inventory;
pub mod optim;
pub mod scalar;
pub mod tensor;

use crate::numerics::dtype::{Dtype, Float};
use config::{ConfigError, ModelConfig};
use engine::{Engine, EngineKind};
use scalar::ScalarGpt;
use tensor::TensorGpt;

/// Code that runs on whichever engine a run asked for: [`with_engine`] builds it and hands
/// it over with its concrete type, so generic code needs no trait objects.
pub trait EngineTask {
    type Output;
    fn run<E: Engine>(self, engine: E) -> Self::Output;
}

/// Where an engine's weights come from, written straight into its own buffers (layout
/// order, rounded to its element type), so that no other copy outlives its construction.
pub trait Weights {
    fn fill<F: Float>(self, dest: &mut [F]) -> anyhow::Result<()>;
}

impl Weights for &[f64] {
    fn fill<F: Float>(self, dest: &mut [F]) -> anyhow::Result<()> {
        if self.len() != dest.len() {
            return Err(ConfigError::ParamCount {
                expected: dest.len(),
                found: self.len(),
            }
            .into());
        }
        for (d, &x) in dest.iter_mut().zip(self) {
            *d = F::of(x);
        }
        Ok(())
    }
}

/// Taken, and freed once the engine holds them.
impl Weights for Vec<f64> {
    fn fill<F: Float>(self, dest: &mut [F]) -> anyhow::Result<()> {
        self.as_slice().fill(dest)
    }
}

/// `engine` with `weights`.
fn filled<E: Engine>(mut engine: E, weights: impl Weights) -> anyhow::Result<E> {
    weights.fill(engine.params_and_grads_mut().0)?;
    Ok(engine)
}

/// Builds the `kind` engine in `dtype` with `weights` and runs `task` on it. The engines
/// meet only here.
pub fn with_engine<T: EngineTask>(
    kind: EngineKind,
    dtype: Dtype,
    cfg: &ModelConfig,
    weights: impl Weights,
    task: T,
) -> anyhow::Result<T::Output> {
    match (kind, dtype) {
        (EngineKind::Tensor, Dtype::F64) => {
            Ok(task.run(filled(TensorGpt::<f64>::zeros(cfg)?, weights)?))
        }
        (EngineKind::Tensor, Dtype::F32) => {
            Ok(task.run(filled(TensorGpt::<f32>::zeros(cfg)?, weights)?))
        }
        (EngineKind::Tensor, Dtype::Bf16) => {
            let kernel = crate::numerics::bf16::kernel()?;
            let engine = TensorGpt::zeros(cfg)?.into_bf16(kernel);
            Ok(task.run(filled(engine, weights)?))
        }
        (EngineKind::Scalar, Dtype::F64) => {
            // The scalar engine's weights are its graph's first nodes, made from f64s.
            cfg.validate()?;
            let mut params = vec![0.0; cfg.layout().total];
            weights.fill(&mut params)?;
            Ok(task.run(ScalarGpt::new(cfg, &params)?))
        }
        (EngineKind::Scalar, Dtype::F32 | Dtype::Bf16) => {
            anyhow::bail!("the scalar engine runs in f64 only (use --dtype f64)")
        }
    }
}
