//! Ctrl-C, SIGTERM and SIGHUP (`timeout`, `kill`, a closed terminal) as a request: the first
//! one sets a flag that long loops check at a safe point (a step boundary), so the run can
//! save and say how to resume; a second one exits at once, without saving.

use anyhow::{Context, Result};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

/// How a command that can be interrupted ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Stopped by Ctrl-C or a termination signal after saving what it had.
    Interrupted,
}

/// Installs the handler of SIGINT, SIGTERM and SIGHUP (once per process; the `ctrlc`
/// crate's `termination` feature).
pub fn install() -> Result<()> {
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            // A closed terminal makes stderr fail: exit all the same.
            let _ = writeln!(
                std::io::stderr(),
                "\nsecond interrupt: exiting without saving"
            );
            std::process::exit(130);
        }
    })
    .context("cannot install the signal handler")?;
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            PARENT_DIED,
            on_parent_died as *const () as libc::sighandler_t,
        );
    }
    let _ = INSTALLED.set(());
    Ok(())
}

/// The signal a sweep's run gets when the sweep dies (`PR_SET_PDEATHSIG`). It is a request
/// to stop however often it comes: the kernel sends it again as each thread of the dying
/// sweep goes, which must not count as the second interrupt that exits without saving.
#[cfg(unix)]
pub const PARENT_DIED: libc::c_int = libc::SIGUSR1;

#[cfg(unix)]
extern "C" fn on_parent_died(_: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether an interrupt came since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
