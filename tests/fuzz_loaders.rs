//! Seeded mutation fuzzing of the run-directory loaders: every file a fresh `train --out`
//! wrote is mutated (bit flips, truncation, insertion, deletion, extreme numbers, JSON
//! value swaps, and the same inside the safetensors header), and every mutated directory
//! must load correctly or give an error: never a panic, an abort or a hang. The library's
//! loaders take most cases, in-process and time-bounded; a smaller share goes through the
//! binary (`sample`, `compare`, `train --resume`) with a time limit per case. The loaders
//! read whatever files there are, so a change of the checkpoint format needs no change here.

mod common;
#[path = "common/rundir.rs"]
mod rundir;

use common::cli::*;
use common::deadline::run_str_within;
use serde_json::Value;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// SplitMix64: a seeded, reproducible stream of mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Numbers that have broken loaders: zero, huge, overflowing, negative, not a number.
const EXTREMES: [&str; 9] = [
    "0",
    "1",
    "-1",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e308",
    "NaN",
    "1.5",
];

/// One mutation of `bytes`, described for the failure message.
fn mutate(bytes: &[u8], safetensors: bool, rng: &mut Rng) -> (Vec<u8>, String) {
    if safetensors && bytes.len() > 8 && rng.below(2) == 0 {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        if let Some(header) = bytes.get(8..8 + n) {
            let (new, what) = mutate_text(header, rng);
            let mut out = (new.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&new);
            out.extend_from_slice(&bytes[8 + n..]);
            return (out, format!("header: {what}"));
        }
    }
    match rng.below(4) {
        0 => mutate_text(bytes, rng),
        _ => mutate_bytes(bytes, rng),
    }
}

fn mutate_bytes(bytes: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut out = bytes.to_vec();
    let at = rng.below(out.len() + 1);
    match rng.below(4) {
        0 => {
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let i = rng.below(out.len());
                if let Some(b) = out.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            (out, format!("{flips} bit flips"))
        }
        1 => {
            out.truncate(at);
            (out, format!("truncated to {at} bytes"))
        }
        2 => {
            let new: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            out.splice(at..at, new.iter().copied());
            (out, format!("{new:?} inserted at {at}"))
        }
        _ => {
            let end = (at + 1 + rng.below(64)).min(out.len());
            out.drain(at.min(end)..end);
            (out, format!("bytes {at}..{end} deleted"))
        }
    }
}

/// A JSON value swap (in JSON text) or an extreme number in place of one in the text.
fn mutate_text(bytes: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    if let Ok(mut json) = serde_json::from_slice::<Value>(bytes) {
        if rng.below(2) == 0 {
            let mut leaves = Vec::new();
            collect_leaves(&json, String::new(), &mut leaves);
            if !leaves.is_empty() {
                let (path, new) = swap_leaf(&mut json, &leaves, rng);
                let what = format!("{path} = {new}");
                return (serde_json::to_vec_pretty(&json).unwrap(), what);
            }
        }
    }
    let digits: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if digits.is_empty() {
        return mutate_bytes(bytes, rng);
    }
    let start = digits[rng.below(digits.len())];
    let end = (start..bytes.len())
        .find(|&i| !bytes[i].is_ascii_digit())
        .unwrap_or(bytes.len());
    let new = EXTREMES[rng.below(EXTREMES.len())];
    let mut out = bytes.to_vec();
    out.splice(start..end, new.bytes());
    (out, format!("number at {start} = {new}"))
}

fn collect_leaves(v: &Value, path: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| collect_leaves(v, format!("{path}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect_leaves(v, format!("{path}/{i}"), out)),
        _ => out.push(path),
    }
}

/// Sets a random leaf to another leaf's value or to an extreme one.
fn swap_leaf(json: &mut Value, leaves: &[String], rng: &mut Rng) -> (String, Value) {
    let path = leaves[rng.below(leaves.len())].clone();
    let new = if rng.below(2) == 0 {
        let other = &leaves[rng.below(leaves.len())];
        json.pointer(other).cloned().unwrap_or(Value::Null)
    } else {
        match rng.below(4) {
            0 => Value::Null,
            1 => Value::String(String::new()),
            _ => serde_json::from_str(EXTREMES[rng.below(EXTREMES.len())])
                .unwrap_or_else(|_| Value::String("NaN".into())),
        }
    };
    *json.pointer_mut(&path).unwrap() = new.clone();
    (path, new)
}

/// The files of a fresh run directory.
fn fresh_run(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let data = dataset(dir);
    let run = dir.join("run");
    train_ok(
        &data,
        &run,
        &["--steps", "4", "--num-samples", "1", "--quiet"],
    );
    let mut files = Vec::new();
    collect(&run, &run, &mut files);
    files.sort();
    files
}

/// Every file under `dir` (checkpoint directories included) as its path relative to
/// `root` and its bytes.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

/// Writes `files` into `dir` with one of them mutated; returns what was done.
fn write_case(dir: &Path, files: &[(String, Vec<u8>)], rng: &mut Rng) -> String {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let target = rng.below(files.len());
    let mut what = String::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let bytes = if i == target {
            let (new, how) = mutate(bytes, name.ends_with(".safetensors"), rng);
            what = format!("{name}: {how}");
            new
        } else {
            bytes.clone()
        };
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    what
}

/// Every loader on `dir`; a successful load must be consistent.
fn load_everything(dir: &Path) {
    let _ = RunConfig::read(dir);
    let _ = metrics::read(&dir.join("metrics.csv"));
    if let Ok((run, model)) = checkpoint::load_run(dir) {
        // What loaded checked reads whole.
        let n = model.params().unwrap().len();
        assert_eq!(n, model.config.layout().total);
        assert_eq!(model.config, run.model);
        if let Ok(opt) = checkpoint::load_optimizer(dir, &model) {
            let (m, v) = opt.moments().unwrap();
            assert_eq!((m.len(), v.len()), (n, n));
        }
    }
}

#[test]
fn mutated_run_directories_load_or_fail_cleanly_in_the_library() {
    let dir = tmp("fuzz_library");
    let files = fresh_run(&dir);
    let mut rng = Rng(0x5eed_0001);
    let started = Instant::now();
    let mut cases = 0;
    // A few seconds of cases, however fast the machine.
    while cases < 100 || (started.elapsed() < Duration::from_secs(5) && cases < 20_000) {
        let case = dir.join("case");
        let what = write_case(&case, &files, &mut rng);
        let (tx, rx) = mpsc::channel();
        let worker = case.clone();
        std::thread::spawn(move || {
            load_everything(&worker);
            let _ = tx.send(());
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("case {cases} ({what}) panicked"),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("case {cases} ({what}) hung"),
        }
        cases += 1;
    }
    report(&format!(
        "fuzz (library): {cases} mutated run directories in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn mutated_run_directories_load_or_fail_cleanly_in_the_binary() {
    const CASES: usize = 60;
    let dir = tmp("fuzz_binary");
    let files = fresh_run(&dir);
    let mut rng = Rng(0x5eed_0002);
    let started = Instant::now();
    let mut runs = 0;
    for case in 0..CASES {
        let run = dir.join(format!("case{case}"));
        let what = write_case(&run, &files, &mut rng);
        let out_dir = run.join("compare");
        let commands: [&[&str]; 3] = [
            &["sample", "--run", s(&run), "--num-samples", "2"],
            &["compare", s(&run), "--out", s(&out_dir)],
            &["train", "--resume", s(&run), "--steps", "6", "--quiet"],
        ];
        for args in commands {
            let out = run_str_within(args, Duration::from_secs(60))
                .unwrap_or_else(|| panic!("case {case} ({what}): {args:?} hung"));
            let err = text(&out.stderr);
            let code = out.status.code();
            assert!(
                matches!(code, Some(0 | 1)) && !err.contains("panicked"),
                "case {case} ({what}): {args:?} ended with {:?}: {err}",
                out.status
            );
            if code == Some(1) {
                let last = err.trim().lines().last().unwrap_or("");
                assert!(last.starts_with("error: "), "case {case} ({what}): {err}");
            }
            runs += 1;
        }
    }
    report(&format!(
        "fuzz (binary): {runs} commands on {CASES} mutated run directories in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// Prints past the test harness's capture, so the counts show in `cargo test`'s output.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The numbers that would have made the loaders allocate or loop without end, set on
/// purpose: a checkpoint whose config claims 2^64 layers, a config.json with 2^64 documents.
#[test]
fn absurd_numbers_in_a_run_directory_are_errors() {
    let dir = tmp("fuzz_absurd");
    let files = fresh_run(&dir);
    let run = dir.join("absurd");
    let write = |edit: &dyn Fn(&str, &[u8]) -> Vec<u8>| {
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).unwrap();
        for (name, bytes) in &files {
            let path = run.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, edit(name, bytes)).unwrap();
        }
    };
    // Forged with a matching checksum, so the loader's own checks meet the number.
    write(&|_, bytes| bytes.to_vec());
    rundir::forge(&run, "model.safetensors", |bytes| {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let config = &mut header["__metadata__"]["config"];
        let mut model: Value = serde_json::from_str(config.as_str().unwrap()).unwrap();
        model["n_layer"] = u64::MAX.into();
        *config = Value::String(model.to_string());
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&bytes[8 + n..]);
        *bytes = out;
    });
    let err = fails(&["sample", "--run", s(&run)]);
    assert!(err.contains("more parameters than the file holds"), "{err}");

    write(&|name, bytes| {
        if name != "config.json" {
            return bytes.to_vec();
        }
        let mut config: Value = serde_json::from_slice(bytes).unwrap();
        config["num_docs"] = u64::MAX.into();
        serde_json::to_vec(&config).unwrap()
    });
    let err = fails(&["sample", "--run", s(&run)]);
    assert!(err.contains("num_docs"), "{err}");
    let err = fails(&["train", "--resume", s(&run), "--steps", "6"]);
    assert!(err.contains("num_docs"), "{err}");
}
