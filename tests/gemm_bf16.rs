//! The bf16 GEMMs (`microgpt::numerics::bf16`), both kernels: against an f64 product of the same
//! bf16-rounded operands, within the bound f32 accumulation allows, on odd shapes (1x1x1,
//! primes, every edge of the micro-tile and of the cache blocks), operand layouts (rows,
//! transposed, strided views, f32 values and bf16 bits) and `alpha`/`beta`; and the
//! rounding against the hardware's. The AVX512_BF16 kernel runs where the CPU has it (a
//! printed skip elsewhere); the portable one everywhere.

use microgpt::numerics::bf16::{self, Kernel, Operand, Scratch};
use microgpt::numerics::rng::Rng;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

/// The kernels this CPU runs; a printed skip for the other.
fn kernels() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| {
            let ok = k.supported();
            if !ok {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED (not a pass): this CPU has no AVX512_BF16 for the {} kernel",
                    k.name()
                );
            }
            ok
        })
        .collect()
}

/// Values of many magnitudes and both signs, most of them not bf16 numbers.
fn random(rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| {
        let scale = 2f64.powi(rng.randbelow(12) as i32 - 6);
        (rng.gauss(0.0, 1.0) * scale) as f32
    })
}

/// How an operand is handed to the GEMM.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Row-major, f32 values.
    Rows,
    /// The transpose of a row-major matrix (columns contiguous).
    Transposed,
    /// Every other row and column of a larger matrix: neither stride is 1.
    Strided,
    /// Row-major bf16 bits.
    Bits,
    /// Transposed bf16 bits.
    BitsTransposed,
}

const LAYOUTS: [Layout; 5] = [
    Layout::Rows,
    Layout::Transposed,
    Layout::Strided,
    Layout::Bits,
    Layout::BitsTransposed,
];

/// `x` stored as `layout` asks (in `store`), and the values the GEMM multiplies: `x`
/// rounded to bf16.
struct Stored {
    f32s: Array2<f32>,
    bits: Array2<u16>,
}

impl Stored {
    fn new(x: &Array2<f32>, layout: Layout) -> Self {
        let (r, c) = x.dim();
        let f32s = match layout {
            Layout::Transposed => x.t().as_standard_layout().into_owned(),
            Layout::Strided => {
                let mut big = Array2::from_elem((2 * r, 2 * c), f32::NAN);
                big.slice_mut(s![..;2, ..;2]).assign(x);
                big
            }
            _ => x.clone(),
        };
        let bits = match layout {
            Layout::BitsTransposed => x.t().map(|&v| bf16::round(v)),
            _ => x.map(|&v| bf16::round(v)),
        };
        Stored { f32s, bits }
    }

    fn operand(&self, layout: Layout) -> Operand<'_> {
        match layout {
            Layout::Rows => Operand::F32(self.f32s.view()),
            Layout::Transposed => Operand::F32(self.f32s.t()),
            Layout::Strided => Operand::F32(self.f32s.slice(s![..;2, ..;2])),
            Layout::Bits => Operand::Bf16(self.bits.view()),
            Layout::BitsTransposed => Operand::Bf16(self.bits.t()),
        }
    }
}

/// The worst `|got - want| / bound` over `c`, where `want` is the f64 product of the
/// bf16-rounded operands (exact products, f64 sums) and `bound` what f32 accumulation
/// allows: `k + 2` roundings of at most 2^-24 each of `alpha Σ|a||b| + |beta c0|` (the k
/// sums, alpha's product, beta's sum), plus `k` flushed subnormals of 2^-126.
fn worst_ratio(
    got: &ArrayView2<'_, f32>,
    a: &Array2<f32>,
    b: &Array2<f32>,
    (alpha, beta): (f32, f32),
    c0: &Array2<f32>,
    round: bool,
) -> f64 {
    let k = a.ncols();
    let r = |x: f32| {
        if round {
            bf16::widen(bf16::round(x)) as f64
        } else {
            x as f64
        }
    };
    let (ar, br) = (a.map(|&x| r(x)), b.map(|&x| r(x)));
    let u = 2f64.powi(-24);
    let mut worst = 0.0f64;
    for ((i, j), &g) in got.indexed_iter() {
        let (mut sum, mut mag) = (0.0f64, 0.0f64);
        for p in 0..k {
            sum += ar[[i, p]] * br[[p, j]];
            mag += (ar[[i, p]] * br[[p, j]]).abs();
        }
        let base = if beta == 0.0 {
            0.0
        } else {
            beta as f64 * c0[[i, j]] as f64
        };
        let want = alpha as f64 * sum + base;
        let scale = alpha.abs() as f64 * mag + base.abs();
        let bound = (k + 2) as f64 * u * scale + k as f64 * 2f64.powi(-126) + f64::MIN_POSITIVE;
        worst = worst.max((g as f64 - want).abs() / bound);
    }
    worst
}

/// Runs one case on `kernel`; `c` is a view into a wider buffer (rows not adjacent), filled
/// with NaN where `beta = 0` (it must not be read).
fn case(
    kernel: Kernel,
    (m, k, n): (usize, usize, usize),
    layouts: (Layout, Layout),
    ab: (f32, f32),
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let (a, b) = (random(&mut rng, m, k), random(&mut rng, k, n));
    let (sa, sb) = (Stored::new(&a, layouts.0), Stored::new(&b, layouts.1));
    let c0 = random(&mut rng, m, n);
    let mut buf = Array2::from_elem((m, n + 3), f32::NAN);
    if ab.1 != 0.0 {
        buf.slice_mut(s![.., ..n]).assign(&c0);
    }
    let mut c: ArrayViewMut2<'_, f32> = buf.slice_mut(s![.., ..n]);
    bf16::gemm(
        kernel,
        ab.0,
        sa.operand(layouts.0),
        sb.operand(layouts.1),
        ab.1,
        &mut c,
        &mut Scratch::new(kernel),
    );
    let worst = worst_ratio(&c.view(), &a, &b, ab, &c0, true);
    assert!(
        worst <= 1.0,
        "{} kernel, m {m} k {k} n {n}, {layouts:?}, alpha/beta {ab:?}: error {worst:.3} times the f32 bound",
        kernel.name()
    );
    assert!(
        buf.slice(s![.., n..]).iter().all(|x| x.is_nan()),
        "{} kernel wrote outside c",
        kernel.name()
    );
}

#[test]
fn odd_shapes_and_every_edge_of_the_tiles_match_the_f64_product() {
    // The micro-tile is 8 x 32, k goes in pairs, blocks of 512 pairs (1,024 values of k).
    let ms = [1, 2, 7, 8, 9, 13, 15, 16, 17, 31, 37];
    let ns = [1, 3, 15, 16, 17, 31, 32, 33, 47, 63, 65, 67];
    let ks = [
        1, 2, 3, 5, 30, 31, 33, 64, 131, 383, 384, 385, 769, 1023, 1024, 1025, 2049,
    ];
    for kernel in kernels() {
        let mut seed = 0;
        for &m in &ms {
            for &n in &ns {
                for &k in &ks {
                    seed += 1;
                    // Layouts and alpha/beta in turn, so every pairing meets every shape kind.
                    let la = LAYOUTS[seed as usize % 5];
                    let lb = LAYOUTS[(seed as usize / 5) % 5];
                    let ab = [(1.0, 0.0), (1.0, 1.0), (0.125, 1.0), (-3.0, 0.5)][seed as usize % 4];
                    case(kernel, (m, k, n), (la, lb), ab, seed);
                }
            }
        }
    }
}

#[test]
fn every_layout_pairing_and_the_cache_block_edges_match_the_f64_product() {
    // Rows around the A block (256), columns around the B block (1024) and k around the
    // block of k (1024) of both kernels.
    let shapes = [
        (1, 1, 1),
        (255, 67, 33),
        (257, 385, 45),
        (9, 131, 1025),
        (37, 3, 1023),
        (255, 1025, 1025),
        (257, 2049, 31),
    ];
    for kernel in kernels() {
        for (s, &shape) in shapes.iter().enumerate() {
            for (i, &la) in LAYOUTS.iter().enumerate() {
                for (j, &lb) in LAYOUTS.iter().enumerate() {
                    case(
                        kernel,
                        shape,
                        (la, lb),
                        (1.0, 0.0),
                        (100 * s + 10 * i + j) as u64,
                    );
                }
            }
        }
    }
}

#[test]
fn the_operands_are_rounded_to_bf16() {
    // Against the product of the unrounded values the same results fall far outside the f32
    // bound: the bound sees the rounding, so the tests above would catch a kernel that
    // skipped it.
    for kernel in kernels() {
        let mut rng = Rng::new(7);
        let (a, b) = (random(&mut rng, 9, 40), random(&mut rng, 40, 17));
        let mut c = Array2::zeros((9, 17));
        bf16::gemm(
            kernel,
            1.0,
            Operand::F32(a.view()),
            Operand::F32(b.view()),
            0.0,
            &mut c.view_mut(),
            &mut Scratch::new(kernel),
        );
        let unrounded = worst_ratio(&c.view(), &a, &b, (1.0, 0.0), &c, false);
        assert!(unrounded > 100.0, "{}: {unrounded}", kernel.name());
    }
}

#[test]
fn empty_shapes_leave_or_scale_c() {
    for kernel in kernels() {
        // c = beta c after a product over k = 0; nothing at all for m = 0.
        let run = |(m, k, n): (usize, usize, usize), beta: f32, c: &mut Array2<f32>| {
            let (a, b) = (Array2::<f32>::zeros((m, k)), Array2::<f32>::zeros((k, n)));
            let (a, b) = (Operand::F32(a.view()), Operand::F32(b.view()));
            let mut scratch = Scratch::new(kernel);
            bf16::gemm(kernel, 1.0, a, b, beta, &mut c.view_mut(), &mut scratch);
        };
        let mut c = Array2::from_elem((3, 2), 2.0f32);
        run((3, 0, 2), 0.5, &mut c);
        assert!(c.iter().all(|&x| x == 1.0), "{}: {c}", kernel.name());
        run((3, 0, 2), 0.0, &mut c);
        assert!(c.iter().all(|&x| x == 0.0), "{}: {c}", kernel.name());
        run((0, 4, 2), 0.0, &mut Array2::zeros((0, 2)));
    }
}

#[test]
fn rounding_is_round_to_nearest_even_as_the_hardware_rounds() {
    let cases: [(u32, u16); 10] = [
        (0x3f80_0000, 0x3f80), // 1
        (0x3f80_8000, 0x3f80), // a tie: to the even 1
        (0x3f81_8000, 0x3f82), // a tie: to the even 1 + 2^-6
        (0x3f80_8001, 0x3f81), // just past the tie
        (0x3f80_7fff, 0x3f80), // just below it
        (0x7f7f_ffff, 0x7f80), // f32::MAX rounds to infinity
        (0x0000_0001, 0x0000), // a subnormal: flushed to zero, as the instruction does
        (0x8040_0000, 0x8000), // a negative subnormal: to -0
        (0x7f80_0001, 0x7fc0), // a signalling NaN: quieted
        (0xff80_0000, 0xff80), // -infinity
    ];
    for (x, want) in cases {
        let got = bf16::round(f32::from_bits(x));
        assert_eq!(got, want, "round({x:#010x}) = {got:#06x}, want {want:#06x}");
    }
    // The portable rounding against VCVTNE2PS2BF16 itself: every 251st bit pattern, and
    // every pattern around each tie and at the ends of the subnormal and NaN ranges.
    if !Kernel::Avx512Bf16.supported() {
        let _ = kernels();
        return;
    }
    let mut xs: Vec<f32> = (0..=u32::MAX).step_by(251).map(f32::from_bits).collect();
    for hi in 0..=0xffffu32 {
        for lo in [0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff] {
            xs.push(f32::from_bits(hi << 16 | lo));
        }
    }
    let mut hw = vec![0u16; xs.len()];
    let mut sw = vec![0u16; xs.len()];
    bf16::round_slice(Kernel::Avx512Bf16, &xs, &mut hw);
    bf16::round_slice(Kernel::Portable, &xs, &mut sw);
    let differ = xs.iter().zip(hw.iter().zip(&sw)).find(|(_, (h, s))| h != s);
    assert!(
        differ.is_none(),
        "{} patterns: hardware and portable rounding differ at {:?}",
        xs.len(),
        differ.map(|(x, (h, s))| (x.to_bits(), h, s))
    );
}
