//! Helpers for the tests that drive the `microgpt` binary: running it, expecting success
//! or a one-line error, scratch directories, a small UTF-8 dataset, and comparing runs.
//! Tiny models on the scalar engine keep those tests fast.
#![allow(unused_imports)] // each test file uses its own share

pub use microgpt::rundir::checkpoint::{self, RunConfig};
pub use microgpt::rundir::metrics;
pub use std::path::{Path, PathBuf};
pub use std::process::{Command, Output, Stdio};

/// A small model that trains in milliseconds per step.
pub const TINY: &[&str] = &["--n-embd", "8", "--n-head", "2", "--block-size", "8"];

pub fn microgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run microgpt")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and expects success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = microgpt(args);
    assert!(
        out.status.success(),
        "microgpt {args:?} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs and expects a clear one-line error (no panic); returns it.
pub fn fails(args: &[&str]) -> String {
    let out = microgpt(args);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "microgpt {args:?} succeeded");
    assert!(
        !err.contains("panicked"),
        "microgpt {args:?} panicked:\n{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

pub fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("workflow")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A UTF-8 dataset of made-up names with non-ASCII letters (mission D), written to `dir`.
pub fn dataset(dir: &Path) -> PathBuf {
    let parts = ["ka", "mo", "ré", "lu", "zoë", "an", "ta", "ßi", "ni", "ø"];
    let mut lines = String::new();
    for (i, a) in parts.iter().enumerate() {
        for (j, b) in parts.iter().enumerate() {
            lines.push_str(&format!("{a}{b}\n"));
            if (i + j) % 3 == 0 {
                lines.push_str(&format!("{a}{b}{}\n", parts[(i * j) % parts.len()]));
            }
        }
    }
    let path = dir.join("names.txt");
    std::fs::write(&path, lines).unwrap();
    path
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `train` with the tiny model on `data` into `out`, plus `extra` flags; on the scalar
/// engine unless they name one.
pub fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--input", s(data), "--out", s(out)];
    args.extend_from_slice(TINY);
    if !extra.contains(&"--engine") {
        args.extend(["--engine", "scalar"]);
    }
    args.extend_from_slice(extra);
    microgpt(&args)
}

pub fn train_ok(data: &Path, out: &Path, extra: &[&str]) -> String {
    let o = train(data, out, extra);
    assert!(
        o.status.success(),
        "train {extra:?} failed:\n{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

pub fn rows(dir: &Path) -> Vec<metrics::Row> {
    metrics::read(&dir.join("metrics.csv")).unwrap()
}

/// Losses, learning rates, tokens and val losses, bit for bit (not the wall clock).
pub fn same_metrics(a: &Path, b: &Path) {
    let key = |r: &metrics::Row| {
        (
            r.step,
            r.loss.to_bits(),
            r.lr.to_bits(),
            r.tokens,
            r.val_loss.map(f64::to_bits),
        )
    };
    let (ra, rb) = (rows(a), rows(b));
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(key(x), key(y), "step {}", x.step);
    }
}

pub fn same_checkpoint(a: &Path, b: &Path) {
    let (ma, mb) = (
        checkpoint::load_model(a).unwrap(),
        checkpoint::load_model(b).unwrap(),
    );
    assert_eq!(ma.step, mb.step);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (pa, pb) = (ma.params().unwrap(), mb.params().unwrap());
    assert_eq!(bits(&pa), bits(&pb), "weights differ");
    let (oa, ob) = (
        checkpoint::load_optimizer(a, &ma).unwrap(),
        checkpoint::load_optimizer(b, &mb).unwrap(),
    );
    assert_eq!(oa.t, ob.t);
    let ((ma, va), (mb, vb)) = (oa.moments().unwrap(), ob.moments().unwrap());
    assert_eq!(bits(&ma), bits(&mb), "Adam m differs");
    assert_eq!(bits(&va), bits(&vb), "Adam v differs");
}
