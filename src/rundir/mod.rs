//! The run directory: everything a run keeps on disk and how it is read back strictly —
//! `config.json` (`runconfig`), checkpoints (`checkpoint`, in safetensors files written by
//! `tensorfile`), `metrics.csv` (`metrics`), the one-writer lock (`lock`), and the older
//! formats, read as this one (`legacy`). Uses
//! `numerics`, `model`, `settings` and `data`.

pub mod checkpoint;
pub mod legacy;
pub mod lock;
pub mod metrics;
pub mod runconfig;
pub mod tensorfile;
