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

use super::buffers::PerWorker;
use super::gemm::{Bf16, Products};
use super::ops::{dot, softmax_in_place};
use super::rows::Rows;
use crate::model::inventory::{n, Count};
use crate::numerics::dtype::Float;
use crate::numerics::pool;
use ndarray::{s, ArrayView2, ArrayViewMut2, ArrayViewMut3, ArrayViewMut4, Axis, ShapeBuilder};
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
        let len = scratch_len(self.n_head, self.c(), self.block_size).0;
        len.and_then(|l| usize::try_from(l).ok())
            .expect("a valid config's scratch fits")
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

/// Elements of scratch space one thread of [`attention_backward`] needs for `n_head` heads,
/// `c` channels and rows of `t` keys: the GEMM path's `[T, T]` `dS`, or the loop path's
/// `dw` (`H T`), one sum per head and `dq` (`C`).
pub fn scratch_len(n_head: usize, c: usize, t: usize) -> Count {
    let (h, c, t) = (n(n_head), n(c), n(t));
    (t * t).max(h * t + h + c)
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

/// One (document, head) of the GEMM path: `q, k, v: [n, hd]`, views into the document's
/// rows of `qkv`.
struct Head<'a, F> {
    n: usize,
    head: usize,
    q: ArrayView2<'a, F>,
    k: ArrayView2<'a, F>,
    v: ArrayView2<'a, F>,
}

impl<'a, F: Float> Head<'a, F> {
    fn new(qkv: &'a [F], head: usize, shape: &AttentionShape<F>) -> Self {
        let (hd, c) = (shape.head_dim, shape.c());
        let n = qkv.len() / (3 * c);
        let view = |offset| strided(qkv, offset + head * hd, (n, hd), 3 * c);
        Head {
            n,
            head,
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

/// What one task of attention writes: a document's rows of the outputs (`D`) on the loop
/// path, all heads; or on the GEMM path, one head's views of them (`H`).
enum Task<'a, D, H> {
    Loops(&'a Range<usize>, D),
    Gemm(&'a Range<usize>, usize, H),
}

/// The tasks of `docs`, given each document's rows of the outputs (`rows`): one per head
/// of a document on the GEMM path (`gemm`), the head views `heads` cuts its rows into;
/// one per document on the loop path. Returns how many, and the tasks.
fn tasks<'a, D: 'a, H: 'a, Heads: Iterator<Item = H> + 'a>(
    docs: &'a [Range<usize>],
    rows: impl Iterator<Item = D> + 'a,
    (n_head, gemm): (usize, impl Fn(&Range<usize>) -> bool + 'a),
    heads: impl Fn(D, usize) -> Heads + 'a,
) -> (usize, impl Iterator<Item = Task<'a, D, H>> + 'a) {
    let count = docs.iter().map(|d| if gemm(d) { n_head } else { 1 }).sum();
    let tasks = docs.iter().zip(rows).flat_map(move |(doc, d)| {
        let (whole, by_head) = if gemm(doc) {
            (None, Some(heads(d, doc.len()).enumerate()))
        } else {
            (Some(Task::Loops(doc, d)), None)
        };
        let by_head = by_head.into_iter().flatten();
        whole
            .into_iter()
            .chain(by_head.map(move |(h, v)| Task::Gemm(doc, h, v)))
    });
    (count, tasks)
}

/// Head by head, disjoint views `[n, W]` of a document's rows `[n, H * W]`.
fn heads<F>(rows: &mut [F], n: usize, n_head: usize) -> impl Iterator<Item = ArrayViewMut2<'_, F>> {
    let shape = (n, n_head, rows.len() / (n * n_head));
    let rows = ArrayViewMut3::from_shape(shape, rows).expect("head views");
    rows.into_axis_iter_mut(Axis(1))
}

/// Causal attention forward for the query rows `r` of the packed batch, whose documents are
/// `docs` (each row's keys are its document's rows up to it): rows of documents before
/// `r.start` are the key/value cache when decoding. `qkv: [N, 3C]` -> `out: [N, C]`,
/// `att: [N, H, T]` (rows `r` written). `bf16` (a bf16 run) makes the GEMMs bf16 GEMMs.
pub fn attention_forward<F: Float>(
    out: &mut Rows<F>,
    att: &mut Rows<F>,
    qkv: &Rows<F>,
    (docs, r): (&[Range<usize>], &Range<usize>),
    shape: &AttentionShape<F>,
    bf16: Option<Bf16<'_>>,
) {
    let h = shape.n_head;
    let docs = &docs[docs.partition_point(|d| d.end <= r.start)..];
    let flops = docs.iter().map(|d| shape.flops(d.len())).sum();
    let gemm = |d: &Range<usize>| shape.gemm_path(d.len()) && d.start >= r.start;
    let rows = out.split_mut(docs).zip(att.split_mut(docs));
    let (count, tasks) = tasks(docs, rows, (h, gemm), |(o, a), n| {
        heads(o, n, h).zip(heads(a, n, h))
    });
    pool::for_each_part(count, flops, tasks, &|task, worker| match task {
        Task::Gemm(doc, head, (out, att)) => {
            let x = Head::new(qkv.rows(doc), head, shape);
            let how = Products {
                bf16: bf16.as_ref(),
                worker,
            };
            forward_gemm(out, att, &x, shape, how);
        }
        Task::Loops(doc, (out, att)) => {
            let first = r.start.max(doc.start) - doc.start;
            forward_loops(out, att, qkv.rows(doc), first, shape);
        }
    });
}

/// One (document, head) of [`attention_forward`] as blocked causal GEMMs, into the head's
/// `out: [n, hd]` and `att: [n, T]`.
fn forward_gemm<F: Float>(
    mut out: ArrayViewMut2<'_, F>,
    mut att: ArrayViewMut2<'_, F>,
    x: &Head<'_, F>,
    shape: &AttentionShape<F>,
    how: Products<'_>,
) {
    for rb in x.blocks() {
        let mut p = att.slice_mut(s![rb.clone(), ..x.n]);
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
        let mut y = out.slice_mut(s![rb.clone(), ..]);
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

/// The space [`attention_backward`] works in: `scratch` holds each thread's
/// [`AttentionShape::scratch_len`] elements; `bf16` (a bf16 run) makes the GEMMs bf16 GEMMs.
pub struct Workspace<'a, F> {
    pub scratch: &'a PerWorker<Vec<F>>,
    pub bf16: Option<Bf16<'a>>,
}

/// Backward of [`attention_forward`] over whole documents, overwriting `dqkv: [N, 3C]`
/// (each document's rows).
pub fn attention_backward<F: Float>(
    dqkv: &mut Rows<F>,
    dout: &Rows<F>,
    att: &Rows<F>,
    qkv: &Rows<F>,
    docs: &[Range<usize>],
    shape: &AttentionShape<F>,
    Workspace { scratch, bf16 }: Workspace<'_, F>,
) {
    let (h, hd) = (shape.n_head, shape.head_dim);
    let flops = 2.0 * docs.iter().map(|d| shape.flops(d.len())).sum::<f64>();
    let gemm = |d: &Range<usize>| shape.gemm_path(d.len());
    // A head's task writes its `dq | dk | dv` columns of each row, `[n, 3, hd]`.
    let (count, tasks) = tasks(docs, dqkv.split_mut(docs), (h, gemm), |rows, n| {
        let rows = ArrayViewMut4::from_shape((n, 3, h, hd), rows).expect("head views");
        rows.into_axis_iter_mut(Axis(2))
    });
    pool::for_each_part(count, flops, tasks, &|task, worker| {
        let scratch = &mut scratch.get(worker)[..shape.scratch_len()];
        match task {
            Task::Gemm(doc, head, dqkv) => {
                let x = Head::new(qkv.rows(doc), head, shape);
                let how = Products {
                    bf16: bf16.as_ref(),
                    worker,
                };
                let read = (dout.rows(doc), att.rows(doc));
                backward_gemm(dqkv, read, &x, shape, scratch, how);
            }
            Task::Loops(doc, dqkv) => {
                let read = (dout.rows(doc), att.rows(doc), qkv.rows(doc));
                backward_loops(dqkv, read, shape, scratch);
            }
        }
    });
}

/// One (document, head) of [`attention_backward`] as blocked causal GEMMs into the head's
/// `dqkv: [n, 3, hd]`: first by blocks of queries (`dP`, then `dS` in place in the `[n, n]`
/// scratch `ds`, and `dQ`), then by blocks of keys (`dV`, `dK`: a key is attended by the
/// queries from its row on). `dout` and `att` are the document's rows.
fn backward_gemm<F: Float>(
    mut dqkv: ArrayViewMut3<'_, F>,
    (dout, att): (&[F], &[F]),
    x: &Head<'_, F>,
    shape: &AttentionShape<F>,
    ds: &mut [F],
    how: Products<'_>,
) {
    let (hd, c, n, t) = (shape.head_dim, shape.c(), x.n, shape.block_size);
    let dy = strided(dout, x.head * hd, (n, hd), c);
    let p = strided(att, x.head * t, (n, n), shape.n_head * t);
    let mut ds = ArrayViewMut2::from_shape((n, n), &mut ds[..n * n]).expect("scratch view");
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
        let mut dq = dqkv.slice_mut(s![rb.clone(), 0, ..]);
        how.mm(F::one(), &dsb.view(), &x.k.slice(keys), &mut dq);
    }
    for kb in x.blocks() {
        // dV[kb] = P[kb.start.., kb]ᵀ dY[kb.start..], dK[kb] = dS[kb.start.., kb]ᵀ Q[kb.start..].
        let (below, later) = (s![kb.start.., kb.clone()], s![kb.start.., ..]);
        let mut dv = dqkv.slice_mut(s![kb.clone(), 2, ..]);
        how.mm(F::one(), &p.slice(below).t(), &dy.slice(later), &mut dv);
        let mut dk = dqkv.slice_mut(s![kb.clone(), 1, ..]);
        how.mm(F::one(), &ds.slice(below).t(), &x.q.slice(later), &mut dk);
    }
}

/// One document of [`attention_backward`] as loops, `dqkv: [n, 3C]` overwritten. Per query
/// `i` and head: `out_i = Σ_j w_j v_j` gives `dv_j += w_j dout_i` and `dw_j = dout_i · v_j`;
/// softmax gives `ds_j = w_j (dw_j - Σ_k w_k dw_k)`; `s_j = (q_i · k_j) scale` gives
/// `dq_i += scale Σ_j ds_j k_j` and `dk_j += scale ds_j q_i`.
fn backward_loops<F: Float>(
    dqkv: &mut [F],
    (dout, att, qkv): (&[F], &[F], &[F]),
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
