//! bf16 GEMMs: `C = alpha A B + beta C` with the operands rounded to bf16 (round to nearest
//! even, as the hardware's `VCVTNEPS2BF16` rounds: [`round`]) and the products accumulated
//! in f32. The tensor engine's `--dtype bf16` runs its GEMMs here (`tensor::ops`).
//!
//! Two kernels compute the same numbers up to the order of the f32 sums ([`Kernel`]):
//! - [`Kernel::Avx512Bf16`]: our GEMM on `VDPBF16PS` (`avx512`), packed as BLIS packs, with
//!   pairs of `k` interleaved for the dot instruction; chosen at run time where the CPU has
//!   AVX512_BF16.
//! - [`Kernel::Portable`]: the operands rounded the same way into f32 scratch, then the
//!   f32 GEMM (`portable`): any machine, only slower.
//!
//! Owns the rounding, the operand views, both kernels and the choice between them. Uses
//! ndarray and the f32 GEMM it calls, nothing else of the crate; single-threaded (callers
//! cut a GEMM into blocks for their threads).

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod pack;
mod portable;

use ndarray::{s, ArrayView2, ArrayViewMut2};
use std::ops::Range;
use std::sync::OnceLock;

/// bf16 bits of `x`, rounded to nearest even exactly as `VCVTNEPS2BF16` rounds: subnormal
/// inputs become a zero of their sign (the instruction treats them as zero), NaNs stay NaN
/// (quieted), everything else through `half`'s round to nearest even.
#[inline]
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7f80_0000 == 0 {
        return (bits >> 16) as u16 & 0x8000;
    }
    half::bf16::from_f32(x).to_bits()
}

/// The f32 value of bf16 bits (exact).
#[inline]
pub fn widen(bits: u16) -> f32 {
    half::bf16::from_bits(bits).to_f32()
}

/// `dst[i] = round(src[i])`, on `kernel`'s instructions.
pub fn round_slice(kernel: Kernel, src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "round_slice lengths");
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Bf16 => {
            assert!(kernel.supported(), "AVX512_BF16 is not available");
            // SAFETY: the CPU has the instructions (checked above).
            unsafe { pack::round_slice(src, dst) }
        }
        _ => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = round(x)),
    }
}

/// A GEMM operand: f32 values (rounded to bf16 as they are packed) or bf16 bits.
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a> {
    F32(ArrayView2<'a, f32>),
    Bf16(ArrayView2<'a, u16>),
}

impl<'a> Operand<'a> {
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Operand::F32(v) => v.dim(),
            Operand::Bf16(v) => v.dim(),
        }
    }

    pub fn t(self) -> Self {
        match self {
            Operand::F32(v) => Operand::F32(v.reversed_axes()),
            Operand::Bf16(v) => Operand::Bf16(v.reversed_axes()),
        }
    }

    /// Rows `r` of the operand.
    pub fn rows(self, r: Range<usize>) -> Self {
        match self {
            Operand::F32(v) => Operand::F32(v.slice_move(s![r, ..])),
            Operand::Bf16(v) => Operand::Bf16(v.slice_move(s![r, ..])),
        }
    }

    /// Columns `r` of the operand.
    pub fn cols(self, r: Range<usize>) -> Self {
        match self {
            Operand::F32(v) => Operand::F32(v.slice_move(s![.., r])),
            Operand::Bf16(v) => Operand::Bf16(v.slice_move(s![.., r])),
        }
    }
}

/// Which code runs the bf16 GEMMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// Our GEMM on `VDPBF16PS` (x86-64 with AVX512_BF16).
    Avx512Bf16,
    /// bf16-rounded operands and the f32 GEMM.
    Portable,
}

/// The environment variable that chooses the kernel: `portable` forces the fallback,
/// `avx512_bf16` requires our kernel, unset (or `auto`) takes the best this CPU runs.
pub const KERNEL_VAR: &str = "MICROGPT_BF16_KERNEL";

impl Kernel {
    pub const ALL: [Kernel; 2] = [Kernel::Avx512Bf16, Kernel::Portable];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512Bf16 => "avx512_bf16",
            Kernel::Portable => "portable",
        }
    }

    /// What it is, for a run's output.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::Avx512Bf16 => "our GEMM on AVX512_BF16 (VDPBF16PS)",
            Kernel::Portable => "portable: operands rounded to bf16, f32 GEMM",
        }
    }

    /// Whether this CPU runs it.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Bf16 => {
                is_x86_feature_detected!("avx512bf16")
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512Bf16 => false,
            Kernel::Portable => true,
        }
    }

    /// The fastest kernel this CPU runs.
    pub fn best() -> Kernel {
        if Kernel::Avx512Bf16.supported() {
            Kernel::Avx512Bf16
        } else {
            Kernel::Portable
        }
    }

    /// The kernel [`KERNEL_VAR`] asks for (`None`: unset or `auto`).
    fn from_var(value: Option<&str>) -> Result<Kernel, KernelError> {
        let Some(value) = value.filter(|v| *v != "auto") else {
            return Ok(Kernel::best());
        };
        let kernel = Kernel::ALL
            .into_iter()
            .find(|k| k.name() == value)
            .ok_or_else(|| KernelError::Unknown(value.into()))?;
        if !kernel.supported() {
            return Err(KernelError::Unsupported(kernel.name()));
        }
        Ok(kernel)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum KernelError {
    #[error("{KERNEL_VAR}={0:?}: use avx512_bf16, portable or auto")]
    Unknown(String),
    #[error("{KERNEL_VAR}={0}: this CPU has no AVX512_BF16 (use portable or auto)")]
    Unsupported(&'static str),
}

/// The kernel bf16 runs use: [`KERNEL_VAR`]'s choice, read once.
pub fn kernel() -> Result<Kernel, KernelError> {
    static CHOICE: OnceLock<Result<Kernel, KernelError>> = OnceLock::new();
    CHOICE
        .get_or_init(|| Kernel::from_var(std::env::var(KERNEL_VAR).ok().as_deref()))
        .clone()
}

/// The packing space of one thread's bf16 GEMMs on one kernel: allocated at its full,
/// fixed size ([`Kernel::scratch_bytes`]) when made, then reused by every GEMM it is lent to,
/// so that GEMMs allocate nothing.
pub struct Scratch(Space);

enum Space {
    #[cfg(target_arch = "x86_64")]
    Packed(avx512::Packed),
    Rounded(Vec<f32>),
}

impl Scratch {
    pub fn new(kernel: Kernel) -> Self {
        Scratch(match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Bf16 => Space::Packed(avx512::Packed::new()),
            _ => Space::Rounded(portable::scratch()),
        })
    }
}

impl Kernel {
    /// The bytes of one [`Scratch`] for this kernel, for the memory estimate.
    pub fn scratch_bytes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Bf16 => avx512::SCRATCH_BYTES,
            _ => portable::SCRATCH_BYTES,
        }
    }
}

/// `c = alpha a b + beta c` on `kernel`, with `a`'s and `b`'s values rounded to bf16 and
/// the products summed in f32; `beta = 0` overwrites `c` whatever it held. `c`'s rows must
/// be contiguous; `scratch` must be made for `kernel`. Single-threaded; allocates nothing.
pub fn gemm(
    kernel: Kernel,
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Scratch,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "bf16 gemm shapes: [{m}, {k}] [{k2}, {n}] into {:?}",
        c.dim()
    );
    assert!(
        m == 0 || n <= 1 || c.strides()[1] == 1,
        "bf16 gemm: the rows of c must be contiguous"
    );
    if k == 0 {
        // No products: c = beta c (0 overwrites whatever c held).
        c.map_inplace(|x| *x = if beta == 0.0 { 0.0 } else { beta * *x });
        return;
    }
    match (kernel, &mut scratch.0) {
        #[cfg(target_arch = "x86_64")]
        (Kernel::Avx512Bf16, Space::Packed(packed)) => {
            assert!(kernel.supported(), "AVX512_BF16 is not available");
            // SAFETY: the CPU has the instructions (checked above); the shapes agree.
            unsafe { avx512::gemm(alpha, a, b, beta, c, packed) }
        }
        (Kernel::Portable, Space::Rounded(floats)) => portable::gemm(alpha, a, b, beta, c, floats),
        _ => panic!(
            "bf16 gemm: scratch made for another kernel than {}",
            kernel.name()
        ),
    }
}
