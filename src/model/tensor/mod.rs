//! The tensor engine, the product: microgpt's GPT on flat parameter buffers with batched
//! GEMMs (OpenBLAS when the build finds it, else the pure-Rust GEMM: see `blas`), in f32
//! or f64, on every core asked for. `ops` and `attention` hold every layer's forward and
//! backward pass; `model` composes them; `crate::numerics::pool` runs them on threads.

pub mod attention;
mod buffers;
mod gemm;
mod model;
pub mod ops;
mod rows;

/// Row-wise work split among the pool's tasks without `unsafe`, for Adam as well.
pub(crate) use rows::for_rows;

pub use buffers::inventory;
pub use model::TensorGpt;

/// Sets the threads the tensor engine uses for everything: GEMMs (split into blocks, each
/// one single-threaded BLAS call), attention, the row-wise layers and Adam. Call it any
/// number of times; the same thread count gives bit-identical results. Errors past
/// `numerics::pool::MAX_THREADS`, or when the system will not start them.
pub fn set_threads(threads: usize) -> std::io::Result<()> {
    crate::numerics::pool::set_threads(threads)
}
