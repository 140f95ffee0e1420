//! microgpt: Karpathy's microgpt.py in Rust — a bit-exact scalar autograd reference engine,
//! a fast tensor engine, and the pieces to train, check and sample tiny GPTs on a CPU.
//! The command line (`src/main.rs`, `src/cli.rs`, `src/commands/`) is built on this library;
//! the library knows nothing of it.

pub mod bf16;
pub mod blas;
pub mod checkpoint;
pub mod choice;
pub mod config;
pub mod curves;
pub mod data;
pub mod dispatch;
pub mod dtype;
pub mod engine;
pub mod files;
pub mod gradcheck;
pub mod input;
pub mod inspect;
pub mod interrupt;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod pool;
pub mod progress;
pub mod pymath;
pub mod rng;
pub mod runconfig;
pub mod sample;
pub mod scalar;
pub mod settings;
pub mod tensor;
pub mod tensorfile;
pub mod train;
pub mod validate;
pub mod vocab;
