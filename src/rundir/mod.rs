//! The run directory: everything a run keeps on disk and how it is read back strictly —
//! `config.json` (`runconfig`), checkpoints (`checkpoint`, in safetensors files written by
//! `tensorfile`), `metrics.csv` (`metrics`) and the one-writer lock (`lock`). Uses
//! `numerics`, `model`, `settings` and `data`.

pub mod checkpoint;
pub mod lock;
pub mod metrics;
pub mod runconfig;
pub mod tensorfile;
