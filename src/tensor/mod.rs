//! The tensor engine, the product: microgpt's GPT on flat parameter buffers with batched
//! GEMMs (OpenBLAS by default, ndarray's own GEMM without the `openblas` feature), in f32
//! or f64. `ops` holds every layer's forward and backward pass; `model` composes them.

mod model;
pub mod ops;

pub use model::TensorGpt;

/// Sets the threads the tensor engine's GEMMs may use (OpenBLAS's pool; the pure-Rust GEMM
/// is single-threaded).
pub fn set_threads(threads: usize) {
    crate::blas::set_threads(threads);
}
