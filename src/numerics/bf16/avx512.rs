//! Our bf16 GEMM on AVX512_BF16, blocked as BLIS blocks its GEMMs: a block of `B` (`KP`
//! pairs of `k` by `NC` columns) is packed once and stays in L3, a block of `A` (`MC` rows by
//! `KP` pairs) is rounded once per block of `B` and stays in L2, and the micro-kernel runs an
//! [`MR`] x [`NR`] tile of `C` in 16 registers over a `B` micro-panel streamed from L2. A
//! `VDPBF16PS` adds two bf16 products into each of 16 f32 lanes: a row's pair of `A`
//! broadcast, the same pair of 16 columns of `B`.

use super::pack::{pack_a, pack_b, Layout, Source, MR, NR};
use super::Operand;
use ndarray::ArrayViewMut2;
use std::arch::x86_64::*;

/// Pairs of `k` per block: each block of `k` after the first reads and writes all of `C`
/// again (`beta = 1`), and `C` is rarely in cache, so blocks are long: a `B` micro-panel,
/// `KP * NR` words (64 KiB), streams from L2 in order. At 2 threads a d384 bf16 step ran
/// 1.21x faster with 512 pairs than with 192 (which kept the panel in L1), side by side in
/// one run (`docs/bench_bf16.txt`); the long-`k` products (`dW`, over the batch's rows) gain
/// the most.
const KP: usize = 512;
/// Rows per packed `A` block (512 KiB, in L2).
const MC: usize = 256;
/// Columns per packed `B` block (2 MiB, in L3).
const NC: usize = 1024;

pub const SCRATCH_BYTES: usize = 4 * KP * (MC + NC);

/// A cache line of packed words: the scratch is aligned for the micro-kernel's loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u32; 16]);

/// Room for a packed block of `A` and one of `B`.
pub struct Packed {
    a: Vec<Line>,
    b: Vec<Line>,
}

impl Packed {
    pub fn new() -> Self {
        Packed {
            a: vec![Line([0; 16]); MC * KP / 16],
            b: vec![Line([0; 16]); NC * KP / 16],
        }
    }
}

/// [`super::gemm`] on AVX512_BF16; `k > 0`.
///
/// # Safety
/// The CPU has AVX512_BF16 (and AVX512F/BW/VL); the shapes agree; `c`'s rows are contiguous.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub unsafe fn gemm(
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    packed: &mut Packed,
) {
    let ((m, k), n) = (a.dim(), b.dim().1);
    if m == 0 || n == 0 {
        return;
    }
    let (a, b) = (Source::of(&a), Source::of(&b));
    let ldc = c.strides()[0];
    let c = c.as_mut_ptr();
    let pairs = k.div_ceil(2);
    let (ap, bp) = (packed.a.as_mut_ptr().cast(), packed.b.as_mut_ptr().cast());
    for jc in (0..n).step_by(NC) {
        let nc = (n - jc).min(NC);
        for pc in (0..pairs).step_by(KP) {
            let kp = (pairs - pc).min(KP);
            // SAFETY: the block is within b, the scratch holds NC x KP words.
            unsafe { pack_b(b, pc, kp, jc, nc, bp) };
            // Later blocks of k add onto the first one's sum.
            let beta = if pc == 0 { beta } else { 1.0 };
            for ic in (0..m).step_by(MC) {
                let mc = (m - ic).min(MC);
                // SAFETY: as above, MC x KP words.
                let layout = unsafe { pack_a(a, ic, mc, pc, kp, ap) };
                for jr in (0..nc).step_by(NR) {
                    for ir in (0..mc).step_by(MR) {
                        let tile = Tile {
                            rows: (mc - ir).min(MR),
                            cols: (nc - jr).min(NR),
                            alpha,
                            beta,
                            ldc,
                        };
                        let at = (ic + ir) as isize * ldc + (jc + jr) as isize;
                        let (a, b) = (ap.add(ir * layout.row), bp.add(jr * kp));
                        // SAFETY: the blocks are packed; the tile lies within c.
                        unsafe { micro_kernel(kp, (a, layout), b, c.offset(at), &tile) };
                    }
                }
            }
        }
    }
}

/// How a micro-tile is stored: its rows and columns within `C`, `alpha`, `beta`, `C`'s row
/// stride.
struct Tile {
    rows: usize,
    cols: usize,
    alpha: f32,
    beta: f32,
    ldc: isize,
}

/// `C[tile] = alpha A B + beta C[tile]` over `kp` pairs, `A`'s [`MR`] rows from the
/// packed block (word `(r, p)` at `r * row + p * pair`) and `B`'s panel: 16 accumulators,
/// two `VDPBF16PS` per row and pair.
///
/// # Safety
/// `a` holds the tile's words, `b` `kp * NR` (64-byte aligned); the tile's `rows` x `cols`
/// lie within `C` from `c`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn micro_kernel(
    kp: usize,
    (a, layout): (*const u32, Layout),
    b: *const u32,
    c: *mut f32,
    t: &Tile,
) {
    let rows: [*const u32; MR] = std::array::from_fn(|r| a.wrapping_add(r * layout.row));
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kp {
        // SAFETY: within the panel (see above).
        let (b0, b1) = unsafe {
            let bp = b.add(p * NR);
            (
                _mm512_load_si512(bp.cast()),
                _mm512_load_si512(bp.add(16).cast()),
            )
        };
        let (b0, b1) = (as_bh(b0), as_bh(b1));
        let at = p * layout.pair;
        for (row, &ar) in acc.iter_mut().zip(&rows) {
            // SAFETY: as above.
            let pair = as_bh(_mm512_set1_epi32(unsafe { *ar.add(at) } as i32));
            row[0] = _mm512_dpbf16_ps(row[0], pair, b0);
            row[1] = _mm512_dpbf16_ps(row[1], pair, b1);
        }
    }
    let masks = [t.cols.min(16), t.cols.saturating_sub(16)].map(|n| {
        if n >= 16 {
            u16::MAX
        } else {
            (1u16 << n) - 1
        }
    });
    let (alpha, beta) = (_mm512_set1_ps(t.alpha), _mm512_set1_ps(t.beta));
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        for (v, (&sum, &mask)) in row.iter().zip(&masks).enumerate() {
            if mask == 0 {
                continue;
            }
            let dst = c.wrapping_offset(r as isize * t.ldc).wrapping_add(16 * v);
            let mut out = _mm512_mul_ps(alpha, sum);
            if t.beta != 0.0 {
                // SAFETY: the masked lanes are within C.
                out = _mm512_fmadd_ps(beta, unsafe { _mm512_maskz_loadu_ps(mask, dst) }, out);
            }
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(dst, mask, out) };
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn as_bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 512 bits of plain data.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}
