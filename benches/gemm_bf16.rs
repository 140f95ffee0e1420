//! The bf16 GEMMs beside the f32 GEMM on the linear layers' shapes of nanoGPT's
//! shakespeare-char model (`common/d384_gemms.rs`), 1024 rows (one thread's block of a batch
//! of 8 x 256), one thread. Criterion's throughput is in FLOPs (read its `elem/s` as
//! FLOP/s); `examples/gemm_probe.rs` prints the same comparison side by side in one table.

mod common {
    pub mod d384_gemms;
}

use common::d384_gemms::{Layer, LAYERS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use microgpt::numerics::bf16::{self, Kernel, Scratch};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use std::time::Duration;

fn gemms(c: &mut Criterion) {
    let kernels: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.supported()).collect();
    for (layer, ic, oc) in LAYERS {
        let operands = Layer::new(1024, ic, oc);
        for p in operands.products() {
            let (m, k, n) = p.dims();
            let ((a, b), (a16, b16)) = (p.f32, p.bf16);
            let mut out = Array2::<f32>::zeros((m, n));
            let mut group = c.benchmark_group(format!("{layer} {} {m}x{k}x{n}", p.name));
            group
                .throughput(Throughput::Elements(2 * (m * k * n) as u64))
                .sample_size(10)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_secs(1));
            group.bench_function(BenchmarkId::from_parameter("f32"), |bench| {
                bench.iter(|| general_mat_mul(1.0, &a, &b, 0.0, &mut out))
            });
            for &kernel in &kernels {
                let mut scratch = Scratch::new(kernel);
                group.bench_function(BenchmarkId::from_parameter(kernel.name()), |bench| {
                    bench.iter(|| {
                        let mut c = out.view_mut();
                        bf16::gemm(kernel, 1.0, a16, b16, 0.0, &mut c, &mut scratch)
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, gemms);
criterion_main!(benches);
