//! The model: its configuration and flat parameter layout (`config`), what an engine offers
//! (`engine`), the two engines (the bit-exact `scalar` reference and the fast `tensor`
//! engine) and Adam (`optim`), which updates any engine's parameters. Uses `numerics` only.

pub mod config;
pub mod engine;
pub mod optim;
pub mod scalar;
pub mod tensor;

use crate::numerics::dtype::Dtype;
use config::ModelConfig;
use engine::{Engine, EngineKind};
use scalar::ScalarGpt;
use tensor::TensorGpt;

/// Code that runs on whichever engine a run asked for: [`with_engine`] builds it and hands
/// it over with its concrete type, so generic code needs no trait objects.
pub trait EngineTask {
    type Output;
    fn run<E: Engine>(self, engine: E) -> Self::Output;
}

/// Builds the `kind` engine in `dtype` from layout-ordered parameters and runs `task` on it.
/// The engines meet only here.
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
        (EngineKind::Tensor, Dtype::Bf16) => {
            let kernel = crate::numerics::bf16::kernel()?;
            Ok(task.run(TensorGpt::new_bf16(cfg, params, kernel)?))
        }
        (EngineKind::Scalar, Dtype::F64) => Ok(task.run(ScalarGpt::new(cfg, params)?)),
        (EngineKind::Scalar, Dtype::F32 | Dtype::Bf16) => {
            anyhow::bail!("the scalar engine runs in f64 only (use --dtype f64)")
        }
    }
}
