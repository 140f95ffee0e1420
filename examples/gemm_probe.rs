//! GFLOP/s of our bf16 GEMM beside the f32 GEMM (OpenBLAS's sgemm, or matrixmultiply) on
//! the linear layers' shapes of nanoGPT's shakespeare-char model (d384; N = 8 x 256 rows),
//! one thread, the two taking turns, best of `--repeats`:
//!
//!     cargo run --release --example gemm_probe [-- --rows 2048 --repeats 5]
//!
//! Each layer's three products as the tensor engine calls them: forward `x Wᵀ`, `dx = dout W`
//! and `dW = doutᵀ x`, weights as the bf16 copy a bf16 run keeps.

use microgpt::numerics::bf16::{self, Operand, Scratch};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 17 + seed) % 97) as f32 / 97.0 - 0.5
    })
}

/// Best seconds of `f` over `repeats` runs.
fn best(repeats: usize, f: &mut dyn FnMut()) -> f64 {
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (n, repeats) = (arg("--rows", 2048), arg("--repeats", 5));
    let kernel = bf16::kernel().expect("a bf16 kernel");
    let mut scratch = Scratch::new(kernel);
    println!(
        "bf16 kernel: {} ({}); f32 GEMM: {}",
        kernel.name(),
        kernel.describe(),
        microgpt::numerics::blas::BACKEND
    );
    println!(
        "{:<28} {:>16} {:>10} {:>10} {:>7}",
        "product", "m x k x n", "f32 GF/s", "bf16 GF/s", "ratio"
    );
    let (mut f32_total, mut bf16_total, mut flops_total) = (0.0, 0.0, 0.0);
    for (layer, ic, oc) in [
        ("qkv", 384, 1152),
        ("attn proj", 384, 384),
        ("fc1", 384, 1536),
        ("fc2", 1536, 384),
        ("lm_head", 384, 65),
    ] {
        let x = filled(n, ic, 1);
        let dout = filled(n, oc, 2);
        let w = filled(oc, ic, 3);
        let wb = w.map(|&v| bf16::round(v));
        type Pair<'a> = (
            ArrayView2<'a, f32>,
            ArrayView2<'a, f32>,
            Operand<'a>,
            Operand<'a>,
        );
        let products: [(&str, Pair); 3] = [
            (
                "forward x Wᵀ",
                (
                    x.view(),
                    w.t(),
                    Operand::F32(x.view()),
                    Operand::Bf16(wb.t()),
                ),
            ),
            (
                "dx = dout W",
                (
                    dout.view(),
                    w.view(),
                    Operand::F32(dout.view()),
                    Operand::Bf16(wb.view()),
                ),
            ),
            (
                "dW = doutᵀ x",
                (
                    dout.t(),
                    x.view(),
                    Operand::F32(dout.t()),
                    Operand::F32(x.view()),
                ),
            ),
        ];
        for (what, (a, b, a16, b16)) in products {
            let (m, k, cols) = (a.nrows(), a.ncols(), b.ncols());
            let mut c = Array2::<f32>::zeros((m, cols));
            let flops = 2.0 * (m * k * cols) as f64;
            let (mut t32, mut t16) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..repeats {
                t32 = t32.min(best(1, &mut || general_mat_mul(1.0, &a, &b, 0.0, &mut c)));
                t16 = t16.min(best(1, &mut || {
                    bf16::gemm(kernel, 1.0, a16, b16, 0.0, &mut c.view_mut(), &mut scratch)
                }));
            }
            f32_total += t32;
            bf16_total += t16;
            flops_total += flops;
            println!(
                "{:<28} {:>16} {:>10.1} {:>10.1} {:>6.2}x",
                format!("{layer}: {what}"),
                format!("{m}x{k}x{cols}"),
                flops / t32 / 1e9,
                flops / t16 / 1e9,
                t32 / t16
            );
        }
    }
    println!(
        "{:<28} {:>16} {:>10.1} {:>10.1} {:>6.2}x",
        "all fifteen",
        "",
        flops_total / f32_total / 1e9,
        flops_total / bf16_total / 1e9,
        f32_total / bf16_total
    );
}
