//! Issue #12's hostile inputs, a test for each: configs too large for memory, inputs that
//! never end, a byte-order mark, negative numbers, no command, a non-UTF-8 path. Each ends
//! quickly in a one-line error (exit 2 for command-line errors, 1 otherwise): never an
//! abort, a kill or a hang.

mod common;

use common::cli::*;
use common::deadline::{run_str_within, run_within};
use std::time::Duration;

/// Long enough for a busy machine; the cases end in well under a second when fixed.
const QUICK: Duration = Duration::from_secs(30);

/// Runs `args` within [`QUICK`], expecting exit `code` and a one-line error with `needle`.
fn refused(args: &[&str], code: i32, needle: &str) -> String {
    let out = run_str_within(args, QUICK).unwrap_or_else(|| panic!("microgpt {args:?} hung"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "microgpt {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "microgpt {args:?}: no {needle:?} in {err}"
    );
    err
}

fn five_names(dir: &Path) -> PathBuf {
    let path = dir.join("five.txt");
    std::fs::write(&path, "emma\nolivia\nava\nisabella\nsophia\n").unwrap();
    path
}

#[test]
fn configs_beyond_memory_are_refused_before_allocating() {
    let dir = tmp("hostile_memory");
    let data = five_names(&dir);
    // The absurd values exceed the settings' own bounds: refused by the flags' own
    // rules (the settings' table) before anything is built.
    let absurd: &[&[&str]] = &[
        &["--n-embd", "100000", "--n-head", "1"],
        &["--block-size", "100000000"],
        &["--n-embd", "18446744073709551615", "--n-head", "1"],
        &["--batch-size", "1000000000"],
        &["--n-layer", "1000000000"],
    ];
    // Within the bounds, too large for this machine: refused by the memory estimate.
    let too_big: &[(&[&str], &str)] = &[
        (
            &["--n-embd", "65536", "--n-head", "1", "--n-layer", "64"],
            "n_embd 65536",
        ),
        (
            &["--block-size", "65536", "--batch-size", "65536"],
            "batches of 65536",
        ),
        (&["--n-layer", "1024", "--n-embd", "8192"], "n_layer 1024"),
    ];
    for engine in ["tensor", "scalar"] {
        let base = ["train", "--input", s(&data), "--engine", engine];
        for flags in absurd {
            refused(&[&base[..], flags].concat(), 2, "must be at most");
        }
        for (flags, needle) in too_big {
            refused(&[&base[..], flags].concat(), 1, needle);
        }
    }
    let mut args = vec![
        "gradcheck",
        "--input",
        s(&data),
        "--n-layer",
        "1024",
        "--n-embd",
        "8192",
    ];
    refused(&args, 1, "n_layer 1024");
    args.truncate(3);
    args.extend(["--max-memory", "64K"]);
    refused(&args, 1, "more than the 64.0 KiB --max-memory");
}

#[test]
fn max_memory_sets_the_limit() {
    let dir = tmp("hostile_max_memory");
    let data = five_names(&dir);
    let train = |limit: &str| {
        let run = dir.join(format!("run{limit}"));
        let args = [
            "train",
            "--input",
            s(&data),
            "--steps",
            "2",
            "--num-samples",
            "0",
            "--quiet",
            "--max-memory",
            limit,
            "--out",
            s(&run),
        ];
        (args.map(String::from), run)
    };
    let (args, _) = train("1K");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args, 1, "needs about");
    assert!(err.contains("more than the 1.0 KiB --max-memory"), "{err}");
    let (args, run) = train("1G");
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    refused(
        &["sample", "--run", s(&run), "--max-memory", "2K"],
        1,
        "sampling",
    );
    refused(
        &["train", "--max-memory", "lots"],
        2,
        "\"lots\" is not a positive size",
    );
}

#[test]
fn inputs_that_never_end_are_refused_quickly() {
    let zero = refused(&["train", "--input", "/dev/zero"], 1, "/dev/zero");
    assert!(zero.contains("larger than the 1 GiB limit"), "{zero}");
    let random = refused(&["train", "--input", "/dev/urandom"], 1, "/dev/urandom");
    assert!(random.contains("not valid UTF-8"), "{random}");
}

#[test]
fn a_pipe_is_read_to_its_end() {
    let dir = tmp("hostile_pipe");
    let data = five_names(&dir);
    // Process substitution: a pipe with no size, as `--input <(zcat names.gz)`.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} train --input <(cat {}) --steps 2 --num-samples 0 --quiet",
            env!("CARGO_BIN_EXE_microgpt"),
            s(&data)
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_byte_order_mark_is_dropped() {
    let dir = tmp("hostile_bom");
    let plain = five_names(&dir);
    let bom = dir.join("bom.txt");
    let text_with_bom = format!("\u{feff}{}", std::fs::read_to_string(&plain).unwrap());
    std::fs::write(&bom, text_with_bom).unwrap();
    assert_eq!(
        microgpt::data::read_text(&bom).unwrap(),
        microgpt::data::read_text(&plain).unwrap()
    );
    let run = dir.join("run");
    let stdout = ok(&[
        "train",
        "--input",
        s(&bom),
        "--steps",
        "2",
        "--num-samples",
        "0",
        "--out",
        s(&run),
    ]);
    assert!(stdout.contains("vocab size: 12\n"), "{stdout}");
    let config = RunConfig::read(&run).unwrap();
    assert!(!config.vocab.contains('\u{feff}'), "{:?}", config.vocab);
}

#[test]
fn negative_numbers_reach_their_own_check_in_every_command() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["gradcheck", "--tolerance", "-1"],
            "must be a positive number",
        ),
        (&["gradcheck", "--batches", "-2"], "must be at least 1"),
        (
            &["train", "--temperature", "-1"],
            "must be 0 (greedy) or a positive number",
        ),
        (&["train", "--n-embd", "-16"], "must be at least 1"),
        (&["train", "--seed", "-1"], "must be 0 or more"),
        (&["train", "--warmup-steps", "-5"], "must be 0 or more"),
        (
            &["train", "--weight-decay", "-0.1"],
            "must be a non-negative number",
        ),
        (
            &["sample", "--run", "x", "--temperature", "-0.5"],
            "must be 0 (greedy) or a positive number",
        ),
        (
            &["sample", "--run", "x", "--num-samples", "-3"],
            "must be 0 or more",
        ),
        (
            &["sweep", "--grid", "n_embd=8", "--lr", "-1"],
            "must be a positive number",
        ),
    ];
    for (args, needle) in cases {
        refused(args, 2, needle);
    }
    // compare takes no numbers: `-1` is a run directory like any other.
    refused(
        &["compare", "-1", "--out", "x"],
        1,
        "-1 is not a run directory",
    );
}

#[test]
fn no_command_lists_the_commands_in_one_line() {
    let err = refused(&[], 2, "no command given");
    assert!(
        err.contains("train, sample, sweep, compare, gradcheck"),
        "{err}"
    );
}

#[test]
fn a_non_utf8_path_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tmp("hostile_path");
    let name = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::copy(five_names(&dir), &name).unwrap();
    for flag in ["--input", "--out"] {
        let args: Vec<&std::ffi::OsStr> =
            ["train".as_ref(), flag.as_ref(), name.as_os_str()].into();
        let out = run_within(&args, QUICK).expect("hung");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("caf\u{fffd}.txt") && err.contains(flag),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
