//! The memory estimate is the truth: `--max-memory`'s estimate of a run against the peak
//! resident memory of the real `microgpt train` run (the child's `ru_maxrss`), on models
//! large enough for their buffers to dominate and small enough for CI (a few seconds
//! each); and a save, streamed, raises the peak by less than one tensor.
//! `scripts/bench_vs_torch.py` measures the large configs of docs/performance.md.
//! Only with OpenBLAS: the program's own resident size, a constant of the estimate, is
//! measured for that build (the pure-Rust build's default run is off by more than 10%).
#![cfg(microgpt_openblas)]

mod common;

use microgpt::numerics::dtype::Dtype;
use microgpt::settings::RunSettings;
use microgpt::training::start::Start;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Tiny Shakespeare's first 400 KB cut into 300-character lines, as the benchmark's
/// long-context table trains on (every document fills the block).
fn long_documents(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(common::shared("data/tinyshakespeare.txt")?).unwrap();
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = text.chars().take(400_000).collect();
    let docs: Vec<String> = chars.chunks(300).map(|c| c.iter().collect()).collect();
    let path = dir.join("shakespeare_300.txt");
    std::fs::write(&path, docs.join("\n") + "\n").unwrap();
    Some(path)
}

/// The peak resident bytes of `microgpt train args`, from `wait4`'s usage of that child.
// Reaped by `wait4`, which `Child::wait` cannot replace: it alone gives the usage.
#[allow(clippy::zombie_processes)]
fn peak_rss(args: &[String]) -> u64 {
    let child = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .arg("train")
        .args(args)
        .args(["--quiet", "--num-samples", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: plain out-parameters for a child of this process.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "microgpt train {args:?} failed"
    );
    usage.ru_maxrss as u64 * 1024
}

/// A run's settings as the command line's `args` set them.
fn settings(input: &Path, model: [usize; 5], dtype: Dtype) -> (RunSettings, Vec<String>) {
    let [n_embd, n_layer, n_head, block_size, batch_size] = model;
    let mut s = RunSettings::default();
    s.data.input = Some(input.to_path_buf());
    (s.model.n_embd, s.model.n_layer, s.model.n_head) = (n_embd, n_layer, n_head);
    s.model.block_size = block_size;
    (s.schedule.batch_size, s.schedule.steps) = (batch_size, 3);
    (s.system.dtype, s.system.threads) = (dtype, 2);
    s.sampling.num_samples = 0;
    let mut args: Vec<String> = [
        "--input",
        input.to_str().unwrap(),
        "--steps",
        "3",
        "--threads",
        "2",
        "--dtype",
        &dtype.to_string(),
    ]
    .map(String::from)
    .to_vec();
    for (flag, v) in [
        ("--n-embd", n_embd),
        ("--n-layer", n_layer),
        ("--n-head", n_head),
        ("--block-size", block_size),
        ("--batch-size", batch_size),
    ] {
        args.extend([flag.to_string(), v.to_string()]);
    }
    (s, args)
}

const MIB: f64 = (1 << 20) as f64;

#[test]
fn the_estimate_is_within_ten_percent_of_the_peak() {
    let dir = common::cli::tmp("memory-estimate");
    let Some(long) = long_documents(&dir) else {
        return;
    };
    let Some(names) = common::names_path() else {
        return;
    };
    let mut runs = vec![(names, [16, 1, 4, 16, 1], Dtype::F64)];
    for (model, dtype) in [
        ([256, 4, 4, 64, 4], Dtype::F32),
        ([512, 4, 8, 64, 4], Dtype::F32),
        ([384, 2, 6, 128, 4], Dtype::F64),
    ] {
        runs.push((long.clone(), model, dtype));
    }
    let mut bad = Vec::new();
    println!(
        "{:<22} {:>5} {:>10} {:>10} {:>7}",
        "model", "dtype", "estimate", "peak RSS", "error"
    );
    for (input, model, dtype) in runs {
        let (s, args) = settings(&input, model, dtype);
        let estimate = Start::new(&s).unwrap().memory as f64;
        let peak = peak_rss(&args) as f64;
        let error = estimate / peak - 1.0;
        let ok = error.abs() <= 0.10;
        println!(
            "{:<22} {:>5} {:>8.1}Mi {:>8.1}Mi {:>+6.1}% {}",
            format!("{model:?}"),
            dtype.to_string(),
            estimate / MIB,
            peak / MIB,
            100.0 * error,
            if ok { "OK" } else { "NOT OK" }
        );
        if !ok {
            bad.push(format!("{model:?} {dtype}"));
        }
    }
    assert!(bad.is_empty(), "estimate off by more than 10%: {bad:?}");
}

#[test]
fn a_save_raises_the_peak_by_less_than_one_tensor() {
    let dir = common::cli::tmp("memory-save");
    let Some(long) = long_documents(&dir) else {
        return;
    };
    // The largest tensor: the MLP's [4C, C] in f32.
    let (c, model) = (512, [512, 4, 8, 64, 4]);
    let tensor = (4 * c * c * 4) as f64;
    let (_, args) = settings(&long, model, Dtype::F32);
    let never = peak_rss(&args);
    let mut saving = args.clone();
    let out = dir.join("run");
    saving.extend(["--save-every", "1", "--out", out.to_str().unwrap()].map(String::from));
    let every = peak_rss(&saving);
    let raised = every as f64 - never as f64;
    println!(
        "peak without saves {:.1} MiB, saving every step {:.1} MiB: {:+.2} MiB (one tensor {:.1} MiB)",
        never as f64 / MIB,
        every as f64 / MIB,
        raised / MIB,
        tensor / MIB
    );
    assert!(
        raised < tensor,
        "saving raised the peak by {:.1} MiB, more than one tensor",
        raised / MIB
    );
}
