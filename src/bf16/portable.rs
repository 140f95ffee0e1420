//! The portable bf16 GEMM: blocks of the operands rounded to bf16 ([`super::round`]) and
//! widened back into f32 scratch, then ndarray's f32 GEMM (OpenBLAS's sgemm, or
//! matrixmultiply) on them. The same operands as the AVX512_BF16 kernel, so the same
//! numbers up to the order of the f32 sums. Blocked so that its scratch has a fixed size.

use super::{round, widen, Operand};
use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayViewMut2, Zip};
use std::cell::RefCell;

/// Rows of `a`, the shared dimension, and columns of `b` per block.
const MC: usize = 256;
const KC: usize = 256;
const NC: usize = 1024;

pub const SCRATCH_BYTES: usize = 4 * (MC * KC + KC * NC);

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out = widen(round(src))`, element by element.
fn rounded(out: &mut ArrayViewMut2<'_, f32>, src: Operand<'_>) {
    match src {
        Operand::F32(v) => Zip::from(out).and(v).for_each(|o, &x| *o = widen(round(x))),
        Operand::Bf16(v) => Zip::from(out).and(v).for_each(|o, &b| *o = widen(b)),
    }
}

/// [`super::gemm`] on the f32 GEMM; `k > 0`.
pub fn gemm(alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut ArrayViewMut2<'_, f32>) {
    let ((m, k), n) = (a.dim(), b.dim().1);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.is_empty() {
            scratch.resize(MC * KC + KC * NC, 0.0);
        }
        let (sa, sb) = scratch.split_at_mut(MC * KC);
        for j in (0..n).step_by(NC) {
            let cols = j..(j + NC).min(n);
            for p in (0..k).step_by(KC) {
                let shared = p..(p + KC).min(k);
                let len = shared.len() * cols.len();
                let mut bb = ArrayViewMut2::from_shape((shared.len(), cols.len()), &mut sb[..len])
                    .expect("scratch shape");
                rounded(&mut bb, b.rows(shared.clone()).cols(cols.clone()));
                // Later blocks of the shared dimension add onto the first one's sum.
                let beta = if p == 0 { beta } else { 1.0 };
                for i in (0..m).step_by(MC) {
                    let rows = i..(i + MC).min(m);
                    let len = rows.len() * shared.len();
                    let mut ab =
                        ArrayViewMut2::from_shape((rows.len(), shared.len()), &mut sa[..len])
                            .expect("scratch shape");
                    rounded(&mut ab, a.rows(rows.clone()).cols(shared.clone()));
                    let mut cb = c.slice_mut(s![rows, cols.clone()]);
                    general_mat_mul(alpha, &ab, &bb, beta, &mut cb);
                }
            }
        }
    });
}
