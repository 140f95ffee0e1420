//! The tensor engine's GEMMs on the pool's threads: an output cut along its longer side into
//! one block per thread, each a single-threaded GEMM: in `F` (BLAS, see `crate::numerics::blas`), or
//! with bf16 operands summed in f32 (`crate::numerics::bf16`, for `--dtype bf16`), with each thread's
//! packing scratch. No block's result depends on how the others are cut.

use super::buffers::PerWorker;
use super::rows::split_axis;
use crate::numerics::bf16::{self, Kernel, Operand, Scratch};
use crate::numerics::dtype::Float;
use crate::numerics::pool;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayView2, ArrayViewMut2, Axis};
use std::ops::Range;

/// Rows (or columns) of an output split into blocks of this many: a multiple of the GEMM
/// kernels' tiles.
const GEMM_TILE: usize = 16;

/// The part of a GEMM's output one task computes.
enum Block {
    Whole,
    Rows(Range<usize>),
    Cols(Range<usize>),
}

/// An operand whose rows and columns a [`Block`] can take.
trait Sliced: Copy {
    fn rows(self, r: Range<usize>) -> Self;
    fn cols(self, r: Range<usize>) -> Self;
}

impl<F> Sliced for ArrayView2<'_, F> {
    fn rows(self, r: Range<usize>) -> Self {
        self.slice_move(s![r, ..])
    }
    fn cols(self, r: Range<usize>) -> Self {
        self.slice_move(s![.., r])
    }
}

impl Sliced for Operand<'_> {
    fn rows(self, r: Range<usize>) -> Self {
        Operand::rows(self, r)
    }
    fn cols(self, r: Range<usize>) -> Self {
        Operand::cols(self, r)
    }
}

impl Block {
    /// The parts of `a` and `b` whose product is this block of `a b`.
    fn operands<A: Sliced, B: Sliced>(&self, a: A, b: B) -> (A, B) {
        match self {
            Block::Whole => (a, b),
            Block::Rows(r) => (a.rows(r.clone()), b),
            Block::Cols(r) => (a, b.cols(r.clone())),
        }
    }
}

/// Runs `block` on the output `c: [m, n]` (row-major) of a product over `k`, cut along its
/// longer side into one block per thread, each one single-threaded GEMM. One block each
/// beats four (which let a thread that other processes slow down hold up less): a smaller
/// block packs the shared operand again and runs a less efficient GEMM, 5–12% slower at the
/// shapes of a d384 model.
fn gemm_blocks<F: Float>(
    (m, k, n): (usize, usize, usize),
    c: &mut [F],
    block: &(dyn Fn(&Block, ArrayViewMut2<'_, F>, usize) + Sync),
) {
    let flops = 2.0 * (m * n * k) as f64;
    let by_rows = m >= n;
    let long = if by_rows { m } else { n };
    let tiles = long.div_ceil(GEMM_TILE);
    let parts = pool::parts(flops).min(tiles);
    if parts == 1 {
        // One block: no slicing (it costs as much as a tiny GEMM).
        let c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("matrix shape");
        return block(&Block::Whole, c, 0);
    }
    let ranges = (0..parts).map(move |part| {
        let t = pool::split(tiles, parts, part);
        t.start * GEMM_TILE..(t.end * GEMM_TILE).min(long)
    });
    let c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("matrix shape");
    let axis = if by_rows { Axis(0) } else { Axis(1) };
    let blocks = split_axis(c, axis, ranges).map(|(r, cb)| {
        let b = if by_rows {
            Block::Rows(r)
        } else {
            Block::Cols(r)
        };
        (b, cb)
    });
    pool::for_each_part(parts, flops, blocks, &|(b, cb), worker| {
        block(&b, cb, worker)
    });
}

/// `c = a b + beta c` in `F` for row-major `c: [m, n]`, on the pool ([`gemm_blocks`]).
pub fn gemm<F: Float>(a: ArrayView2<'_, F>, b: ArrayView2<'_, F>, beta: F, c: &mut [F]) {
    let dims = (a.nrows(), a.ncols(), b.ncols());
    gemm_blocks(dims, c, &|block, mut cb, _| {
        let (a, b) = block.operands(a, b);
        general_mat_mul(F::one(), &a, &b, beta, &mut cb);
    });
}

/// What a bf16 run's GEMMs need besides their operands: the weights' bf16 copy (the
/// values rounded once per step, as bits), the kernel, and each thread's scratch (by the
/// pool's worker index).
#[derive(Clone, Copy)]
pub struct Bf16<'a> {
    pub bits: &'a [u16],
    pub kernel: Kernel,
    pub scratch: &'a PerWorker<Scratch>,
}

impl Bf16<'_> {
    /// `c = alpha a b + beta c` on worker `worker`'s scratch: one thread's bf16 GEMM.
    pub fn gemm(
        &self,
        worker: usize,
        alpha: f32,
        (a, b): (Operand<'_>, Operand<'_>),
        beta: f32,
        c: &mut ArrayViewMut2<'_, f32>,
    ) {
        let mut scratch = self.scratch.get(worker);
        bf16::gemm(self.kernel, alpha, a, b, beta, c, &mut scratch);
    }
}

/// [`gemm`] with the operands rounded to bf16 and the products summed in f32.
pub fn gemm_bf16<F: Float>(g: &Bf16<'_>, a: Operand<'_>, b: Operand<'_>, beta: F, c: &mut [F]) {
    let ((m, k), n) = (a.dim(), b.dim().1);
    let beta = beta.as_f64() as f32;
    gemm_blocks((m, k, n), c, &|block, cb, worker| {
        let operands = block.operands(a, b);
        g.gemm(worker, 1.0, operands, beta, &mut f32_view_mut(cb));
    });
}

/// `m` as an f32 GEMM operand: bf16 runs are f32 runs.
pub fn f32_operand<F: Float>(m: ArrayView2<'_, F>) -> Operand<'_> {
    Operand::F32(F::f32_view(m).expect("bf16 GEMMs run in f32"))
}

pub fn f32_view_mut<F: Float>(m: ArrayViewMut2<'_, F>) -> ArrayViewMut2<'_, f32> {
    F::f32_view_mut(m).expect("bf16 GEMMs run in f32")
}

/// How one pool task's own products run (attention's, per document and head): in `F`, or
/// on bf16 operands with the task's worker's scratch.
#[derive(Clone, Copy)]
pub struct Products<'a> {
    pub bf16: Option<&'a Bf16<'a>>,
    pub worker: usize,
}

impl Products<'_> {
    /// `c = alpha a b` (overwritten).
    pub fn mm<F: Float>(
        self,
        alpha: F,
        a: &ArrayView2<'_, F>,
        b: &ArrayView2<'_, F>,
        c: &mut ArrayViewMut2<'_, F>,
    ) {
        match self.bf16 {
            None => general_mat_mul(alpha, a, b, F::zero(), c),
            Some(g) => {
                let operands = (f32_operand(a.view()), f32_operand(b.view()));
                let alpha = alpha.as_f64() as f32;
                g.gemm(
                    self.worker,
                    alpha,
                    operands,
                    0.0,
                    &mut f32_view_mut(c.view_mut()),
                );
            }
        }
    }
}
