//! microgpt: Karpathy's microgpt.py in Rust — a bit-exact scalar autograd reference engine
//! and the pieces to train, check and sample tiny GPTs on a CPU.

pub mod blas;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod dtype;
pub mod engine;
pub mod files;
pub mod gradcheck;
pub mod interrupt;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod pymath;
pub mod report;
pub mod rng;
pub mod run;
pub mod sample;
pub mod sampling;
pub mod scalar;
pub mod sweep;
pub mod tensor;
pub mod train;
