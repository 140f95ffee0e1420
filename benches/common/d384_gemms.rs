//! The linear layers' GEMMs of nanoGPT's shakespeare-char model (d384) as the tensor engine
//! calls them, for `benches/gemm_bf16.rs` and `examples/gemm_probe.rs`: each layer's forward
//! `x Wᵀ`, `dx = dout W` and `dW = doutᵀ x`, as f32 operands and as the operands of a bf16
//! run (activations in f32, rounded as they are packed; weights as the run's bf16 copy).

use microgpt::numerics::bf16::{self, Operand};
use ndarray::{Array2, ArrayView2};

/// (name, in features, out features).
pub const LAYERS: [(&str, usize, usize); 5] = [
    ("qkv", 384, 1152),
    ("proj", 384, 384),
    ("fc1", 384, 1536),
    ("fc2", 1536, 384),
    ("lm_head", 384, 65),
];

/// One layer's operands for a batch of `rows` positions.
pub struct Layer {
    x: Array2<f32>,
    dout: Array2<f32>,
    w: Array2<f32>,
    bits: Array2<u16>,
}

/// One product: its name, its f32 operands and its bf16 run's operands.
pub struct Product<'a> {
    pub name: &'static str,
    pub f32: (ArrayView2<'a, f32>, ArrayView2<'a, f32>),
    pub bf16: (Operand<'a>, Operand<'a>),
}

impl Product<'_> {
    /// (m, k, n).
    pub fn dims(&self) -> (usize, usize, usize) {
        let (a, b) = &self.f32;
        (a.nrows(), a.ncols(), b.ncols())
    }
}

fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 17 + seed) % 97) as f32 / 97.0 - 0.5
    })
}

impl Layer {
    pub fn new(rows: usize, ic: usize, oc: usize) -> Self {
        let w = filled(oc, ic, 3);
        Layer {
            x: filled(rows, ic, 1),
            dout: filled(rows, oc, 2),
            bits: w.map(|&v| bf16::round(v)),
            w,
        }
    }

    pub fn products(&self) -> [Product<'_>; 3] {
        let (x, dout, w, bits) = (&self.x, &self.dout, &self.w, &self.bits);
        [
            Product {
                name: "forward x Wᵀ",
                f32: (x.view(), w.t()),
                bf16: (Operand::F32(x.view()), Operand::Bf16(bits.t())),
            },
            Product {
                name: "dx = dout W",
                f32: (dout.view(), w.view()),
                bf16: (Operand::F32(dout.view()), Operand::Bf16(bits.view())),
            },
            Product {
                name: "dW = doutᵀ x",
                f32: (dout.t(), x.view()),
                bf16: (Operand::F32(dout.t()), Operand::F32(x.view())),
            },
        ]
    }
}
