//! The floating-point types the engines run in.

use ndarray::{ArrayView, ArrayViewMut, Dimension};
use serde::{Deserialize, Serialize};

/// Element type of the tensor engine's parameters, activations and optimizer state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    #[default]
    F64,
    /// f32 everywhere (weights, gradients, Adam, activations, checkpoints) but the GEMMs,
    /// whose operands are rounded to bf16 and accumulated in f32 (`crate::numerics::bf16`).
    Bf16,
}

impl Dtype {
    /// The type its values are stored in: a bf16 run keeps f32.
    pub fn storage(self) -> Dtype {
        match self {
            Dtype::Bf16 => Dtype::F32,
            d => d,
        }
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

    /// The matrix as `f32`, when `Self` is `f32`: the bf16 GEMMs read and write f32.
    fn f32_view<D: Dimension>(m: ArrayView<'_, Self, D>) -> Option<ArrayView<'_, f32, D>>;
    fn f32_view_mut<D: Dimension>(m: ArrayViewMut<'_, Self, D>)
        -> Option<ArrayViewMut<'_, f32, D>>;

    /// `e^x` in a form a loop turns into SIMD lanes: a loop over libm's `exp` makes one call
    /// per element, which cost the attention softmax ~4 ns each. f32: the polynomial below,
    /// within 2 ulp of libm on the normal range; f64 keeps libm's `exp`, whose results the
    /// gradient checks compare at 1e-10.
    fn exp_simd(self) -> Self;

    /// `self`, or 0 when it is subnormal. x86 takes ~100 cycles for each operation on a
    /// subnormal, a GEMM's included, so the tensor engine flushes where they arise in
    /// bulk: probabilities of a softmax whose scores are far apart (`exp` below
    /// `min_positive_value`, 1e-38 in f32), gradients scaled down from them, and Adam's
    /// moments of weights whose gradient stays 0. A subnormal's size is below anything the
    /// model can show; f64 reaches that range only at 1e-308.
    #[inline]
    fn flush_subnormal(self) -> Self {
        if self.abs() < Self::min_positive_value() {
            Self::zero()
        } else {
            self
        }
    }
}

/// `items` folded by `step` into eight interleaved partial results, which `merge` then
/// combines in order, and the tail after them. Eight independent chains let the compiler use
/// SIMD lanes (one running sum waits on each add in turn: ~4x slower); the order depends only
/// on the length, so results never depend on threads.
pub fn fold_lanes<T: Copy, A: Copy>(
    items: &[T],
    init: A,
    step: impl Fn(A, T) -> A,
    merge: impl Fn(A, A) -> A,
) -> A {
    const LANES: usize = 8;
    let mut acc = [init; LANES];
    let chunks = items.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] = step(acc[l], chunk[l]);
        }
    }
    let lanes = acc.into_iter().fold(init, &merge);
    tail.iter().fold(lanes, |a, &x| step(a, x))
}

impl Float for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn f32_view<D: Dimension>(m: ArrayView<'_, f32, D>) -> Option<ArrayView<'_, f32, D>> {
        Some(m)
    }
    fn f32_view_mut<D: Dimension>(m: ArrayViewMut<'_, f32, D>) -> Option<ArrayViewMut<'_, f32, D>> {
        Some(m)
    }

    /// Cephes' `expf`: `e^x = 2^n e^r` with `n = round(x log2 e)` and `|r| <= ln2 / 2`, `e^r`
    /// a polynomial, `2^n` built in the exponent bits. Branch-free: inputs are clamped to
    /// where `2^n` is representable (results below f32's normal range are flushed to 0;
    /// `x > 88.37` gives +inf, a little before f32's own limit of 88.72), and a NaN stays NaN.
    #[inline]
    fn exp_simd(self) -> f32 {
        const LO: f32 = -87.5;
        const HI: f32 = 88.5;
        // Adding 1.5 * 2^23 rounds to an integer, which lands in the low mantissa bits.
        const ROUND: f32 = 12_582_912.0;
        let x = self.clamp(LO, HI);
        let shifted = x * std::f32::consts::LOG2_E + ROUND;
        let n = shifted - ROUND;
        // r = x - n ln2, with ln2 in two parts so that n ln2's high part is exact
        // (0.6933594 is 355/512).
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let p = 1.987_569_1e-4_f32;
        let p = p * r + 1.398_199_9e-3;
        let p = p * r + 8.333_452e-3;
        let p = p * r + 4.166_579_6e-2;
        let p = p * r + 1.666_666_5e-1;
        let p = p * r + 0.5;
        let er = p * (r * r) + r + 1.0;
        let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
        let pow2 = f32::from_bits((n_bits.wrapping_add(127) as u32) << 23);
        (er * pow2).flush_subnormal()
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
    fn f32_view<D: Dimension>(_: ArrayView<'_, f64, D>) -> Option<ArrayView<'_, f32, D>> {
        None
    }
    fn f32_view_mut<D: Dimension>(_: ArrayViewMut<'_, f64, D>) -> Option<ArrayViewMut<'_, f32, D>> {
        None
    }
    #[inline]
    fn exp_simd(self) -> f64 {
        self.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    #[test]
    fn f32_exp_simd_is_within_two_ulp_of_exp_on_the_normal_range() {
        let mut worst = (0.0f64, 0.0f32);
        for i in 0..=1_000_000 {
            let x = -87.3 + 175.6 * i as f32 / 1e6;
            let (got, want) = (x.exp_simd(), (x as f64).exp());
            let ulp = f64::from(f32::EPSILON) * want;
            let err = (f64::from(got) - want).abs() / ulp;
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 <= 2.0, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn f32_exp_simd_flushes_underflow_saturates_overflow_and_keeps_nan() {
        assert_eq!((-87.5f32).exp_simd(), 0.0);
        assert_eq!((-1e30f32).exp_simd(), 0.0);
        assert_eq!(f32::NEG_INFINITY.exp_simd(), 0.0);
        assert_eq!(89.0f32.exp_simd(), f32::INFINITY);
        assert_eq!(f32::INFINITY.exp_simd(), f32::INFINITY);
        assert!(f32::NAN.exp_simd().is_nan());
        assert_eq!(0.0f32.exp_simd(), 1.0);
        assert_eq!(1.5f64.exp_simd(), 1.5f64.exp());
    }
}
