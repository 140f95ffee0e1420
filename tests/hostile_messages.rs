//! Issue #22, unclear messages: a full disk said once, the process that really holds a lock,
//! one line whatever a path holds. (`--max-memory` sizes: `hostile_counts.rs`.)
#![cfg(unix)]

mod common;

use common::cli::*;
use common::live::*;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at`; `None` where mounting is not allowed (not root).
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", s(at)])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        mounted.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk once said `cannot write X: …: cannot write X: …`: the save after the failure
/// fails the same way, and now says so once.
#[test]
fn a_full_disk_is_said_once() {
    let dir = tmp("hostile_enospc");
    let data = dataset(&dir);
    let Some(fs) = Tmpfs::mount(&dir.join("fs"), "1M") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (not a pass): cannot mount a tmpfs (needs root) to fill a disk"
        );
        return;
    };
    let run = fs.0.join("run");
    let flags = ["--steps", "1000000", "--save-every", "20"];
    let mut child = spawn(&train_args(&data, &run, &flags));
    let _reaper = Reaper(child.id());
    ready(&mut child);
    let start = Instant::now();
    while checkpoint::latest_step(&run).ok().flatten().is_none() {
        assert!(start.elapsed().as_secs() < 20, "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Fill the disk: the next save or metrics append fails.
    let _ = std::fs::write(fs.0.join("filler"), vec![0u8; 2 << 20]);
    let (code, err) = ends_within(child, 30);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    assert!(
        err.contains("training stopped; the last checkpoint (step"),
        "{err}"
    );
    // A failed append leaves no part of its rows: the file is still the one it wrote.
    assert!(!err.contains("replaced or changed"), "{err}");
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    resumes(&run);
}

/// A lock held by another program named the pid left in `.lock` by a writer long gone; it
/// names the process the kernel says holds it.
#[test]
fn a_lock_held_by_another_program_names_that_program() {
    let dir = tmp("hostile_lock_holder");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "10", "--stop-after", "5"]);
    std::fs::write(run.join(".lock"), "999999\n").unwrap();
    let held = std::fs::File::options()
        .read(true)
        .write(true)
        .open(run.join(".lock"))
        .unwrap();
    held.try_lock().unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    let holder = format!("is locked by process {} (", std::process::id());
    assert!(err.contains(&holder), "{err}");
    assert!(err.contains("which is not a microgpt writer"), "{err}");
    assert!(!err.contains("999999"), "{err}");
    drop(held);
    resumes(&run);
}

/// A path with a newline once gave a two-line error.
#[test]
fn an_error_is_one_line_whatever_a_path_holds() {
    let dir = tmp("hostile_newline");
    let odd = dir.join("two\nlines\r.txt");
    let err = fails(&["train", "--input", s(&odd)]);
    assert!(err.contains("two\\nlines\\r.txt"), "{err}");
}
