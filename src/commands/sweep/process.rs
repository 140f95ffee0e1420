//! What a sweep gives each run's process: a signal when the sweep dies, the sweep's
//! interrupt passed on once, and its stderr copied to the run's log, its last line kept as
//! the run's own reason.

use anyhow::{Context, Result};
use microgpt::training::interrupt;
use std::process::{Child, ExitStatus};
use std::time::Duration;

/// Copies `from` to `to` as it comes; returns its last non-blank line.
pub fn tee_last_line(from: impl std::io::Read, mut to: std::fs::File) -> Option<String> {
    use std::io::{BufRead, Write};
    let mut last = None;
    for line in std::io::BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(to, "{line}");
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    last
}

/// Makes the run get [`interrupt::PARENT_DIED`] when the sweep dies (even by SIGKILL), so
/// that it saves and stops rather than train on as an orphan in its own process group
/// (Linux).
pub fn dies_with_the_sweep(command: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: getpid is async-signal-safe.
        let sweep = unsafe { libc::getpid() };
        // SAFETY: between fork and exec the closure calls only async-signal-safe functions
        // (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, interrupt::PARENT_DIED);
                // The sweep died before the request was made: no signal will come.
                if libc::getppid() != sweep {
                    libc::_exit(130);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Waits for a run's process; once the sweep is interrupted (Ctrl-C, SIGTERM, SIGHUP), sends
/// the run one SIGTERM, on which it saves at its next step boundary and exits.
pub fn wait_passing_interrupt(child: &mut Child) -> Result<ExitStatus> {
    let mut passed = false;
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for a run")? {
            return Ok(status);
        }
        if !passed && interrupt::requested() {
            #[cfg(unix)]
            // SAFETY: sends a signal to our own child; no memory is involved.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            passed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
