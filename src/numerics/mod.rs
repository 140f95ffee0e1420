//! Numbers, below everything else: the float types the engines run in (`dtype`), CPython's
//! random stream (`rng`), the thread pool (`pool`) and the CBLAS the GEMMs call (`blas`).
//! Uses nothing else of the crate.

pub mod bf16;
pub mod blas;
pub mod dtype;
pub mod pool;
pub mod rng;

/// Python's `x ** e` on floats is the C library's `pow`, which the reference relies on.
/// `black_box` keeps the compiler from rewriting constant exponents (`2.0`, `0.5`, `-1.0`)
/// into `x*x`, `sqrt`, `1/x`, which round differently on a fraction of inputs.
#[inline]
pub fn pow(x: f64, e: f64) -> f64 {
    x.powf(std::hint::black_box(e))
}
