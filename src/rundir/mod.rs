//! The run directory: everything a run keeps on disk and how it is read back strictly —
//! `config.json` (`runconfig`), checkpoints (`checkpoint`, committed by `save`, in
//! safetensors files written by `tensorfile`), `metrics.csv` (`metrics`), the one-writer lock
//! through which every write goes (`lock`), the rule for taking a directory for a new run
//! (`outdir`), and the older formats, read as this one (`legacy`). Uses
//! `numerics`, `model`, `settings` and `data`.

pub mod checkpoint;
pub mod legacy;
pub mod lock;
pub mod metrics;
pub mod outdir;
pub mod runconfig;
pub mod save;
pub mod tensorfile;
