//! The run directory: everything a run keeps on disk and how it is read back strictly —
//! `config.json` (`runconfig`), checkpoints (`checkpoint`, committed by `save`, in
//! safetensors files written by `tensorfile`), `metrics.csv` (`metrics`), the one-writer lock
//! through which every write goes (`lock`) and the rule for taking a directory for a new run
//! (`outdir`). Uses
//! `numerics`, `model`, `settings` and `data`.

pub mod checkpoint;
pub mod lock;
pub mod metrics;
pub mod outdir;
pub mod runconfig;
pub mod save;
pub mod tensorfile;
