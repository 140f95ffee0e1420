//! GFLOP/s of our bf16 GEMM beside the f32 GEMM (OpenBLAS's sgemm, or matrixmultiply) on
//! the linear layers' shapes of nanoGPT's shakespeare-char model (d384; N = 8 x 256 rows),
//! one thread, the two taking turns, best of `--repeats`:
//!
//!     cargo run --release --example gemm_probe [-- --rows 2048 --repeats 5]
//!
//! `--rows 1024` is one thread's block of the batch. The products are
//! `benches/common/d384_gemms.rs`'s.

#[path = "../benches/common/d384_gemms.rs"]
mod d384_gemms;

use d384_gemms::{Layer, LAYERS};
use microgpt::numerics::bf16::{self, Scratch};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// Seconds `f` takes.
fn timed(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn row(what: &str, dims: &str, flops: f64, (t32, t16): (f64, f64)) {
    let rate = |t: f64| flops / t / 1e9;
    println!(
        "{what:<28} {dims:>16} {:>10.1} {:>10.1} {:>6.2}x",
        rate(t32),
        rate(t16),
        t32 / t16
    );
}

fn main() {
    let (rows, repeats) = (arg("--rows", 2048), arg("--repeats", 5));
    let kernel = bf16::kernel().expect("a bf16 kernel");
    let mut scratch = Scratch::new(kernel);
    let backend = microgpt::numerics::blas::BACKEND;
    println!(
        "bf16 kernel: {} ({}); f32 GEMM: {backend}",
        kernel.name(),
        kernel.describe()
    );
    let head = ("product", "m x k x n", "f32 GF/s", "bf16 GF/s", "ratio");
    println!(
        "{:<28} {:>16} {:>10} {:>10} {:>7}",
        head.0, head.1, head.2, head.3, head.4
    );
    let (mut total, mut flops_total) = ((0.0, 0.0), 0.0);
    for (layer, ic, oc) in LAYERS {
        let operands = Layer::new(rows, ic, oc);
        for p in operands.products() {
            let (m, k, n) = p.dims();
            let ((a, b), (a16, b16)) = (p.f32, p.bf16);
            let mut c = Array2::<f32>::zeros((m, n));
            let (mut t32, mut t16) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..repeats {
                t32 = t32.min(timed(&mut || general_mat_mul(1.0, &a, &b, 0.0, &mut c)));
                let mut c = c.view_mut();
                let mut run = || bf16::gemm(kernel, 1.0, a16, b16, 0.0, &mut c, &mut scratch);
                t16 = t16.min(timed(&mut run));
            }
            let flops = 2.0 * (m * k * n) as f64;
            row(
                &format!("{layer}: {}", p.name),
                &format!("{m}x{k}x{n}"),
                flops,
                (t32, t16),
            );
            total = (total.0 + t32, total.1 + t16);
            flops_total += flops;
        }
    }
    row("all fifteen", "", flops_total, total);
}
