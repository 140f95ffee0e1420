//! Helpers for the tests that act on a live run: starting `train` in the background, waiting
//! until it is ready, signalling it, and checking what it leaves.

use crate::common::cli::*;
use std::io::BufRead;
use std::process::Child;

/// `microgpt args`, running in the background with its output piped.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `train` with the tiny model on the scalar engine on `data` into `out`, plus `extra`.
pub fn train_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--input", s(data), "--out", s(out)];
    args.extend_from_slice(TINY);
    args.extend(["--engine", "scalar"]);
    args.extend_from_slice(extra);
    args
}

/// Waits until `child` has printed `num params`: its signal handler and lock are in place.
pub fn ready(child: &mut Child) {
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("num params") {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "train ended before it was ready");
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
}

pub fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The run in `dir` is whole: config, checkpoint, Adam state and the metrics it covers load.
pub fn whole(dir: &Path) -> usize {
    let (_, model) = checkpoint::load_run(dir).unwrap();
    checkpoint::load_optimizer(dir, &model).unwrap();
    let span = &model.manifest.metrics;
    assert_eq!(
        metrics::read_span(&dir.join("metrics.csv"), span)
            .unwrap()
            .len(),
        model.step
    );
    model.step
}

/// The run in `dir` is whole and trains two more steps.
pub fn resumes(dir: &Path) {
    let step = whole(dir);
    let stop = (step + 2).to_string();
    ok(&[
        "train",
        "--resume",
        s(dir),
        "--stop-after",
        &stop,
        "--quiet",
    ]);
    assert_eq!(rows(dir).len(), step + 2);
}

/// Waits for `child` to end, at most `secs` seconds (then kills it and fails): its exit
/// code and stderr.
pub fn ends_within(mut child: Child, secs: u64) -> (Option<i32>, String) {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

/// Kills the process `pid`, a child of this test, when dropped if it still runs: a test that
/// fails part way leaves no run training behind.
pub struct Reaper(pub u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        let after_name = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Still running (not a zombie), and still ours (not a reused pid).
        let ours = fields.get(1) == Some(&std::process::id().to_string().as_str());
        if ours && fields.first() != Some(&"Z") {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}
