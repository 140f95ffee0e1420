//! The tensor engine's layers other than attention (see [`super::attention`]), each forward
//! pass beside its backward pass, in the style of llm.c's `train_gpt2.c`. Activations are
//! row-major `[rows, width]` slices: row `r` is one position of one document, so `N` is the
//! number of real positions in the batch. Backward passes take `d<name>` for the gradient of
//! the loss with respect to `<name>`.
//!
//! Residual adds have no function of their own: [`matmul_forward_residual`] accumulates a
//! projection onto the residual, and since `d(a + b)/da = 1` the backward pass adds each
//! block's input gradient onto the residual stream's in place.
//!
//! Linear layers read their weights as a [`Weight`]: the `F` values, or in a bf16 run the
//! weights' bf16 copy, which makes every GEMM of the layer a bf16 GEMM (`crate::numerics::bf16`).
//!
//! Every layer runs on the pool's threads ([`super::pool`]) when its work is large enough:
//! GEMMs as independent output blocks, the row-wise layers as row ranges. No task's result
//! depends on how rows are split, so these layers give the same bits on any thread count.

use super::gemm::{f32_operand, gemm, gemm_bf16, Bf16};
use super::rows::{for_rows, split_axis};
use crate::model::config::{Activation, GELU_A, GELU_C};
use crate::numerics::bf16::{self, Kernel, Operand};
use crate::numerics::dtype::{fold_lanes, Dtype, Float};
use crate::numerics::pool;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use std::ops::Range;

/// `Σ a_i b_i` in eight interleaved partial sums, which the compiler turns into SIMD lanes
/// (one running sum waits on each add in turn: ~4x slower at C = 128). The order depends
/// only on the length, so results never depend on threads. Inlined: attention's short rows
/// (`head_dim` 4 at d16) pay more for a call than for the sum.
#[inline]
pub fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    const LANES: usize = 8;
    let mut acc = [F::zero(); LANES];
    let (a8, b8) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = a8.remainder().iter().zip(b8.remainder());
    for (x, y) in a8.zip(b8) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let lanes = acc.iter().fold(F::zero(), |s, &v| s + v);
    tail.fold(lanes, |s, (&x, &y)| s + x * y)
}

/// Gathers and adds the token and position embeddings.
/// `tokens, positions: [N]`, `wte: [V, C]`, `wpe: [T, C]` -> `out: [N, C]`.
pub fn embedding_forward<F: Float>(
    out: &mut [F],
    tokens: &[usize],
    positions: &[usize],
    wte: &[F],
    wpe: &[F],
    c: usize,
) {
    for ((row, &tok), &pos) in out.chunks_exact_mut(c).zip(tokens).zip(positions) {
        let (te, pe) = (&wte[tok * c..][..c], &wpe[pos * c..][..c]);
        for ((o, &a), &b) in row.iter_mut().zip(te).zip(pe) {
            *o = a + b;
        }
    }
}

/// `out[r] = wte[tokens[r]] + wpe[positions[r]]`, so each row of `dout` flows unchanged into
/// the rows it gathered from: `dwte[tokens[r]] += dout[r]`, `dwpe[positions[r]] += dout[r]`
/// (a scatter-add: a token seen twice collects both rows). Threads split the columns, so
/// every element sums its rows in order, as on one thread.
pub fn embedding_backward<F: Float>(
    dwte: &mut [F],
    dwpe: &mut [F],
    dout: &[F],
    tokens: &[usize],
    positions: &[usize],
    c: usize,
) {
    let flops = pool::pass_cost(dout.len());
    let parts = pool::parts(flops).min(c);
    let ranges = || (0..parts).map(move |part| pool::split(c, parts, part));
    let (v, t) = (dwte.len() / c, dwpe.len() / c);
    let dwte = ArrayViewMut2::from_shape((v, c), dwte).expect("dwte: [V, C]");
    let dwpe = ArrayViewMut2::from_shape((t, c), dwpe).expect("dwpe: [T, C]");
    let columns = |m| split_axis(m, Axis(1), ranges());
    let tasks = columns(dwte).zip(columns(dwpe));
    pool::for_each_part(parts, flops, tasks, &|((cols, mut te), (_, mut pe)), _| {
        for ((d, &tok), &pos) in dout.chunks_exact(c).zip(tokens).zip(positions) {
            let d = &d[cols.clone()];
            for g in [te.row_mut(tok), pe.row_mut(pos)] {
                let g = g.into_slice().expect("contiguous row");
                g.iter_mut().zip(d).for_each(|(g, &x)| *g += x);
            }
        }
    });
}

/// RMS normalisation without gain: `out = x * s` with `s = (mean(x²) + 1e-5)^-½` per row.
/// `x: [N, C]` -> `out: [N, C]`, `rstd: [N]` (each row's `s`, kept for the backward pass).
pub fn rmsnorm_forward<F: Float>(out: &mut [F], rstd: &mut [F], x: &[F], c: usize) {
    let inv_c = F::of(1.0 / c as f64);
    let eps = F::of(1e-5);
    let (rows, cost) = (rstd.len(), pool::pass_cost(2 * x.len()));
    for_rows(rows, cost, [(out, c), (rstd, 1)], &|r, [out, rstd]| {
        let x = &x[r.start * c..r.end * c];
        for ((o, s), xr) in out.chunks_exact_mut(c).zip(rstd).zip(x.chunks_exact(c)) {
            let ms = dot(xr, xr) * inv_c;
            *s = (ms + eps).sqrt().recip();
            o.iter_mut().zip(xr).for_each(|(o, &v)| *o = v * *s);
        }
    });
}

/// Adds the gradient through [`rmsnorm_forward`] to `dx`. With `ds/dx_i = -s³ x_i / C`:
/// `dx_i = s dout_i + Σ_j dout_j x_j ds/dx_i = s dout_i - (s³/C) (dout · x) x_i`.
pub fn rmsnorm_backward<F: Float>(dx: &mut [F], dout: &[F], x: &[F], rstd: &[F], c: usize) {
    let inv_c = F::of(1.0 / c as f64);
    let (rows, cost) = (rstd.len(), pool::pass_cost(3 * x.len()));
    for_rows(rows, cost, [(dx, c)], &|r, [dx]| {
        let (dout, x) = (&dout[r.start * c..r.end * c], &x[r.start * c..r.end * c]);
        for (((dxr, dor), xr), &s) in dx
            .chunks_exact_mut(c)
            .zip(dout.chunks_exact(c))
            .zip(x.chunks_exact(c))
            .zip(&rstd[r])
        {
            let k = s * s * s * inv_c * dot(dor, xr);
            for ((g, &d), &v) in dxr.iter_mut().zip(dor).zip(xr) {
                *g += s * d - k * v;
            }
        }
    });
}

/// The shape of a linear layer without bias over a batch: `x: [n, ic]`, `w: [oc, ic]`,
/// `out: [n, oc]`.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub n: usize,
    pub ic: usize,
    pub oc: usize,
}

/// Views the leading `rows * cols` elements of a row-major buffer as a matrix.
fn matrix<T>(buf: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), &buf[..rows * cols]).expect("matrix shape")
}

/// A weight matrix as a linear layer reads it.
#[derive(Clone, Copy)]
pub enum Weight<'a, F> {
    /// Its values: the layer's GEMMs run in `F`.
    Values(&'a [F]),
    /// Its bf16 copy (`bits` the matrix's): every GEMM of the layer takes bf16 operands,
    /// summed in f32.
    Bf16(Bf16<'a>),
}

impl<'a, F> Weight<'a, F> {
    /// Matrix `r` of the flat parameters, or of their bf16 copy in a bf16 run.
    pub fn of(params: &'a [F], bf16: Option<Bf16<'a>>, r: Range<usize>) -> Self {
        match bf16 {
            Some(b) => Weight::Bf16(Bf16 {
                bits: &b.bits[r],
                ..b
            }),
            None => Weight::Values(&params[r]),
        }
    }
}

/// `bits = round(values)` to bf16, the weights' copy a bf16 run makes after each update.
pub fn round_to_bf16<F: Float>(kernel: Kernel, bits: &mut [u16], values: &[F]) {
    let values = F::f32_view(values.into()).expect("bf16 runs are f32 runs");
    let values = values.to_slice().expect("contiguous");
    let cost = pool::pass_cost(values.len());
    for_rows(values.len(), cost, [(bits, 1)], &|r, [out]| {
        bf16::round_slice(kernel, &values[r], out);
    });
}

/// Both products of a linear layer's forward pass: `out = x wᵀ + beta out`.
fn linear<F: Float>(out: &mut [F], x: &[F], w: Weight<'_, F>, l: Linear, beta: F) {
    let x = matrix(x, l.n, l.ic);
    match w {
        Weight::Values(w) => gemm(x, matrix(w, l.oc, l.ic).t(), beta, out),
        Weight::Bf16(g) => {
            let w = Operand::Bf16(matrix(g.bits, l.oc, l.ic).reversed_axes());
            gemm_bf16(&g, f32_operand(x), w, beta, out)
        }
    }
}

/// A linear layer as one GEMM: `out = x wᵀ`. `x: [N, IC]`, `w: [OC, IC]` -> `out: [N, OC]`.
pub fn matmul_forward<F: Float>(out: &mut [F], x: &[F], w: Weight<'_, F>, l: Linear) {
    linear(out, x, w, l, F::zero());
}

/// [`matmul_forward`] added onto `out`, which holds the residual stream: `out += x wᵀ`.
pub fn matmul_forward_residual<F: Float>(out: &mut [F], x: &[F], w: Weight<'_, F>, l: Linear) {
    linear(out, x, w, l, F::one());
}

/// Backward of [`matmul_forward`]: with `out[n][o] = Σ_i x[n][i] w[o][i]`,
/// `dx = dout w` (`[N, OC] [OC, IC]`) and `dw = doutᵀ x` (`[OC, N] [N, IC]`). Both are
/// overwritten: each weight matrix feeds exactly one product per step.
pub fn matmul_backward<F: Float>(
    dx: &mut [F],
    dw: &mut [F],
    dout: &[F],
    x: &[F],
    w: Weight<'_, F>,
    l: Linear,
) {
    let (dout, x) = (matrix(dout, l.n, l.oc), matrix(x, l.n, l.ic));
    match w {
        Weight::Values(w) => {
            gemm(dout, matrix(w, l.oc, l.ic), F::zero(), dx);
            gemm(dout.t(), x, F::zero(), dw);
        }
        Weight::Bf16(g) => {
            let w = Operand::Bf16(matrix(g.bits, l.oc, l.ic));
            gemm_bf16(&g, f32_operand(dout), w, F::zero(), dx);
            gemm_bf16(&g, f32_operand(dout.t()), f32_operand(x), F::zero(), dw);
        }
    }
}

/// The MLP non-linearity, in place: `x: [N, 4C]` -> `x = act(x)`, and `dact = act'(x)`, its
/// local derivative, kept so the backward pass is one multiply.
pub fn activation_forward<F: Float>(x: &mut [F], dact: &mut [F], act: Activation) {
    let len = x.len();
    for_rows(
        len,
        pool::pass_cost(2 * len),
        [(x, 1), (dact, 1)],
        &|_, [x, dact]| {
            let pairs = x.iter_mut().zip(dact);
            match act {
                // Exact in F as in f64 (a product of two F is exact in f64), so no conversions.
                Activation::Relu => pairs.for_each(|(v, g)| {
                    (*v, *g) = if *v > F::zero() {
                        (*v, F::one())
                    } else {
                        (F::zero(), F::zero())
                    }
                }),
                Activation::Relu2 => pairs.for_each(|(v, g)| {
                    (*v, *g) = if *v > F::zero() {
                        (*v * *v, *v + *v)
                    } else {
                        (F::zero(), F::zero())
                    }
                }),
                // f32 runs take f32's own gelu: f64's `tanh` costs as much as the MLP's GEMMs.
                Activation::Gelu if F::DTYPE == Dtype::F32 => {
                    pairs.for_each(|(v, g)| (*v, *g) = gelu_via_exp(*v))
                }
                Activation::Gelu => pairs.for_each(|(v, g)| {
                    let (y, dy) = act.forward_and_grad(v.as_f64());
                    (*v, *g) = (F::of(y), F::of(dy));
                }),
            }
        },
    );
}

/// GPT-2's tanh gelu and its derivative in `F` (the formula of
/// [`Activation::forward_and_grad`]), with `tanh u = 1 - 2 / (exp(2u) + 1)`: one
/// [`Float::exp_simd`], much cheaper than `tanh`, and exact to a few ulps in f32, which takes
/// it (it saturates to ±1 cleanly). Inlined into the activation's loop, which the compiler
/// then vectorises: 1.0 ns per element in f32, against 8.5 as a call per element.
#[inline]
fn gelu_via_exp<F: Float>(x: F) -> (F, F) {
    let (c, a) = (F::of(GELU_C), F::of(GELU_A));
    let (one, two, half) = (F::one(), F::of(2.0), F::of(0.5));
    let u = c * (x + a * x * x * x);
    let t = one - two / ((two * u).exp_simd() + one);
    let du = c * (one + F::of(3.0) * a * x * x);
    (
        half * x * (one + t),
        half * (one + t) + half * x * (one - t * t) * du,
    )
}

/// Backward of [`activation_forward`], in place: `d = d * act'(x)` (chain rule, elementwise).
pub fn activation_backward<F: Float>(d: &mut [F], dact: &[F]) {
    let cost = pool::pass_cost(2 * dact.len());
    for_rows(dact.len(), cost, [(d, 1)], &|r, [d]| {
        d.iter_mut().zip(&dact[r]).for_each(|(d, &g)| *d *= g);
    });
}

/// `exp(z - max z) / Σ exp(z - max z)` in place, subnormals flushed to 0 (see
/// [`Float::flush_subnormal`]); returns `max z` and the sum. Each pass is a loop the compiler
/// turns into SIMD lanes (the max and the sum in eight partial results, as [`dot`]): the
/// attention softmax over `T = 256` took a third of attention's forward time as scalar
/// loops with a call to `exp` per element.
#[inline]
pub fn softmax_in_place<F: Float>(z: &mut [F]) -> (F, F) {
    let max = fold_lanes(z, F::neg_infinity(), F::max, F::max);
    z.iter_mut()
        .for_each(|v| *v = (*v - max).exp_simd().flush_subnormal());
    let total = fold_lanes(z, F::zero(), |s, v| s + v, |s, v| s + v);
    let inv_total = total.recip();
    z.iter_mut()
        .for_each(|v| *v = (*v * inv_total).flush_subnormal());
    (max, total)
}

/// Softmax and cross-entropy, in place: `logits: [N, V]` become `probs: [N, V]`, and
/// `losses: [N]` = `-log probs[target]`, computed as `log Σ exp(z - max z) - (z[target] -
/// max z)` so that it stays finite when the target's probability underflows (early f32
/// training reaches that).
pub fn softmax_crossentropy_forward<F: Float>(
    logits: &mut [F],
    losses: &mut [F],
    targets: &[usize],
    v: usize,
) {
    let (rows, cost) = (targets.len(), pool::pass_cost(targets.len() * v));
    for_rows(
        rows,
        cost,
        [(logits, v), (losses, 1)],
        &|r, [logits, losses]| {
            for ((row, loss), &target) in logits.chunks_exact_mut(v).zip(losses).zip(&targets[r]) {
                let target_logit = row[target];
                let (max, total) = softmax_in_place(row);
                *loss = total.ln() - (target_logit - max);
            }
        },
    );
}

/// Fused backward of the mean cross-entropy over `n_targets` rows, in place on `probs`:
/// with `loss = -(1/N) Σ_rows log p[target]` and `p = softmax(z)`,
/// `dloss/dz_k = (p_k - [k = target]) / N`, so `probs` become `dlogits: [N, V]`.
pub fn softmax_crossentropy_backward<F: Float>(
    probs: &mut [F],
    targets: &[usize],
    v: usize,
    n_targets: usize,
) {
    let inv_n = F::of(1.0 / n_targets as f64);
    let (rows, cost) = (targets.len(), pool::pass_cost(targets.len() * v));
    for_rows(rows, cost, [(probs, v)], &|r, [probs]| {
        for (row, &target) in probs.chunks_exact_mut(v).zip(&targets[r]) {
            row[target] -= F::one();
            row.iter_mut()
                .for_each(|p| *p = (*p * inv_n).flush_subnormal());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_flushes_probabilities_below_the_normal_range() {
        // exp(-100) = 3.7e-44: subnormal in f32, normal in f64.
        let mut z32 = [0.0f32, 100.0];
        softmax_in_place(&mut z32);
        assert_eq!(z32, [0.0, 1.0]);
        let mut z64 = [0.0f64, 100.0];
        softmax_in_place(&mut z64);
        assert_eq!(z64[0], (-100.0f64).exp());
    }

    #[test]
    fn f32_gelu_matches_the_f64_formula() {
        // Within 2e-6 of the larger of the value and 1 (tanh's scale): f32 resolves no more
        // where `1 - t²` cancels in the tails (gelu'(-5.07) is 0 in f32, -1e-6 in f64).
        let close =
            |got: f32, want: f64| (f64::from(got) - want).abs() <= 2e-6 * want.abs().max(1.0);
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let (y, dy) = gelu_via_exp(x);
            let (want_y, want_dy) = Activation::Gelu.forward_and_grad(f64::from(x));
            assert!(close(y, want_y), "gelu({x}) = {y}, want {want_y}");
            assert!(close(dy, want_dy), "gelu'({x}) = {dy}, want {want_dy}");
        }
    }

    #[test]
    fn cross_entropy_stays_finite_when_the_target_probability_underflows() {
        // exp(-200) is 0 in f32: -log(probs[target]) would be infinite.
        let mut logits = [0.0f32, 200.0];
        let mut loss = [0.0f32];
        softmax_crossentropy_forward(&mut logits, &mut loss, &[0], 2);
        assert_eq!(loss[0], 200.0);
        softmax_crossentropy_backward(&mut logits, &[0], 2, 1);
        assert_eq!(logits, [-1.0, 1.0]);
    }
}
