//! Causal multi-head self-attention over packed documents, forward beside backward.
//!
//! Layouts: `qkv: [N, 3C]` rows of `q | k | v`, each `n_head` heads of `head_dim` side by
//! side; `out: [N, C]`; `att: [N, H, T]`, the softmax weights: for a document's row `i` and
//! head `h`, `att[i][h][j]` weighs the document's row `j` (`j <= i`); entries `i < j < n`
//! (`n` the document's length) are 0, the rest of the `T` are not written.
//!
//! Per document and head, with `Q, K, V: [n, hd]` (strided views into `qkv`) and
//! `scale = 1/√hd`:
//!   forward   `S = scale Q Kᵀ` (lower triangle), `P = softmax_rows(S)`, `Y = P V`;
//!   backward  `dP = dY Vᵀ`, `dV = Pᵀ dY`, `dS = P ∘ (dP - rowsum(P ∘ dP))` (softmax's
//!             Jacobian `diag(p) - p pᵀ` per row), `dQ = scale dS K`, `dK = scale dSᵀ Q`.
//! Two paths compute the same thing:
//! - GEMMs: each of those products is a GEMM on strided views, one task per (document,
//!   head) on the pool. The causal mask halves the work: rows go in blocks of
//!   [`CAUSAL_BLOCK`], and a block of queries multiplies only the keys up to its last row.
//! - loops: for short documents or heads (a GEMM call would cost more than its work), dot and
//!   axpy loops over whole rows, all heads at once, one task per document.
//!
//! In a bf16 run the GEMM path's products take bf16 operands (`Q`, `K`, `V`, `P`, `dY`, `dS`
//! rounded), summed in f32, as the linear layers' do; the softmax and the loop path stay f32.

use super::gemm::{Bf16, Products};
use super::ops::{dot, softmax_in_place};
use crate::numerics::dtype::Float;
use crate::numerics::pool::{self, Shards};
use ndarray::{s, ArrayView2, ArrayViewMut2, ShapeBuilder};
use std::ops::Range;

/// Query rows per block of the causal GEMMs: large enough for efficient GEMMs, small enough
/// that the skipped upper triangle is most of the masked half.
const CAUSAL_BLOCK: usize = 64;

/// The shape of attention: `n_head` heads of `head_dim`, scores scaled by `scale = 1/√hd`,
/// `att` rows `block_size` (`T`) long.
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

    /// Elements of scratch space one thread of [`attention_backward`] needs.
    pub fn scratch_len(&self) -> usize {
        let t = self.block_size;
        (t * t).max(self.n_head * t + self.n_head + self.c())
    }

    /// Whether a document of `n` positions takes the GEMM path: below these sizes the
    /// loops are faster (measured with `benches/step.rs`).
    fn gemm_path(&self, n: usize) -> bool {
        n >= 32 && self.head_dim >= 8
    }

    /// Rough FLOPs of one document's attention forward pass (`2 n² hd` per head for the two
    /// products, causal half).
    fn flops(&self, n: usize) -> f64 {
        (2 * n * n * self.c()) as f64
    }
}

/// A strided `[rows, cols]` view of `buf` from `first`, rows `stride` apart.
fn strided<F: Float>(
    buf: &[F],
    first: usize,
    (rows, cols): (usize, usize),
    stride: usize,
) -> ArrayView2<'_, F> {
    let len = if rows == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    };
    ArrayView2::from_shape((rows, cols).strides((stride, 1)), &buf[first..first + len])
        .expect("strided view")
}

/// One (document, head) of the GEMM path: where its rows are, and `q, k, v: [n, hd]`.
struct Head<'a, F> {
    n: usize,
    /// Offsets of the head's first row: in `qkv` (its `q`), in `out` and in `att`.
    qkv_at: usize,
    out_at: usize,
    att_at: usize,
    q: ArrayView2<'a, F>,
    k: ArrayView2<'a, F>,
    v: ArrayView2<'a, F>,
}

impl<'a, F: Float> Head<'a, F> {
    fn new(qkv: &'a [F], doc: &Range<usize>, head: usize, shape: &AttentionShape<F>) -> Self {
        let (hd, c, n) = (shape.head_dim, shape.c(), doc.len());
        let qkv_at = doc.start * 3 * c + head * hd;
        let view = |offset| strided(qkv, qkv_at + offset, (n, hd), 3 * c);
        Head {
            n,
            qkv_at,
            out_at: doc.start * c + head * hd,
            att_at: doc.start * shape.n_head * shape.block_size + head * shape.block_size,
            q: view(0),
            k: view(c),
            v: view(2 * c),
        }
    }

    /// The causal row blocks `0..n`.
    fn blocks(&self) -> impl Iterator<Item = Range<usize>> {
        let n = self.n;
        (0..n)
            .step_by(CAUSAL_BLOCK)
            .map(move |r0| r0..(r0 + CAUSAL_BLOCK).min(n))
    }
}

/// Causal attention forward for the query rows `r` of the packed batch, whose documents are
/// `docs` (each row's keys are its document's rows up to it): rows of documents before
/// `r.start` are the key/value cache when decoding. `qkv: [N, 3C]` -> `out: [N, C]`,
/// `att: [N, H, T]` (rows `r` written). `bf16` (a bf16 run) makes the GEMMs bf16 GEMMs.
pub fn attention_forward<F: Float>(
    out: &mut [F],
    att: &mut [F],
    qkv: &[F],
    (docs, r): (&[Range<usize>], &Range<usize>),
    shape: &AttentionShape<F>,
    bf16: Option<Bf16<'_>>,
) {
    let (h, t, c) = (shape.n_head, shape.block_size, shape.c());
    let (out, att) = (Shards::new(out), Shards::new(att));
    let docs = &docs[docs.partition_point(|d| d.end <= r.start)..];
    let flops = docs.iter().map(|d| shape.flops(d.len())).sum();
    // One task per (document, head); a document on the loop path is its head 0's task.
    pool::for_each(docs.len() * h, flops, &|task, worker| {
        let (doc, head) = (&docs[task / h], task % h);
        if shape.gemm_path(doc.len()) && doc.start >= r.start {
            let x = Head::new(qkv, doc, head, shape);
            let how = Products {
                bf16: bf16.as_ref(),
                worker,
            };
            // SAFETY: this task alone writes this document's rows of this head.
            unsafe { forward_gemm(&out, &att, &x, shape, how) };
        } else if head == 0 {
            let first = r.start.max(doc.start) - doc.start;
            // SAFETY: this task alone writes this document's rows.
            let (o, a) = unsafe {
                (
                    out.slice(doc.start * c, doc.len() * c),
                    att.slice(doc.start * h * t, doc.len() * h * t),
                )
            };
            forward_loops(o, a, &qkv[doc.start * 3 * c..doc.end * 3 * c], first, shape);
        }
    });
}

/// One (document, head) of [`attention_forward`] as blocked causal GEMMs.
///
/// # Safety
/// No other thread may touch this document's rows of this head in `out` or `att`.
unsafe fn forward_gemm<F: Float>(
    out: &Shards<'_, F>,
    att: &Shards<'_, F>,
    x: &Head<'_, F>,
    shape: &AttentionShape<F>,
    how: Products<'_>,
) {
    let (att_stride, c) = (shape.n_head * shape.block_size, shape.c());
    for rb in x.blocks() {
        // SAFETY: this head's rows of this document are the caller's (see above).
        let mut p =
            unsafe { att.matrix(x.att_at + rb.start * att_stride, rb.len(), x.n, att_stride) };
        // S[rb, ..end] = scale Q[rb] K[..end]ᵀ; keys past the block's end are masked for all its rows.
        let keys = s![..rb.end, ..];
        let mut scores = p.slice_mut(s![.., ..rb.end]);
        how.mm(
            shape.scale,
            &x.q.slice(s![rb.clone(), ..]),
            &x.k.slice(keys).t(),
            &mut scores,
        );
        for (i, mut row) in p.rows_mut().into_iter().enumerate() {
            let row = row.as_slice_mut().expect("contiguous att row");
            let (seen, masked) = row.split_at_mut(rb.start + i + 1);
            softmax_in_place(seen);
            masked.fill(F::zero());
        }
        // Y[rb] = P[rb, ..end] V[..end]
        // SAFETY: as above.
        let mut y = unsafe { out.matrix(x.out_at + rb.start * c, rb.len(), shape.head_dim, c) };
        how.mm(
            F::one(),
            &p.slice(s![.., ..rb.end]),
            &x.v.slice(keys),
            &mut y,
        );
    }
}

/// Attention forward over one document's rows `qkv: [n, 3C]` for its query positions
/// `first..n` (all of them in training; the newest one when decoding), as loops over whole
/// rows, all heads at once: `s_j = (q_i · k_j) scale`, `w = softmax(s)` over `j <= i`,
/// `out_i = Σ_j w_j v_j`.
fn forward_loops<F: Float>(
    out: &mut [F],
    att: &mut [F],
    qkv: &[F],
    first: usize,
    shape: &AttentionShape<F>,
) {
    let (hd, t, scale, c) = (shape.head_dim, shape.block_size, shape.scale, shape.c());
    let n = qkv.len() / (3 * c);
    let rows = || qkv.chunks_exact(3 * c);
    for i in first..n {
        let q = &qkv[i * 3 * c..][..c];
        let w = &mut att[i * shape.n_head * t..][..shape.n_head * t];
        for (j, row) in rows().take(i + 1).enumerate() {
            let k = &row[c..2 * c];
            let heads = q.chunks_exact(hd).zip(k.chunks_exact(hd));
            for ((qh, kh), wh) in heads.zip(w.chunks_exact_mut(t)) {
                wh[j] = dot(qh, kh) * scale;
            }
        }
        for wh in w.chunks_exact_mut(t) {
            softmax_in_place(&mut wh[..=i]);
            wh[i + 1..n].fill(F::zero());
        }
        let o = &mut out[i * c..][..c];
        o.fill(F::zero());
        for (j, row) in rows().take(i + 1).enumerate() {
            let v = &row[2 * c..];
            let heads = o.chunks_exact_mut(hd).zip(v.chunks_exact(hd));
            for ((oh, vh), wh) in heads.zip(w.chunks_exact(t)) {
                axpy(oh, wh[j], vh);
            }
        }
    }
}

/// The space [`attention_backward`] works in: `scratch` holds
/// [`AttentionShape::scratch_len`] elements per thread of the pool; `bf16` (a bf16 run)
/// makes the GEMMs bf16 GEMMs.
pub struct Workspace<'a, F> {
    pub scratch: &'a mut [F],
    pub bf16: Option<Bf16<'a>>,
}

/// Backward of [`attention_forward`] over whole documents, overwriting `dqkv: [N, 3C]`
/// (each document's rows).
pub fn attention_backward<F: Float>(
    dqkv: &mut [F],
    dout: &[F],
    att: &[F],
    qkv: &[F],
    docs: &[Range<usize>],
    shape: &AttentionShape<F>,
    Workspace { scratch, bf16 }: Workspace<'_, F>,
) {
    let (h, t, c) = (shape.n_head, shape.block_size, shape.c());
    let per_thread = shape.scratch_len();
    assert!(
        scratch.len() >= per_thread * pool::threads(),
        "attention scratch too small"
    );
    let (dqkv, scratch) = (Shards::new(dqkv), Shards::new(scratch));
    let flops = 2.0 * docs.iter().map(|d| shape.flops(d.len())).sum::<f64>();
    // One task per (document, head); a document on the loop path is its head 0's task.
    pool::for_each(docs.len() * h, flops, &|task, worker| {
        let (doc, head) = (&docs[task / h], task % h);
        // SAFETY: one task at a time per worker.
        let scratch = unsafe { scratch.slice(worker * per_thread, per_thread) };
        if shape.gemm_path(doc.len()) {
            let x = Head::new(qkv, doc, head, shape);
            let how = Products {
                bf16: bf16.as_ref(),
                worker,
            };
            // SAFETY: this task alone writes this document's rows of this head.
            unsafe { backward_gemm(&dqkv, (dout, att), &x, shape, scratch, how) };
        } else if head == 0 {
            // SAFETY: this task alone writes this document's rows.
            let d = unsafe { dqkv.slice(doc.start * 3 * c, doc.len() * 3 * c) };
            let (o, a) = (
                &dout[doc.start * c..doc.end * c],
                &att[doc.start * h * t..doc.end * h * t],
            );
            let x = &qkv[doc.start * 3 * c..doc.end * 3 * c];
            backward_loops(d, o, a, x, shape, scratch);
        }
    });
}

/// One (document, head) of [`attention_backward`] as blocked causal GEMMs: first by
/// blocks of queries (`dP`, then `dS` in place in the `[n, n]` scratch `ds`, and `dQ`), then
/// by blocks of keys (`dV`, `dK`: a key is attended by the queries from its row on).
///
/// # Safety
/// No other thread may touch this document's rows of this head in `dqkv`.
unsafe fn backward_gemm<F: Float>(
    dqkv: &Shards<'_, F>,
    (dout, att): (&[F], &[F]),
    x: &Head<'_, F>,
    shape: &AttentionShape<F>,
    ds: &mut [F],
    how: Products<'_>,
) {
    let (hd, c, n) = (shape.head_dim, shape.c(), x.n);
    let dy = strided(dout, x.out_at, (n, hd), c);
    let p = strided(att, x.att_at, (n, n), shape.n_head * shape.block_size);
    let mut ds = ArrayViewMut2::from_shape((n, n), &mut ds[..n * n]).expect("scratch view");
    // SAFETY (each `dqkv.matrix`): this head's rows of this document are the caller's.
    let grad = |offset: usize, rows: &Range<usize>| unsafe {
        dqkv.matrix(
            x.qkv_at + offset + rows.start * 3 * c,
            rows.len(),
            hd,
            3 * c,
        )
    };
    for rb in x.blocks() {
        let (queries, keys) = (s![rb.clone(), ..], s![..rb.end, ..]);
        // dP[rb, ..end] = dY[rb] V[..end]ᵀ, then dS = scale P ∘ (dP - rowsum(P ∘ dP)).
        let mut dsb = ds.slice_mut(s![rb.clone(), ..rb.end]);
        how.mm(F::one(), &dy.slice(queries), &x.v.slice(keys).t(), &mut dsb);
        for (i, mut row) in dsb.rows_mut().into_iter().enumerate() {
            let row = row.as_slice_mut().expect("contiguous scratch row");
            let (seen, masked) = row.split_at_mut(rb.start + i + 1);
            let pr = p.row(rb.start + i);
            let pr = &pr.as_slice().expect("contiguous att row")[..seen.len()];
            let weighted = dot(pr, seen);
            for (d, &pj) in seen.iter_mut().zip(pr) {
                *d = shape.scale * pj * (*d - weighted);
            }
            masked.fill(F::zero());
        }
        // dQ[rb] = dS[rb, ..end] K[..end]
        how.mm(F::one(), &dsb.view(), &x.k.slice(keys), &mut grad(0, &rb));
    }
    for kb in x.blocks() {
        // dV[kb] = P[kb.start.., kb]ᵀ dY[kb.start..], dK[kb] = dS[kb.start.., kb]ᵀ Q[kb.start..].
        let (below, later) = (s![kb.start.., kb.clone()], s![kb.start.., ..]);
        how.mm(
            F::one(),
            &p.slice(below).t(),
            &dy.slice(later),
            &mut grad(2 * c, &kb),
        );
        how.mm(
            F::one(),
            &ds.slice(below).t(),
            &x.q.slice(later),
            &mut grad(c, &kb),
        );
    }
}

/// One document of [`attention_backward`] as loops, `dqkv: [n, 3C]` overwritten. Per query
/// `i` and head: `out_i = Σ_j w_j v_j` gives `dv_j += w_j dout_i` and `dw_j = dout_i · v_j`;
/// softmax gives `ds_j = w_j (dw_j - Σ_k w_k dw_k)`; `s_j = (q_i · k_j) scale` gives
/// `dq_i += scale Σ_j ds_j k_j` and `dk_j += scale ds_j q_i`.
fn backward_loops<F: Float>(
    dqkv: &mut [F],
    dout: &[F],
    att: &[F],
    qkv: &[F],
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
    let n = qkv.len() / (3 * c);
    let (dw, rest) = scratch.split_at_mut(nh * t);
    let (weighted, rest) = rest.split_at_mut(nh);
    let dq = &mut rest[..c];
    dqkv.fill(F::zero());
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

/// `y += a * x`.
fn axpy<F: Float>(y: &mut [F], a: F, x: &[F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
