//! Ctrl-C as a request: the first one sets a flag that long loops check at a safe point
//! (a step boundary), so the run can save and say how to resume; a second one exits at once.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

/// How a command that can be interrupted ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Stopped by Ctrl-C after saving what it had.
    Interrupted,
}

/// Installs the Ctrl-C handler (once per process).
pub fn install() -> Result<()> {
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without saving");
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether Ctrl-C has been pressed since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
