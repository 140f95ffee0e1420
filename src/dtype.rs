//! The floating-point types the engines run in.

use serde::{Deserialize, Serialize};

/// Element type of the tensor engine's parameters, activations and optimizer state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    #[default]
    F64,
}

impl crate::choice::Choice for Dtype {
    const ALL: &'static [Self] = &[Dtype::F32, Dtype::F64];
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::choice::Choice::name(*self))
    }
}

/// What the generic code needs of `f32` and `f64`.
pub trait Float:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + std::fmt::Debug
    + std::fmt::Display
    + Default
    + Send
    + Sync
    + 'static
{
    const DTYPE: Dtype;

    /// Rounds an `f64` to this type.
    fn of(x: f64) -> Self;
    fn as_f64(self) -> f64;

    /// `self`, or 0 when it is subnormal. x86 takes ~100 cycles for each operation on a
    /// subnormal, a GEMM's included, so the tensor engine flushes where they arise in
    /// bulk: probabilities of a softmax whose scores are far apart (`exp` below
    /// `min_positive_value`, 1e-38 in f32), gradients scaled down from them, and Adam's
    /// moments of weights whose gradient stays 0. A subnormal's size is below anything the
    /// model can show; f64 reaches that range only at 1e-308.
    fn flush_subnormal(self) -> Self {
        if self.abs() < Self::min_positive_value() {
            Self::zero()
        } else {
            self
        }
    }
}

impl Float for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const DTYPE: Dtype = Dtype::F64;
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
}
