//! Packing for the AVX512_BF16 GEMM. Every operand becomes 32-bit words, one per (row or
//! column, pair of `k`): the two bf16 values `VDPBF16PS` multiplies into one f32 lane, `k`
//! even in the low half; pairs past `k` are 0.
//! - A block of `B` goes into panels of [`NR`] columns (BLIS's packing), each pair's 32
//!   words together, which the micro-kernel loads as two vectors.
//! - A block of `A` only needs its values rounded: the micro-kernel broadcasts each of its
//!   words from wherever it lies, so the block keeps the source's memory order (rows, or
//!   pairs of rows side by side) and is read sequentially.
//!
//! A source is read along whichever dimension is contiguous: pairs along a row of `k`
//! (rounded 32 values at a time; `B`'s then 16 x 16 words transposed), or two rows of `k`
//! across (16 values of each, rounded and interleaved); any other strides take a scalar
//! loop.

use super::Operand;
use std::arch::x86_64::*;

/// Rows of a micro-tile.
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

/// Where a packed block of `A` puts word `(i, p)`: at `i * row + p * pair` words.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub row: usize,
    pub pair: usize,
}

/// Packs rows `i0..i0 + mc` and pairs `p0..p0 + kp` of `a` at `out`, read in the order it
/// lies in memory: row by row (`k` contiguous, or any other strides), or pair by pair (rows
/// side by side). The micro-kernel broadcasts each word in place, so `A` needs no panels,
/// only its values rounded; a pass along the source's memory order keeps the reads
/// sequential, which the hardware's prefetchers need (8 rows read in turn left them idle:
/// packing then took a fifth of a d384 step).
///
/// # Safety
/// AVX512_BF16 is available; `out` has room for `mc.next_multiple_of(16) * kp` words; the
/// block lies within `a` (pairs may run one element past its columns).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub unsafe fn pack_a(
    a: Source,
    i0: usize,
    mc: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) -> Layout {
    unsafe {
        match a {
            Source::F32(s) => pack_a_as::<f32>(&s, i0, mc, p0, kp, out),
            Source::Bf16(s) => pack_a_as::<u16>(&s, i0, mc, p0, kp, out),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_a_as<T: Elem>(
    s: &Raw<T>,
    i0: usize,
    mc: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) -> Layout {
    let k0 = 2 * p0;
    if (s.rs == 1 || s.rows == 1) && s.cs != 1 {
        // Pair by pair: 16 rows of each of its two elements at a time, interleaved.
        let stride = mc.next_multiple_of(16);
        for p in 0..kp {
            let k = k0 + 2 * p;
            let y = |i| (k + 1 < s.cols).then(|| s.at(i0 + i, k + 1));
            for i in (0..mc).step_by(16) {
                // SAFETY: both lines hold these elements; the row of words fits.
                unsafe {
                    let v = T::across(s.at(i0 + i, k), y(i), (mc - i).min(16));
                    _mm512_storeu_si512(out.add(p * stride + i).cast(), v);
                }
            }
        }
        return Layout {
            row: 1,
            pair: stride,
        };
    }
    let elements = s.cols.saturating_sub(k0).min(2 * kp);
    for i in 0..mc {
        let row = out.wrapping_add(i * kp);
        for g in (0..kp).step_by(16) {
            let n = elements.saturating_sub(2 * g).min(32);
            let words = mask16(kp - g);
            // SAFETY: the row holds these n elements (read one by one unless k is
            // contiguous); the words stay within the row of kp.
            unsafe {
                let v = if s.cs == 1 || s.cols == 1 {
                    if n == 0 {
                        _mm512_setzero_si512()
                    } else {
                        T::along(s.at(i0 + i, k0 + 2 * g), n)
                    }
                } else {
                    let w: [u32; 16] = std::array::from_fn(|q| word(s, i0 + i, p0 + g + q));
                    _mm512_loadu_si512(w.as_ptr().cast())
                };
                _mm512_mask_storeu_epi32(row.add(g).cast(), words, v);
            }
        }
    }
    Layout { row: kp, pair: 1 }
}

/// Packs pairs `p0..p0 + kp` and columns `j0..j0 + nc` of `b` into panels of [`NR`]
/// columns, each `kp * NR` words, at `out`: word `(j, p)` at
/// `(j / NR) * kp * NR + p * NR + j % NR`, so that the micro-kernel loads each pair's
/// columns of a panel as two vectors.
///
/// # Safety
/// AVX512_BF16 is available; `out` has room for `nc.div_ceil(NR) * kp * NR` words; the
/// block lies within `b` (pairs may run one element past its rows).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub unsafe fn pack_b(b: Source, p0: usize, kp: usize, j0: usize, nc: usize, out: *mut u32) {
    unsafe {
        match b {
            Source::F32(s) => pack_panels::<f32>(&s.t(), j0, nc, p0, kp, out),
            Source::Bf16(s) => pack_panels::<u16>(&s.t(), j0, nc, p0, kp, out),
        }
    }
}

/// Where word `(j, p)` of a packed block of `B` goes.
fn word_at(kp: usize, j: usize, p: usize) -> usize {
    (j / NR) * kp * NR + p * NR + j % NR
}

/// [`pack_b`] of `s = bᵀ`: rows `j0..j0 + len` (the columns of `b`), pairs `p0..p0 + kp`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_panels<T: Elem>(
    s: &Raw<T>,
    j0: usize,
    len: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) {
    unsafe {
        if s.cs == 1 || s.cols == 1 {
            pack_along::<T>(s, j0, len, p0, kp, out);
        } else if s.rs == 1 || s.rows == 1 {
            pack_across::<T>(s, j0, len, p0, kp, out);
        } else {
            for j in 0..len {
                for p in 0..kp {
                    *out.add(word_at(kp, j, p)) = word(s, j0 + j, p0 + p);
                }
            }
        }
    }
}

/// [`pack_panels`] of columns whose `k` is contiguous: 16 columns by 16 pairs at a time,
/// transposed, so that each pair's 16 words are stored together.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_along<T: Elem>(
    s: &Raw<T>,
    j0: usize,
    len: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) {
    let k0 = 2 * p0;
    let elements = s.cols.saturating_sub(k0).min(2 * kp);
    for c0 in (0..len).step_by(16) {
        for g in (0..kp).step_by(16) {
            let n = elements.saturating_sub(2 * g).min(32);
            let mut r = [_mm512_setzero_si512(); 16];
            for (j, reg) in r.iter_mut().enumerate() {
                if c0 + j < len && n > 0 {
                    // SAFETY: the column holds these n elements.
                    *reg = unsafe { T::along(s.at(j0 + c0 + j, k0 + 2 * g), n) };
                }
            }
            for (q, &col) in transpose16(r).iter().enumerate().take(kp - g) {
                // SAFETY: columns c0..c0 + 16 of pair g + q are within the panel.
                unsafe { _mm512_storeu_si512(out.add(word_at(kp, c0, g + q)).cast(), col) };
            }
        }
    }
}

/// [`pack_panels`] of columns laid side by side (`s.rs == 1`): for each pair, 16 columns of
/// its two elements at a time, interleaved.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pack_across<T: Elem>(
    s: &Raw<T>,
    j0: usize,
    len: usize,
    p0: usize,
    kp: usize,
    out: *mut u32,
) {
    for p in 0..kp {
        let k = 2 * (p0 + p);
        for c0 in (0..len).step_by(16) {
            let y = (k + 1 < s.cols).then(|| s.at(j0 + c0, k + 1));
            // SAFETY: both lines hold these elements; columns c0.. are within the panel.
            unsafe {
                let v = T::across(s.at(j0 + c0, k), y, (len - c0).min(16));
                _mm512_storeu_si512(out.add(word_at(kp, c0, p)).cast(), v);
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
