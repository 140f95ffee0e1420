//! Python float semantics the reference relies on.

/// Python's `x ** e` on floats is the C library's `pow`. `black_box` keeps the compiler from
/// rewriting constant exponents (`2.0`, `0.5`, `-1.0`) into `x*x`, `sqrt`, `1/x`, which round
/// differently on a fraction of inputs.
#[inline]
pub fn pow(x: f64, e: f64) -> f64 {
    x.powf(std::hint::black_box(e))
}
