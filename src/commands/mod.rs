//! One module per command. Each takes its parsed arguments and does the work with the
//! library.

pub mod compare;
pub mod curves;
pub mod figure;
pub mod gradcheck;
pub mod inspect;
pub mod progress;
pub mod sample;
pub mod sweep;
pub mod train;
