//! The portable bf16 GEMM: blocks of the operands rounded to bf16 ([`super::round`]) and
//! widened back into f32 scratch, then the f32 GEMM (`cblas_sgemm`: OpenBLAS's, or the
//! crate's own on matrixmultiply, see `crate::numerics::blas`) on them. The same operands as the
//! AVX512_BF16 kernel, so the same numbers up to the order of the f32 sums. Blocked so that
//! its scratch has a fixed size.
//!
//! CBLAS is called directly, with `C`'s row stride: ndarray's GEMM takes the 0 stride its
//! slicing gives an axis of length 1 for a layout BLAS cannot take, and falls back to a GEMM
//! that allocates on every call (a decoded token's GEMMs have one row).

use super::{round, widen, Operand};
use cblas_sys::{cblas_sgemm, CBLAS_LAYOUT, CBLAS_TRANSPOSE};
use ndarray::{ArrayViewMut2, Zip};
use std::os::raw::c_int;

/// Rows of `a`, the shared dimension, and columns of `b` per block.
const MC: usize = 256;
const KC: usize = 256;
const NC: usize = 1024;

pub const SCRATCH_BYTES: usize = 4 * (MC * KC + KC * NC);

/// Room for a rounded block of `A` and one of `B`.
pub fn scratch() -> Vec<f32> {
    vec![0.0; MC * KC + KC * NC]
}

/// `out = widen(round(src))`, element by element, into `out`'s row-major `[rows, cols]`.
fn rounded(out: &mut [f32], src: Operand<'_>) {
    let mut out = ArrayViewMut2::from_shape(src.dim(), &mut out[..src.dim().0 * src.dim().1])
        .expect("scratch shape");
    match src {
        Operand::F32(v) => Zip::from(&mut out)
            .and(v)
            .for_each(|o, &x| *o = widen(round(x))),
        Operand::Bf16(v) => Zip::from(&mut out).and(v).for_each(|o, &b| *o = widen(b)),
    }
}

/// A dimension for CBLAS.
fn int(n: usize) -> c_int {
    c_int::try_from(n).expect("a GEMM dimension beyond CBLAS's int")
}

/// [`super::gemm`] on the f32 GEMM; `k > 0`.
pub fn gemm(
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut [f32],
) {
    let ((m, k), n) = (a.dim(), b.dim().1);
    // Rows of C are contiguous (checked by the caller); one row takes any stride >= n.
    let ldc = if m > 1 {
        c.strides()[0] as usize
    } else {
        n.max(1)
    };
    let c = c.as_mut_ptr();
    {
        let (sa, sb) = scratch.split_at_mut(MC * KC);
        for j in (0..n).step_by(NC) {
            let cols = j..(j + NC).min(n);
            for p in (0..k).step_by(KC) {
                let shared = p..(p + KC).min(k);
                rounded(sb, b.rows(shared.clone()).cols(cols.clone()));
                // Later blocks of the shared dimension add onto the first one's sum.
                let beta = if p == 0 { beta } else { 1.0 };
                for i in (0..m).step_by(MC) {
                    let rows = i..(i + MC).min(m);
                    rounded(sa, a.rows(rows.clone()).cols(shared.clone()));
                    // SAFETY: the scratch holds the row-major blocks; the block of C lies
                    // within it, rows ldc apart.
                    unsafe {
                        cblas_sgemm(
                            CBLAS_LAYOUT::CblasRowMajor,
                            CBLAS_TRANSPOSE::CblasNoTrans,
                            CBLAS_TRANSPOSE::CblasNoTrans,
                            int(rows.len()),
                            int(cols.len()),
                            int(shared.len()),
                            alpha,
                            sa.as_ptr(),
                            int(shared.len()),
                            sb.as_ptr(),
                            int(cols.len()),
                            beta,
                            c.add(i * ldc + j),
                            int(ldc),
                        )
                    };
                }
            }
        }
    }
}
