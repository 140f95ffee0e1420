//! The CBLAS that ndarray's GEMMs (and any direct `cblas-sys` call) run on: the system OpenBLAS
//! when build.rs found and linked it (`cfg(microgpt_openblas)`), otherwise this module's own
//! `cblas_*` functions on `matrixmultiply`, the pure-Rust GEMM ndarray itself uses without BLAS
//! (same crate, same features, same operands: the same results as that build).

/// The library that runs the GEMMs, for tools to print.
pub const BACKEND: &str = if cfg!(microgpt_openblas) {
    "OpenBLAS"
} else {
    "pure Rust"
};

#[cfg(microgpt_openblas)]
extern "C" {
    fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
}

/// Sets OpenBLAS's own threads (the tensor engine keeps it at one: its GEMMs run inside the
/// engine's tasks); the pure-Rust GEMM is single-threaded.
pub fn set_threads(threads: usize) {
    #[cfg(microgpt_openblas)]
    // SAFETY: OpenBLAS takes any positive count and only resizes its thread pool.
    unsafe {
        openblas_set_num_threads(threads.clamp(1, 1024) as std::os::raw::c_int)
    };
    #[cfg(not(microgpt_openblas))]
    let _ = threads;
}

/// Every CBLAS function ndarray 0.17's `blas` feature calls (its GEMMs for f32, f64, c32 and
/// c64; gemv and dot for f32 and f64), with CBLAS's semantics: row- or column-major, transposes,
/// β = 0 overwrites C (or y) whatever it held. As in OpenBLAS and ndarray's own GEMM, α = 0
/// still multiplies A and B (a NaN there reaches C). A release build of this crate calls only
/// sgemm and dgemm, a debug build cgemm and zgemm too, and any `.dot` of a vector the others:
/// all are here so that no build links on a machine with OpenBLAS and fails on one without.
#[cfg(not(microgpt_openblas))]
mod fallback {
    use cblas_sys::{c_double_complex, c_float_complex, CBLAS_LAYOUT, CBLAS_TRANSPOSE};
    use matrixmultiply::CGemmOption;
    use std::os::raw::c_int;

    /// Row and column strides of op(X) for X stored in `layout` with leading dimension `ld`.
    fn op_strides(layout: CBLAS_LAYOUT, trans: CBLAS_TRANSPOSE, ld: c_int) -> (isize, isize) {
        let transposed = !matches!(trans, CBLAS_TRANSPOSE::CblasNoTrans);
        // op(X)[i][j] is at i * ld + j for a row-major X and the transpose of a column-major X.
        match (layout, transposed) {
            (CBLAS_LAYOUT::CblasRowMajor, false) | (CBLAS_LAYOUT::CblasColMajor, true) => {
                (ld as isize, 1)
            }
            _ => (1, ld as isize),
        }
    }

    /// A dimension; negative ones are the caller's bug, which BLAS reports and so do we (an
    /// `extern "C"` function aborts on a panic, after printing it).
    fn dim(n: c_int) -> usize {
        usize::try_from(n).expect("CBLAS called with a negative dimension")
    }

    /// A BLAS vector as a pointer to its element 0 and a stride: with a negative increment,
    /// BLAS passes the lowest address, where the last element is.
    fn vector<T>(x: *const T, len: usize, inc: c_int) -> (*const T, isize) {
        assert_ne!(inc, 0, "CBLAS called with a zero vector increment");
        let inc = inc as isize;
        let first = if inc < 0 {
            x.wrapping_offset(-inc * len.saturating_sub(1) as isize)
        } else {
            x
        };
        (first, inc)
    }

    macro_rules! real {
        ($t:ty, $gemm:ident, $gemv:ident, $dot:ident, $mm:path) => {
            /// C ← α op(A) op(B) + β C.
            ///
            /// # Safety
            /// CBLAS's contract: the matrices hold their dimensions at their leading dimensions.
            #[no_mangle]
            #[allow(clippy::too_many_arguments)] // CBLAS's signature
            pub unsafe extern "C" fn $gemm(
                layout: CBLAS_LAYOUT,
                transa: CBLAS_TRANSPOSE,
                transb: CBLAS_TRANSPOSE,
                m: c_int,
                n: c_int,
                k: c_int,
                alpha: $t,
                a: *const $t,
                lda: c_int,
                b: *const $t,
                ldb: c_int,
                beta: $t,
                c: *mut $t,
                ldc: c_int,
            ) {
                let (rsa, csa) = op_strides(layout, transa, lda);
                let (rsb, csb) = op_strides(layout, transb, ldb);
                let (rsc, csc) = op_strides(layout, CBLAS_TRANSPOSE::CblasNoTrans, ldc);
                let k = dim(k);
                // SAFETY: the caller's CBLAS contract is matrixmultiply's with these strides.
                unsafe {
                    $mm(
                        dim(m),
                        k,
                        dim(n),
                        alpha,
                        a,
                        rsa,
                        csa,
                        b,
                        rsb,
                        csb,
                        beta,
                        c,
                        rsc,
                        csc,
                    )
                }
            }

            /// y ← α op(A) x + β y, as the GEMM of op(A) and a one-column x.
            ///
            /// # Safety
            /// CBLAS's contract: A holds m × n at `lda`, x and y their lengths at their increments.
            #[no_mangle]
            #[allow(clippy::too_many_arguments)] // CBLAS's signature
            pub unsafe extern "C" fn $gemv(
                layout: CBLAS_LAYOUT,
                trans: CBLAS_TRANSPOSE,
                m: c_int,
                n: c_int,
                alpha: $t,
                a: *const $t,
                lda: c_int,
                x: *const $t,
                incx: c_int,
                beta: $t,
                y: *mut $t,
                incy: c_int,
            ) {
                let (rows, cols) = match trans {
                    CBLAS_TRANSPOSE::CblasNoTrans => (dim(m), dim(n)),
                    _ => (dim(n), dim(m)),
                };
                let (rsa, csa) = op_strides(layout, trans, lda);
                let (x, incx) = vector(x, cols, incx);
                let (y, incy) = vector(y.cast_const(), rows, incy);
                // SAFETY: the caller's CBLAS contract, with x and y as cols × 1 and rows × 1.
                unsafe {
                    $mm(
                        rows,
                        cols,
                        1,
                        alpha,
                        a,
                        rsa,
                        csa,
                        x,
                        incx,
                        1,
                        beta,
                        y.cast_mut(),
                        incy,
                        1,
                    )
                }
            }

            /// x · y, as the GEMM of a one-row x and a one-column y.
            ///
            /// # Safety
            /// CBLAS's contract: x and y hold n elements at their increments.
            #[no_mangle]
            pub unsafe extern "C" fn $dot(
                n: c_int,
                x: *const $t,
                incx: c_int,
                y: *const $t,
                incy: c_int,
            ) -> $t {
                // BLAS: n ≤ 0 gives 0.
                let n = usize::try_from(n).unwrap_or(0);
                let (x, incx) = vector(x, n, incx);
                let (y, incy) = vector(y, n, incy);
                let mut dot: $t = 0.0;
                // SAFETY: the caller's CBLAS contract; `dot` is a 1 × 1 C.
                unsafe { $mm(1, n, 1, 1.0, x, 1, incx, y, incy, 1, 0.0, &mut dot, 1, 1) };
                dot
            }
        };
    }

    real!(
        f32,
        cblas_sgemm,
        cblas_sgemv,
        cblas_sdot,
        matrixmultiply::sgemm
    );
    real!(
        f64,
        cblas_dgemm,
        cblas_dgemv,
        cblas_ddot,
        matrixmultiply::dgemm
    );

    /// op(X) as a pointer and strides; a conjugate transpose (which matrixmultiply lacks) is
    /// copied, conjugated, into `keep`, row-major.
    fn complex_op<T: Copy + std::ops::Neg<Output = T>>(
        x: *const [T; 2],
        (rows, cols): (usize, usize),
        (rs, cs): (isize, isize),
        trans: CBLAS_TRANSPOSE,
        keep: &mut Vec<[T; 2]>,
    ) -> (*const [T; 2], isize, isize) {
        if !matches!(trans, CBLAS_TRANSPOSE::CblasConjTrans) {
            return (x, rs, cs);
        }
        keep.clear();
        for i in 0..rows as isize {
            for j in 0..cols as isize {
                // SAFETY: (i, j) is inside op(X), which the caller's CBLAS contract covers.
                let [re, im] = unsafe { *x.offset(i * rs + j * cs) };
                keep.push([re, -im]);
            }
        }
        (keep.as_ptr(), cols as isize, 1)
    }

    macro_rules! complex {
        ($t:ty, $gemm:ident, $mm:path) => {
            /// C ← α op(A) op(B) + β C, α and β passed by pointer.
            ///
            /// # Safety
            /// CBLAS's contract: the matrices hold their dimensions at their leading dimensions.
            #[no_mangle]
            #[allow(clippy::too_many_arguments)] // CBLAS's signature
            pub unsafe extern "C" fn $gemm(
                layout: CBLAS_LAYOUT,
                transa: CBLAS_TRANSPOSE,
                transb: CBLAS_TRANSPOSE,
                m: c_int,
                n: c_int,
                k: c_int,
                alpha: *const $t,
                a: *const $t,
                lda: c_int,
                b: *const $t,
                ldb: c_int,
                beta: *const $t,
                c: *mut $t,
                ldc: c_int,
            ) {
                // SAFETY: CBLAS passes α and β as pointers to one complex number each.
                let (alpha, beta) = unsafe { (*alpha, *beta) };
                let (m, n, k) = (dim(m), dim(n), dim(k));
                let (mut keep_a, mut keep_b) = (Vec::new(), Vec::new());
                let strides = op_strides(layout, transa, lda);
                let (a, rsa, csa) = complex_op(a, (m, k), strides, transa, &mut keep_a);
                let strides = op_strides(layout, transb, ldb);
                let (b, rsb, csb) = complex_op(b, (k, n), strides, transb, &mut keep_b);
                let (rsc, csc) = op_strides(layout, CBLAS_TRANSPOSE::CblasNoTrans, ldc);
                let std = CGemmOption::Standard;
                // SAFETY: the caller's CBLAS contract is matrixmultiply's with these strides.
                unsafe {
                    $mm(
                        std, std, m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc,
                    )
                }
            }
        };
    }

    complex!(c_float_complex, cblas_cgemm, matrixmultiply::cgemm);
    complex!(c_double_complex, cblas_zgemm, matrixmultiply::zgemm);
}

/// Checks whichever CBLAS is linked against plain loops, on small integers (exact in f32):
/// with OpenBLAS linked these tests check the tests.
#[cfg(test)]
mod tests {
    use cblas_sys::*;

    /// op(X)[i][j] for X stored in `layout` at leading dimension `ld`.
    fn at<T: Copy>(
        x: &[T],
        layout: CBLAS_LAYOUT,
        trans: CBLAS_TRANSPOSE,
        ld: i32,
        i: usize,
        j: usize,
    ) -> T {
        let (i, j) = match trans {
            CblasNoTrans => (i, j),
            _ => (j, i),
        };
        match layout {
            CblasRowMajor => x[i * ld as usize + j],
            CblasColMajor => x[j * ld as usize + i],
        }
    }

    fn ints(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 7 + seed * 3) % 7) as f64 - 3.0)
            .collect()
    }

    #[test]
    fn gemm_matches_loops_in_every_layout() {
        let (m, n, k, pad) = (5, 4, 9, 2);
        for layout in [CblasRowMajor, CblasColMajor] {
            for transa in [CblasNoTrans, CblasTrans] {
                for transb in [CblasNoTrans, CblasTrans] {
                    let stored = |trans, rows: usize, cols: usize| match (layout, trans) {
                        (CblasRowMajor, CblasNoTrans) | (CblasColMajor, CblasTrans) => (rows, cols),
                        _ => (cols, rows),
                    };
                    let (ar, ac) = stored(transa, m, k);
                    let (br, bc) = stored(transb, k, n);
                    let (cr, cc) = stored(CblasNoTrans, m, n);
                    let (lda, ldb, ldc) = ((ac + pad) as i32, (bc + pad) as i32, (cc + pad) as i32);
                    let a = ints(ar * (ac + pad), 1);
                    let b = ints(br * (bc + pad), 2);
                    let c0 = ints(cr * (cc + pad), 3);
                    for (alpha, beta) in [(2.0, 0.0), (1.0, -1.0), (0.0, 3.0)] {
                        // β = 0 must overwrite, NaN included.
                        let mut c = c0
                            .iter()
                            .map(|&v| if beta == 0.0 { f64::NAN } else { v })
                            .collect::<Vec<_>>();
                        let mut want = c.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let ab: f64 = (0..k)
                                    .map(|p| {
                                        at(&a, layout, transa, lda, i, p)
                                            * at(&b, layout, transb, ldb, p, j)
                                    })
                                    .sum();
                                let idx = match layout {
                                    CblasRowMajor => i * ldc as usize + j,
                                    CblasColMajor => j * ldc as usize + i,
                                };
                                let c = if beta == 0.0 { 0.0 } else { beta * c0[idx] };
                                want[idx] = alpha * ab + c;
                            }
                        }
                        let (mut cs, a32, b32) = (
                            c.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                            a.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                            b.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                        );
                        let (mi, ni, ki) = (m as i32, n as i32, k as i32);
                        // SAFETY: every buffer holds its matrix at its leading dimension.
                        unsafe {
                            cblas_dgemm(
                                layout,
                                transa,
                                transb,
                                mi,
                                ni,
                                ki,
                                alpha,
                                a.as_ptr(),
                                lda,
                                b.as_ptr(),
                                ldb,
                                beta,
                                c.as_mut_ptr(),
                                ldc,
                            );
                            cblas_sgemm(
                                layout,
                                transa,
                                transb,
                                mi,
                                ni,
                                ki,
                                alpha as f32,
                                a32.as_ptr(),
                                lda,
                                b32.as_ptr(),
                                ldb,
                                beta as f32,
                                cs.as_mut_ptr(),
                                ldc,
                            );
                        }
                        let case = format!("{layout:?} {transa:?} {transb:?} α={alpha} β={beta}");
                        for (idx, &w) in want.iter().enumerate() {
                            assert_eq!(c[idx].to_bits(), w.to_bits(), "dgemm {case} at {idx}");
                            assert_eq!(
                                cs[idx].to_bits(),
                                (w as f32).to_bits(),
                                "sgemm {case} at {idx}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemv_and_dot_match_loops_with_negative_increments() {
        // A is 2 × 3 row-major; x and y are read backwards (increment -2).
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = [3.0f32, 0.0, 2.0, 0.0, 1.0]; // x = [1, 2, 3]
        let mut y = [f32::NAN, 9.0, f32::NAN]; // y = [NaN, NaN], overwritten with β = 0
        let mut yt = [1.0f32, 9.0, 1.0, 9.0, 1.0]; // Aᵀ · [1, 2] + yt
                                                   // SAFETY: A is 2 × 3 at lda 3; x and y hold their lengths at increment -2.
        unsafe {
            cblas_sgemv(
                CblasRowMajor,
                CblasNoTrans,
                2,
                3,
                1.0,
                a.as_ptr(),
                3,
                x.as_ptr(),
                -2,
                0.0,
                y.as_mut_ptr(),
                -2,
            );
            cblas_sgemv(
                CblasRowMajor,
                CblasTrans,
                2,
                3,
                1.0,
                a.as_ptr(),
                3,
                x[2..].as_ptr(),
                -2,
                1.0,
                yt.as_mut_ptr(),
                -2,
            );
            // A column-major 3 × 2 is A's transpose in the same memory.
            let mut yc = [0.0f64; 2];
            let (ad, xd) = (a.map(f64::from), [1.0, 2.0, 3.0]);
            cblas_dgemv(
                CblasColMajor,
                CblasTrans,
                3,
                2,
                1.0,
                ad.as_ptr(),
                3,
                xd.as_ptr(),
                1,
                0.0,
                yc.as_mut_ptr(),
                1,
            );
            assert_eq!(yc, [14.0, 32.0]);
            assert_eq!(cblas_sdot(3, a.as_ptr(), 1, x.as_ptr(), -2), 14.0);
            assert_eq!(cblas_ddot(2, xd.as_ptr(), 2, xd.as_ptr(), 1), 7.0);
        }
        assert_eq!(y[2], 14.0);
        assert_eq!(y[0], 32.0);
        // Aᵀ · [1, 2] = [9, 12, 15], written backwards.
        assert_eq!(yt, [16.0, 9.0, 13.0, 9.0, 10.0]);
    }

    #[test]
    fn complex_gemm_conjugates_and_transposes() {
        // C (1 × 1) = α · conj(A)ᵀ · B with A, B 2 × 1 row-major; A = [i, 2], B = [1, i].
        let a: [[f32; 2]; 2] = [[0.0, 1.0], [2.0, 0.0]];
        let b: [[f32; 2]; 2] = [[1.0, 0.0], [0.0, 1.0]];
        let (alpha, beta) = ([0.0f32, 1.0], [0.0f32, 0.0]);
        let mut c = [[f32::NAN; 2]];
        let mut z = [[1.0f64, 1.0]];
        let (ad, bd) = (a.map(|v| v.map(f64::from)), b.map(|v| v.map(f64::from)));
        // SAFETY: A and B are 2 × 1 at leading dimension 1, C is 1 × 1.
        unsafe {
            cblas_cgemm(
                CblasRowMajor,
                CblasConjTrans,
                CblasNoTrans,
                1,
                1,
                2,
                &alpha,
                a.as_ptr(),
                1,
                b.as_ptr(),
                1,
                &beta,
                c.as_mut_ptr(),
                1,
            );
            // Z (1 × 1) = Aᵀ · B + Z, column-major.
            cblas_zgemm(
                CblasColMajor,
                CblasTrans,
                CblasNoTrans,
                1,
                1,
                2,
                &[1.0, 0.0],
                ad.as_ptr(),
                2,
                bd.as_ptr(),
                2,
                &[1.0, 0.0],
                z.as_mut_ptr(),
                1,
            );
        }
        // conj(i)·1 + 2·i = i, times α = i: -1.
        assert_eq!(c, [[-1.0, 0.0]]);
        // i·1 + 2·i = 3i, plus 1 + i.
        assert_eq!(z, [[1.0, 4.0]]);
    }
}
