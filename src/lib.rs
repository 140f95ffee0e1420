//! microgpt: Karpathy's microgpt.py in Rust — a bit-exact scalar autograd reference engine
//! and the pieces to train, check and sample tiny GPTs on a CPU.

// Links the system OpenBLAS that ndarray's GEMMs call.
#[cfg(feature = "openblas")]
extern crate blas_src;

pub mod cli;
pub mod config;
pub mod data;
pub mod dtype;
pub mod engine;
pub mod files;
pub mod gradcheck;
pub mod optim;
pub mod pymath;
pub mod rng;
pub mod run;
pub mod sample;
pub mod scalar;
pub mod tensor;
pub mod train;
