//! Training and using a model: a whole run (`run`: started or resumed by `start`, stepped
//! and saved by `session`), one step and the validation loss (`step`), sampling
//! (`sample`), what a model makes of a text (`inspect`), the gradient check (`gradcheck`),
//! a sweep's plan (`sweep`), the memory a run will need (`memory`) against what the kernel
//! allows (`limits`) and Ctrl-C as a request (`interrupt`). Uses every
//! other folder of the library; none of them uses it.

pub mod gradcheck;
pub mod inspect;
pub mod interrupt;
pub mod limits;
pub mod memory;
pub mod run;
pub mod sample;
mod session;
pub mod sizes;
pub mod start;
pub mod step;
pub mod sweep;
