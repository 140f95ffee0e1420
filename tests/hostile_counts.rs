//! Issue #22, counts that cannot abort: every count a user types is bounded by the memory
//! estimate before it reaches an allocator, and the estimate is checked against what the
//! kernel enforces — the dataset, the samples kept, the batches checked, the threads'
//! address space, `ulimit -v` — with sizes read exactly. (The control group's limit is read
//! by `training::limits::cgroup_room`, tested on fake cgroup trees in its unit tests: this
//! test cannot count on creating a cgroup.)
#![cfg(unix)]

mod common;
#[path = "common/rundir.rs"]
mod rundir;

use common::cli::*;
use common::deadline::run_str_within;
use rundir::*;
use std::time::Duration;

/// Runs `args` (at most 20 s) and expects a one-line error with every one of `needles`.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let o = run_str_within(args, Duration::from_secs(20)).expect("still running after 20 s");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line:\n{err}");
    for n in needles {
        assert!(err.contains(n), "no {n:?} in:\n{err}");
    }
    err
}

/// Item 8: `--num-samples 18446744073709551615` once panicked after the run was saved, and on
/// every resume; `sample --num-samples 1000000000000` and `gradcheck --batches` aborted.
#[test]
fn counts_are_refused_before_they_reach_an_allocator() {
    let (dir, data, run) = stopped_run("hostile_counts");
    let huge = "18446744073709551615";
    let fresh = dir.join("fresh");
    let mut args = vec!["train", "--input", s(&data), "--out", s(&fresh)];
    args.extend(["--num-samples", huge, "--steps", "3"]);
    refused(
        &args,
        &["keeping 18446744073709551615 samples", "--num-samples"],
    );
    assert!(!fresh.exists(), "nothing is created for a refused run");

    // A config.json holding the count (from an older microgpt): refused on resume, which
    // takes a smaller one.
    edit_config(&run, "num_samples", huge);
    refused(
        &["train", "--resume", s(&run)],
        &["keeping 18446744073709551615 samples"],
    );
    ok(&[
        "train",
        "--resume",
        s(&run),
        "--num-samples",
        "3",
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read_to_string(run.join("samples.txt"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    let sample = ["sample", "--run", s(&run), "--num-samples", "1000000000000"];
    refused(&sample, &["keeping 1000000000000 samples"]);
    let study = [&sample[..], &["--temperatures", "0.5,1"]].concat();
    refused(&study, &["keeping 2000000000000 samples"]);
    let gradcheck = [
        "gradcheck",
        "--input",
        s(&data),
        "--batches",
        "1000000000000000",
    ];
    refused(
        &gradcheck,
        &["keeping 1000000000000000 batches", "--batches"],
    );
}

/// Item 9: the dataset counts. A 64 MB input once took 1.14 GB past `--max-memory 600M`;
/// now its documents and tokens are estimated before they are built.
#[test]
fn the_dataset_counts_against_the_memory_limit() {
    let dir = tmp("hostile_dataset_memory");
    let data = dir.join("many.txt");
    let mut text = String::new();
    for i in 0..400_000u32 {
        text.push_str(&format!("n{}\n", i % 9973));
    }
    std::fs::write(&data, text).unwrap();
    let args = [
        "train",
        "--input",
        s(&data),
        "--steps",
        "2",
        "--num-samples",
        "0",
        "--quiet",
    ];
    let limited = [&args[..], &["--max-memory", "32M"]].concat();
    refused(
        &limited,
        &[
            s(&data),
            "documents and tokens needs about",
            "32.0 MiB --max-memory",
        ],
    );
    ok(&[&args[..], &["--max-memory", "1G"]].concat());
}

/// Item 9: threads beyond the pool's 1024 were clamped silently (now the setting's rule
/// refuses them), and `--threads 1024` under `ulimit -v` panicked spawning them; now both
/// are one-line errors.
#[test]
fn threads_beyond_the_pool_or_the_address_space_are_refused() {
    let dir = tmp("hostile_threads");
    let data = dataset(&dir);
    let base = [
        "train",
        "--input",
        s(&data),
        "--steps",
        "2",
        "--num-samples",
        "0",
    ];
    // A command-line error: exit 2.
    let args = [&base[..], &["--threads", "2000"]].concat();
    let o = run_str_within(&args, Duration::from_secs(20)).expect("still running after 20 s");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.trim() == "error: invalid value '2000' for '--threads <N>': must be at most 1024",
        "{err}"
    );
    for threads in ["1024", "300"] {
        let line = format!(
            "ulimit -v 1048576 && exec {} {} --threads {threads}",
            env!("CARGO_BIN_EXE_microgpt"),
            base.join(" ")
        );
        let out = Command::new("sh").args(["-c", &line]).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--threads {threads}:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("threads") && err.contains("ulimit -v"),
            "--threads {threads}: {err}"
        );
    }
}

/// Messages: `--max-memory 18446744073709551615` is 2^64 - 1 bytes, not "more than 2^64";
/// `1Gb` would be bits, not silently GiB; `1GB` is decimal, `1G` binary.
#[test]
fn sizes_are_read_exactly_and_bits_are_refused() {
    let dir = tmp("hostile_sizes");
    let data = dataset(&dir);
    let train = |size: &str| {
        let args = [
            "train",
            "--input",
            s(&data),
            "--steps",
            "2",
            "--num-samples",
            "0",
        ];
        microgpt(&[&args[..], &["--quiet", "--max-memory", size]].concat())
    };
    assert!(train("18446744073709551615").status.success());
    let err = text(&train("18446744073709551616").stderr);
    assert!(
        err.contains("is more than 18446744073709551615 bytes"),
        "{err}"
    );
    let err = text(&train("1Gb").stderr);
    assert!(err.contains("a lowercase b would mean bits"), "{err}");
    let err = text(&train("1KB").stderr);
    assert!(err.contains("more than the 1000 B --max-memory"), "{err}");
    let err = text(&train("1K").stderr);
    assert!(err.contains("more than the 1.0 KiB --max-memory"), "{err}");
}
