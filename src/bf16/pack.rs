//! Packing for the AVX512_BF16 GEMM, as BLIS packs: a block of `A` into panels of [`MR`]
//! rows, a block of `B` into panels of [`NR`] columns, each a run of 32-bit words, one per
//! (row or column, pair of `k`): the two bf16 values `VDPBF16PS` multiplies into one f32 lane,
//! `k` even in the low half. Pairs past `k`, rows past `m` and columns past `n` are 0.
//!
//! A source is read along whichever dimension is contiguous: pairs along a row of `k`
//! (rounded 32 values at a time, then 16 x 16 words transposed), or two rows of `k` across
//! (16 values of each, rounded and interleaved); any other strides take a scalar loop.

use super::Operand;
use std::arch::x86_64::*;

/// Rows of a micro-tile and of an `A` panel.
pub const MR: usize = 8;
/// Columns of a micro-tile and of a `B` panel: two registers of 16 f32.
pub const NR: usize = 32;

/// A strided matrix: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct Raw<T> {
    ptr: *const T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<T> Raw<T> {
    fn of(v: &ndarray::ArrayView2<'_, T>) -> Self {
        let (rows, cols) = v.dim();
        Raw {
            ptr: v.as_ptr(),
            rows,
            cols,
            rs: v.strides()[0],
            cs: v.strides()[1],
        }
    }

    /// Element `(i, j)`, which must exist.
    fn at(&self, i: usize, j: usize) -> *const T {
        debug_assert!(i < self.rows && j < self.cols);
        self.ptr
            .wrapping_offset(i as isize * self.rs + j as isize * self.cs)
    }

    fn t(self) -> Self {
        Raw {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// An operand as the packing reads it.
#[derive(Clone, Copy)]
pub enum Source {
    F32(Raw<f32>),
    Bf16(Raw<u16>),
}

impl Source {
    pub fn of(op: &Operand<'_>) -> Self {
        match op {
            Operand::F32(v) => Source::F32(Raw::of(v)),
            Operand::Bf16(v) => Source::Bf16(Raw::of(v)),
        }
    }
}

/// Mask of the first `n` of 16 lanes.
fn mask16(n: usize) -> __mmask16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// An element type a source can hold.
trait Elem: Copy {
    /// bf16 bits of the value (rounded, for f32).
    fn bits(self) -> u16;

    /// The 16 words `(line[2p], line[2p + 1])` from `n <= 32` elements of a contiguous
    /// `line`, 0 past them.
    ///
    /// # Safety
    /// The CPU has AVX512_BF16 and `line` holds `n` elements.
    unsafe fn along(line: *const Self, n: usize) -> __m512i;

    /// The 16 words `(x[j], y[j])` from `n <= 16` elements of two contiguous lines (`y`
    /// absent: 0), 0 past them.
    ///
    /// # Safety
    /// As for [`Elem::along`].
    unsafe fn across(x: *const Self, y: Option<*const Self>, n: usize) -> __m512i;
}

/// Word `j` of the result is bf16 element `j` of `v`'s low half, then `j` of its high half.
#[target_feature(enable = "avx512f,avx512bw")]
fn interleave_halves(v: __m512i) -> __m512i {
    const IDX: [i16; 32] = {
        let mut idx = [0i16; 32];
        let mut j = 0;
        while j < 16 {
            idx[2 * j] = j as i16;
            idx[2 * j + 1] = 16 + j as i16;
            j += 1;
        }
        idx
    };
    // SAFETY: IDX is 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(IDX.as_ptr().cast()) };
    _mm512_permutexvar_epi16(idx, v)
}

impl Elem for f32 {
    fn bits(self) -> u16 {
        super::round(self)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn along(line: *const f32, n: usize) -> __m512i {
        // SAFETY: masked lanes are not read.
        let (lo, hi) = unsafe {
            (
                _mm512_maskz_loadu_ps(mask16(n), line),
                _mm512_maskz_loadu_ps(mask16(n.saturating_sub(16)), line.wrapping_add(16)),
            )
        };
        // The second operand's values go in the low half: memory order.
        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn across(x: *const f32, y: Option<*const f32>, n: usize) -> __m512i {
        let m = mask16(n);
        // SAFETY: masked lanes are not read.
        let lo = unsafe { _mm512_maskz_loadu_ps(m, x) };
        let hi = y.map_or(_mm512_setzero_ps(), |y| unsafe {
            _mm512_maskz_loadu_ps(m, y)
        });
        let halves = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
        interleave_halves(halves)
    }
}

impl Elem for u16 {
    fn bits(self) -> u16 {
        self
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn along(line: *const u16, n: usize) -> __m512i {
        let m = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        // SAFETY: masked lanes are not read.
        unsafe { _mm512_maskz_loadu_epi16(m, line.cast()) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn across(x: *const u16, y: Option<*const u16>, n: usize) -> __m512i {
        let m = mask16(n);
        // SAFETY: masked lanes are not read.
        let lo = unsafe { _mm256_maskz_loadu_epi16(m, x.cast()) };
        let hi = y.map_or(_mm256_setzero_si256(), |y| unsafe {
            _mm256_maskz_loadu_epi16(m, y.cast())
        });
        interleave_halves(_mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi))
    }
}

/// Index vectors of the transpose's stage `d` (8, 4, 2, 1): the first row of each pair
/// takes its own lanes `e` with bit `d` clear and the second row's lanes `e - d` for the
/// others; the second row the rest.
const fn stage_indices(d: usize) -> [[i32; 16]; 2] {
    let mut idx = [[0i32; 16]; 2];
    let mut e = 0;
    while e < 16 {
        let (own, other) = (e & d == 0, e ^ d);
        idx[0][e] = if own { e as i32 } else { 16 + other as i32 };
        idx[1][e] = if own { other as i32 } else { 16 + e as i32 };
        e += 1;
    }
    idx
}

const STAGES: [[[i32; 16]; 2]; 4] = [
    stage_indices(8),
    stage_indices(4),
    stage_indices(2),
    stage_indices(1),
];

/// The 16 x 16 words `r` transposed: block swaps of 8, 4, 2 and 1 words.
#[target_feature(enable = "avx512f")]
fn transpose16(mut r: [__m512i; 16]) -> [__m512i; 16] {
    for (stage, d) in STAGES.iter().zip([8, 4, 2, 1]) {
        // SAFETY: each index vector is 64 bytes.
        let (first, second) = unsafe {
            (
                _mm512_loadu_si512(stage[0].as_ptr().cast()),
                _mm512_loadu_si512(stage[1].as_ptr().cast()),
            )
        };
        for i in (0..16).filter(|i| i & d == 0) {
            let (a, b) = (r[i], r[i + d]);
            r[i] = _mm512_permutex2var_epi32(a, first, b);
            r[i + d] = _mm512_permutex2var_epi32(a, second, b);
        }
    }
    r
}

/// Word `(i, p)` of `s`: elements `(i, 2p)` and `(i, 2p + 1)`, 0 outside the matrix.
fn word<T: Elem>(s: &Raw<T>, i: usize, p: usize) -> u32 {
    let get = |k: usize| {
        if i < s.rows && k < s.cols {
            // SAFETY: the element exists.
            u32::from(unsafe { *s.at(i, k) }.bits())
        } else {
            0
        }
    };
    get(2 * p) | get(2 * p + 1) << 16
}

/// Packs rows `i0..i0 + mc` and pairs `p0..p0 + kp` of `a` into panels of [`MR`] rows,
/// each `kp * MR` words, at `out`.
///
/// # Safety
/// AVX512_BF16 is available; `out` has room for `mc.div_ceil(MR) * kp * MR` words; the
/// block lies within `a` (pairs may run one element past its columns).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub unsafe fn pack_a(a: Source, i0: usize, mc: usize, p0: usize, kp: usize, out: *mut u32) {
    unsafe {
        match a {
            Source::F32(s) => pack_panels::<f32, MR>(&s, i0, mc, p0, kp, out),
            Source::Bf16(s) => pack_panels::<u16, MR>(&s, i0, mc, p0, kp, out),
        }
    }
}

/// Packs pairs `p0..p0 + kp` and columns `j0..j0 + nc` of `b` into panels of [`NR`]
/// columns, each `kp * NR` words, at `out`: `A`'s packing of `bᵀ`.
///
/// # Safety
/// As for [`pack_a`], with `nc.div_ceil(NR) * kp * NR` words.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub unsafe fn pack_b(b: Source, p0: usize, kp: usize, j0: usize, nc: usize, out: *mut u32) {
    unsafe {
        match b {
            Source::F32(s) => pack_panels::<f32, NR>(&s.t(), j0, nc, p0, kp, out),
            Source::Bf16(s) => pack_panels::<u16, NR>(&s.t(), j0, nc, p0, kp, out),
        }
    }
}

/// Where word `(i, p)` of a block packed into panels of `W` rows goes.
fn word_at<const W: usize>(kp: usize, i: usize, p: usize) -> usize {
    (i / W) * kp * W + p * W + i % W
}

/// Rows `i0..i0 + len` of `s` (rows are `A`'s rows or `B`'s columns), pairs `p0..p0 + kp`,
/// into panels of `W` rows (a multiple of 8): word `(i, p)` at [`word_at`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_panels<T: Elem, const W: usize>(
    s: &Raw<T>,
    i0: usize,
    len: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) {
    unsafe {
        if s.cs == 1 || s.cols == 1 {
            pack_along::<T, W>(s, i0, len, p0, kp, out);
        } else if s.rs == 1 || s.rows == 1 {
            pack_across::<T, W>(s, i0, len, p0, kp, out);
        } else {
            for i in 0..len.div_ceil(W) * W {
                for p in 0..kp {
                    let w = if i < len { word(s, i0 + i, p0 + p) } else { 0 };
                    *out.add(word_at::<W>(kp, i, p)) = w;
                }
            }
        }
    }
}

/// Stores lanes `8 * half..` (`rows` 8) or all 16 lanes (`rows` 16) of `v` at `dst`.
///
/// # Safety
/// `dst` has room for `rows` words.
#[target_feature(enable = "avx512f")]
unsafe fn store_rows(dst: *mut u32, v: __m512i, half: usize, rows: usize) {
    unsafe {
        match (rows, half) {
            (16, _) => _mm512_storeu_si512(dst.cast(), v),
            (_, 0) => _mm256_storeu_si256(dst.cast(), _mm512_castsi512_si256(v)),
            _ => _mm256_storeu_si256(dst.cast(), _mm512_extracti64x4_epi64::<1>(v)),
        }
    }
}

/// [`pack_panels`] of rows whose `k` is contiguous: 16 registers of 16 pairs each (16 rows,
/// or 8 rows twice for 8-row panels), transposed, so that each pair's words of those rows
/// are stored together.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_along<T: Elem, const W: usize>(
    s: &Raw<T>,
    i0: usize,
    len: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) {
    let rows = W.min(16);
    let pair_groups = 16 / rows;
    let k0 = 2 * p0;
    let elements = s.cols.saturating_sub(k0).min(2 * kp);
    for r0 in (0..len).step_by(rows) {
        for g in (0..kp).step_by(16 * pair_groups) {
            let mut r = [_mm512_setzero_si512(); 16];
            for (slot, reg) in r.iter_mut().enumerate() {
                let (i, first) = (r0 + slot % rows, 2 * (g + 16 * (slot / rows)));
                let n = elements.saturating_sub(first).min(32);
                if i < len && n > 0 {
                    // SAFETY: the row holds these n elements.
                    *reg = unsafe { T::along(s.at(i0 + i, k0 + first), n) };
                }
            }
            for (c, &col) in transpose16(r).iter().enumerate() {
                for half in 0..pair_groups {
                    let p = g + 16 * half + c;
                    if p < kp {
                        // SAFETY: rows r0.. of pair p are within the panel.
                        unsafe { store_rows(out.add(word_at::<W>(kp, r0, p)), col, half, rows) };
                    }
                }
            }
        }
    }
}

/// [`pack_panels`] of rows laid side by side (`s.rs == 1`): for each pair, 16 rows of its
/// two elements at a time, interleaved.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_across<T: Elem, const W: usize>(
    s: &Raw<T>,
    i0: usize,
    len: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) {
    let rows = W.min(16);
    for p in 0..kp {
        let k = 2 * (p0 + p);
        for i in (0..len).step_by(16) {
            let n = (len - i).min(16);
            let y = (k + 1 < s.cols).then(|| s.at(i0 + i, k + 1));
            // SAFETY: both lines hold n elements.
            let v = unsafe { T::across(s.at(i0 + i, k), y, n) };
            for half in 0..16 / rows {
                let first = i + half * rows;
                if first < len.div_ceil(W) * W {
                    // SAFETY: rows first.. of pair p are within the panel.
                    unsafe { store_rows(out.add(word_at::<W>(kp, first, p)), v, half, rows) };
                }
            }
        }
    }
}

/// [`super::round_slice`] on AVX512_BF16: 32 values at a time.
///
/// # Safety
/// AVX512_BF16 is available; the slices have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub unsafe fn round_slice(src: &[f32], dst: &mut [u16]) {
    for (s, d) in src.chunks(32).zip(dst.chunks_mut(32)) {
        let n = s.len();
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        // SAFETY: s holds n values and d room for n; masked lanes are not touched.
        unsafe { _mm512_mask_storeu_epi16(d.as_mut_ptr().cast(), mask, f32::along(s.as_ptr(), n)) };
    }
}
