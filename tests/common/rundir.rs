//! Helpers for the tests of run directories: a trained run to spoil, its files to restore,
//! and edits of the kinds a user (or a forger) makes.
#![allow(dead_code)]

use crate::common::cli::*;

/// The latest checkpoint's directory in `run`.
pub fn ckpt(run: &Path) -> PathBuf {
    checkpoint::load_model(run).unwrap().path
}

/// Edits `file` of the latest checkpoint and records its new checksum, as a forger who knew
/// the format would: the checks past the checksum must still hold.
pub fn forge(run: &Path, file: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let dir = ckpt(run);
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    let old = microgpt::data::files::sha256_hex(&bytes);
    edit(&mut bytes);
    std::fs::write(dir.join(file), &bytes).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let new = microgpt::data::files::sha256_hex(&bytes);
    std::fs::write(dir.join("manifest.json"), manifest.replace(&old, &new)).unwrap();
}

/// The offset of the tensor data in a safetensors file.
pub fn data_start(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Restores every file under `run` after each case.
pub struct Snapshot(Vec<(PathBuf, Vec<u8>)>);

impl Snapshot {
    pub fn take(run: &Path) -> Self {
        let mut files = Vec::new();
        let mut dirs = vec![run.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        Snapshot(files)
    }

    pub fn restore(&self) {
        for (p, bytes) in &self.0 {
            std::fs::write(p, bytes).unwrap();
        }
    }

    /// Errors as `--resume`, changing no file; then restores the snapshot.
    pub fn resume_fails(&self, run: &Path) -> String {
        let before = Snapshot::take(run);
        let err = fails(&["train", "--resume", s(run)]);
        for (p, bytes) in &before.0 {
            let now = std::fs::read(p).unwrap();
            assert!(
                p.ends_with(".lock") || now == *bytes,
                "{} changed",
                p.display()
            );
        }
        self.restore();
        err
    }
}

/// A run of 10 steps stopped after 5 in a scratch directory: (dir, dataset, run).
pub fn stopped_run(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = tmp(name);
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(
        &data,
        &run,
        &["--steps", "10", "--stop-after", "5", "--num-samples", "0"],
    );
    (dir, data, run)
}

/// Edits `key` (a `"key": value` line) of config.json.
pub fn edit_config(run: &Path, key: &str, value: &str) -> String {
    let text = std::fs::read_to_string(run.join("config.json")).unwrap();
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !found && trimmed.starts_with(&format!("\"{key}\":")) {
            found = true;
            let indent = &line[..line.len() - trimmed.len()];
            let comma = if trimmed.ends_with(',') { "," } else { "" };
            if value != "DELETE" {
                out.push_str(&format!("{indent}\"{key}\": {value}{comma}\n"));
            } else if !comma.is_empty() {
                continue;
            } else {
                // The last key of its object: drop the comma before it.
                out.truncate(out.trim_end().trim_end_matches(',').len());
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(found, "no {key} in config.json");
    std::fs::write(run.join("config.json"), &out).unwrap();
    out
}
