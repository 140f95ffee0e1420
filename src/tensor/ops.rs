//! The tensor engine's layers, each forward pass beside its backward pass (in the style of
//! llm.c's `train_gpt2.c`). Activations are row-major `[rows, width]` slices: row `r` is
//! one position of one document, so `N` is the number of real positions in the batch.
//! Backward passes take `d<name>` for the gradient of the loss with respect to `<name>`.
//!
//! Each function's doc comment gives the shapes and the derivation of its backward pass.
//! Residual adds have no function of their own: the forward pass accumulates a projection
//! onto the residual (`accumulate` in [`matmul_forward`]), and since `d(a + b)/da = 1` the
//! backward pass adds each block's input gradient onto the residual stream's in place.

use crate::config::Activation;
use crate::dtype::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

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
/// (a scatter-add: a token seen twice collects both rows).
pub fn embedding_backward<F: Float>(
    dwte: &mut [F],
    dwpe: &mut [F],
    dout: &[F],
    tokens: &[usize],
    positions: &[usize],
    c: usize,
) {
    for ((d, &tok), &pos) in dout.chunks_exact(c).zip(tokens).zip(positions) {
        for (g, &x) in dwte[tok * c..][..c].iter_mut().zip(d) {
            *g += x;
        }
        for (g, &x) in dwpe[pos * c..][..c].iter_mut().zip(d) {
            *g += x;
        }
    }
}

/// RMS normalisation without gain: `out = x * s` with `s = (mean(x²) + 1e-5)^-½` per row.
/// `x: [N, C]` -> `out: [N, C]`, `rstd: [N]` (each row's `s`, kept for the backward pass).
pub fn rmsnorm_forward<F: Float>(out: &mut [F], rstd: &mut [F], x: &[F], c: usize) {
    let inv_c = F::of(1.0 / c as f64);
    let eps = F::of(1e-5);
    for ((o, s), xr) in out.chunks_exact_mut(c).zip(rstd).zip(x.chunks_exact(c)) {
        let ms = xr.iter().map(|&v| v * v).sum::<F>() * inv_c;
        *s = (ms + eps).sqrt().recip();
        for (o, &v) in o.iter_mut().zip(xr) {
            *o = v * *s;
        }
    }
}

/// Adds the gradient through [`rmsnorm_forward`] to `dx`. With `ds/dx_i = -s³ x_i / C`:
/// `dx_i = s dout_i + Σ_j dout_j x_j ds/dx_i = s dout_i - (s³/C) (dout · x) x_i`.
pub fn rmsnorm_backward<F: Float>(dx: &mut [F], dout: &[F], x: &[F], rstd: &[F], c: usize) {
    let inv_c = F::of(1.0 / c as f64);
    for (((dxr, dor), xr), &s) in dx
        .chunks_exact_mut(c)
        .zip(dout.chunks_exact(c))
        .zip(x.chunks_exact(c))
        .zip(rstd)
    {
        let dot = dor.iter().zip(xr).map(|(&d, &v)| d * v).sum::<F>();
        let k = s * s * s * inv_c * dot;
        for ((g, &d), &v) in dxr.iter_mut().zip(dor).zip(xr) {
            *g += s * d - k * v;
        }
    }
}

/// Views `len` leading elements of a row-major buffer as a `[rows, cols]` matrix.
fn matrix<F: Float>(buf: &[F], rows: usize, cols: usize) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, cols), &buf[..rows * cols]).expect("matrix shape")
}

fn matrix_mut<F: Float>(buf: &mut [F], rows: usize, cols: usize) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape((rows, cols), &mut buf[..rows * cols]).expect("matrix shape")
}

/// A linear layer without bias as one GEMM: `out = x wᵀ`, or `out += x wᵀ` with
/// `accumulate` (which fuses a residual add when `out` already holds the residual).
/// `x: [N, IC]`, `w: [OC, IC]` -> `out: [N, OC]`.
pub fn matmul_forward<F: Float>(
    out: &mut [F],
    x: &[F],
    w: &[F],
    n: usize,
    ic: usize,
    oc: usize,
    accumulate: bool,
) {
    let beta = if accumulate { F::one() } else { F::zero() };
    general_mat_mul(
        F::one(),
        &matrix(x, n, ic),
        &matrix(w, oc, ic).t(),
        beta,
        &mut matrix_mut(out, n, oc),
    );
}

/// Backward of [`matmul_forward`]: with `out[n][o] = Σ_i x[n][i] w[o][i]`,
/// `dx[n][i] = Σ_o dout[n][o] w[o][i]`, i.e. `dx = dout w`, and
/// `dw[o][i] = Σ_n dout[n][o] x[n][i]`, i.e. `dw = doutᵀ x`. Both are overwritten: each
/// weight matrix feeds exactly one product per step, so nothing needs zeroing first.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward<F: Float>(
    dx: &mut [F],
    dw: &mut [F],
    dout: &[F],
    x: &[F],
    w: &[F],
    n: usize,
    ic: usize,
    oc: usize,
) {
    let dout = matrix(dout, n, oc);
    general_mat_mul(
        F::one(),
        &dout,
        &matrix(w, oc, ic),
        F::zero(),
        &mut matrix_mut(dx, n, ic),
    );
    general_mat_mul(
        F::one(),
        &dout.t(),
        &matrix(x, n, ic),
        F::zero(),
        &mut matrix_mut(dw, oc, ic),
    );
}

/// The shape of one document's attention: rows of `3C`-wide `q | k | v`, `n_head` heads of
/// `head_dim` each side by side, scores scaled by `scale = 1/√hd`, and `att` rows `t`
/// (= block size) long.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape<F> {
    pub n_head: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub scale: F,
}

impl<F: Float> AttentionShape<F> {
    fn c(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Elements of scratch space [`attention_backward`] needs.
    pub fn scratch_len(&self) -> usize {
        self.n_head * self.block_size + self.n_head + self.c()
    }
}

fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).fold(F::zero(), |acc, (&x, &y)| acc + x * y)
}

/// `y += a * x`.
fn axpy<F: Float>(y: &mut [F], a: F, x: &[F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `exp(z - max z) / Σ exp(z - max z)` in place; returns `max z` and the sum.
fn softmax_in_place<F: Float>(z: &mut [F]) -> (F, F) {
    let max = z.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
    let mut total = F::zero();
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    let inv_total = total.recip();
    z.iter_mut().for_each(|v| *v *= inv_total);
    (max, total)
}

/// Causal multi-head self-attention over one document, for its query positions
/// `first..n` (all of them in training; the newest one when decoding, the earlier rows being
/// the key/value cache).
/// `qkv: [n, 3C]` -> `out: [n, C]` (rows `first..n` written),
/// `att: [n, H, T]` (softmax weights `w[i][h][j]` for `j <= i`, kept for the backward pass).
/// Per head: `s_j = (q_i · k_j) scale`, `w = softmax(s)` over `j <= i`, `out_i = Σ_j w_j v_j`.
/// Each loop runs over whole rows, all heads at once, so short heads cost no extra passes.
pub fn attention_forward<F: Float>(
    out: &mut [F],
    att: &mut [F],
    qkv: &[F],
    first: usize,
    n: usize,
    shape: &AttentionShape<F>,
) {
    let (hd, t, scale, c) = (shape.head_dim, shape.block_size, shape.scale, shape.c());
    let rows = || qkv.chunks_exact(3 * c);
    for i in first..n {
        let q = &qkv[i * 3 * c..][..c];
        let w = &mut att[i * shape.n_head * t..][..shape.n_head * t];
        for (j, row) in rows().take(i + 1).enumerate() {
            let k = &row[c..2 * c];
            for ((qh, kh), wh) in q
                .chunks_exact(hd)
                .zip(k.chunks_exact(hd))
                .zip(w.chunks_exact_mut(t))
            {
                wh[j] = dot(qh, kh) * scale;
            }
        }
        for wh in w.chunks_exact_mut(t) {
            softmax_in_place(&mut wh[..=i]);
        }
        let o = &mut out[i * c..][..c];
        o.fill(F::zero());
        for (j, row) in rows().take(i + 1).enumerate() {
            let v = &row[2 * c..];
            for ((oh, vh), wh) in o
                .chunks_exact_mut(hd)
                .zip(v.chunks_exact(hd))
                .zip(w.chunks_exact(t))
            {
                axpy(oh, wh[j], vh);
            }
        }
    }
}

/// Backward of [`attention_forward`] over a whole document (`first = 0`), overwriting
/// `dqkv: [n, 3C]`; `scratch` holds [`AttentionShape::scratch_len`] elements. Per query `i`
/// and head: `out_i = Σ_j w_j v_j` gives `dv_j += w_j dout_i` and `dw_j = dout_i · v_j`;
/// softmax gives `ds_j = w_j (dw_j - Σ_k w_k dw_k)`; `s_j = (q_i · k_j) scale` gives
/// `dq_i += scale Σ_j ds_j k_j` and `dk_j += scale ds_j q_i`.
pub fn attention_backward<F: Float>(
    dqkv: &mut [F],
    dout: &[F],
    att: &[F],
    qkv: &[F],
    n: usize,
    shape: &AttentionShape<F>,
    scratch: &mut [F],
) {
    let (nh, hd, t, scale, c) = (
        shape.n_head,
        shape.head_dim,
        shape.block_size,
        shape.scale,
        shape.c(),
    );
    let (dw, rest) = scratch.split_at_mut(nh * t);
    let (weighted, rest) = rest.split_at_mut(nh);
    let dq = &mut rest[..c];
    dqkv[..n * 3 * c].fill(F::zero());
    for i in 0..n {
        let q = &qkv[i * 3 * c..][..c];
        let d_o = &dout[i * c..][..c];
        let w = &att[i * nh * t..][..nh * t];
        weighted.fill(F::zero());
        let rows = qkv
            .chunks_exact(3 * c)
            .zip(dqkv.chunks_exact_mut(3 * c))
            .take(i + 1);
        for (j, (row, drow)) in rows.enumerate() {
            let (v, dv) = (&row[2 * c..], &mut drow[2 * c..]);
            let heads = d_o
                .chunks_exact(hd)
                .zip(v.chunks_exact(hd))
                .zip(dv.chunks_exact_mut(hd));
            for (h, ((doh, vh), dvh)) in heads.enumerate() {
                let wj = w[h * t + j];
                let dwj = dot(doh, vh);
                dw[h * t + j] = dwj;
                weighted[h] += wj * dwj;
                axpy(dvh, wj, doh);
            }
        }
        // Only query i reaches dq_i, so it is summed aside and stored once.
        dq.fill(F::zero());
        let rows = qkv
            .chunks_exact(3 * c)
            .zip(dqkv.chunks_exact_mut(3 * c))
            .take(i + 1);
        for (j, (row, drow)) in rows.enumerate() {
            let (k, dk) = (&row[c..2 * c], &mut drow[c..2 * c]);
            for h in 0..nh {
                let ds = w[h * t + j] * (dw[h * t + j] - weighted[h]) * scale;
                let head = h * hd..(h + 1) * hd;
                axpy(&mut dq[head.clone()], ds, &k[head.clone()]);
                axpy(&mut dk[head.clone()], ds, &q[head]);
            }
        }
        dqkv[i * 3 * c..][..c].copy_from_slice(dq);
    }
}

/// The MLP non-linearity, in place: `x: [N, 4C]` -> `x = act(x)`, `grad = act'(x)` (the
/// local derivative, kept so the backward pass is one multiply).
pub fn activation_forward<F: Float>(x: &mut [F], grad: &mut [F], act: Activation) {
    for (v, g) in x.iter_mut().zip(grad) {
        let (y, dy) = act.forward_and_grad(v.as_f64());
        *v = F::of(y);
        *g = F::of(dy);
    }
}

/// Backward of [`activation_forward`], in place: `d = d * act'(x)` (chain rule, elementwise).
pub fn activation_backward<F: Float>(d: &mut [F], grad: &[F]) {
    for (d, &g) in d.iter_mut().zip(grad) {
        *d *= g;
    }
}

/// Softmax and cross-entropy, in place: `logits: [N, V]` become `probs: [N, V]`
/// (`exp(z - max z) / Σ exp(z - max z)` per row), `losses: [N]` = `-log probs[target]`,
/// computed as `log Σ exp(z - max z) - (z[target] - max z)` so that it stays finite when
/// the target's probability underflows (early f32 training reaches that).
pub fn softmax_crossentropy_forward<F: Float>(
    logits: &mut [F],
    losses: &mut [F],
    targets: &[usize],
    v: usize,
) {
    for ((row, loss), &target) in logits.chunks_exact_mut(v).zip(losses).zip(targets) {
        let target_logit = row[target];
        let (max, total) = softmax_in_place(row);
        *loss = total.ln() - (target_logit - max);
    }
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
    for (row, &target) in probs.chunks_exact_mut(v).zip(targets) {
        row[target] -= F::one();
        row.iter_mut().for_each(|p| *p *= inv_n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
