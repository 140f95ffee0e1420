//! The tensor engine, the product: microgpt's GPT on flat parameter buffers with batched
//! GEMMs (OpenBLAS by default, ndarray's own GEMM without the `openblas` feature), in f32
//! or f64. `ops` holds every layer's forward and backward pass; `model` composes them.

mod model;
pub mod ops;

pub use model::TensorGpt;

#[cfg(feature = "openblas")]
extern "C" {
    fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
}

/// Sets the threads the tensor engine's GEMMs may use (OpenBLAS's pool; ndarray's own
/// GEMM is single-threaded).
pub fn set_threads(threads: usize) {
    #[cfg(feature = "openblas")]
    // SAFETY: OpenBLAS takes any positive count and only resizes its thread pool.
    unsafe {
        openblas_set_num_threads(threads.clamp(1, 1024) as std::os::raw::c_int)
    };
    #[cfg(not(feature = "openblas"))]
    let _ = threads;
}
