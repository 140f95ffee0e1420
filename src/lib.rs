//! microgpt: Karpathy's microgpt.py in Rust — a bit-exact scalar autograd reference engine,
//! a fast tensor engine, and the pieces to train, check and sample tiny GPTs on a CPU.
//!
//! The folders are the architecture; each uses only those before it in this list:
//! `numerics` (floats, RNG, threads, BLAS) → `model` (config, engines, optimizer) →
//! `settings` (a run's settings and their rules) → `data` (input, corpus, vocabulary,
//! files) → `rundir` (the run directory on disk) → `training` (steps, sampling, inspection).
//! The command line (`src/main.rs`, `src/cli/`, `src/commands/`) is built on this library;
//! the library knows nothing of it.

pub mod data;
pub mod model;
pub mod numerics;
pub mod rundir;
pub mod settings;
pub mod training;
