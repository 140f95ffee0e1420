//! Bad input gets a one-line error naming the problem and a non-zero exit, never a panic;
//! the default dataset is downloaded when `input.txt` is missing.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn microgpt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A fresh empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microgpt-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Asserts a clean failure: non-zero exit, no panic, and an `error:` line naming the problem.
fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error") && l.contains(needle)),
        "no error line with {needle:?} in: {stderr}"
    );
}

fn train(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--num-samples", "1"];
    args.extend_from_slice(extra);
    for (flag, value) in [("--steps", "2"), ("--engine", "scalar")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    microgpt(dir, &args)
}

#[test]
fn dataset_problems_are_named() {
    let dir = temp_dir("dataset");
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    std::fs::write(dir.join("blank.txt"), "\n  \r\n\t\n").unwrap();
    std::fs::write(dir.join("latin1.txt"), b"ann\nzo\xeb\n").unwrap();
    std::fs::create_dir_all(dir.join("a_directory")).unwrap();

    assert_fails_with(
        &train(&dir, &["--input", "missing.txt"]),
        "cannot read dataset missing.txt",
    );
    assert_fails_with(
        &train(&dir, &["--input", "a_directory"]),
        "cannot read dataset a_directory",
    );
    assert_fails_with(
        &train(&dir, &["--input", "empty.txt"]),
        "empty or all whitespace",
    );
    assert_fails_with(
        &train(&dir, &["--input", "blank.txt"]),
        "empty or all whitespace",
    );
    assert_fails_with(&train(&dir, &["--input", "latin1.txt"]), "not valid UTF-8");
}

#[test]
fn config_problems_are_named() {
    let dir = temp_dir("config");
    std::fs::write(dir.join("tiny.txt"), "ann\nbob\n").unwrap();
    let bad: &[(&[&str], &str)] = &[
        (
            &["--n-embd", "10", "--n-head", "4"],
            "n_embd (10) must be divisible by n_head (4)",
        ),
        (&["--n-embd", "0"], "must be at least 1"),
        (&["--n-head", "0"], "must be at least 1"),
        (&["--n-layer", "0"], "must be at least 1"),
        (&["--block-size", "0"], "must be at least 1"),
        (&["--steps", "0"], "must be at least 1"),
        (&["--batch-size", "0"], "must be at least 1"),
        (
            &["--temperature", "1e-310"],
            "must be 0 (greedy) or at least",
        ),
        (
            &["--temperature", "-0.5"],
            "must be 0 (greedy) or a positive number",
        ),
        (&["--lr", "nan"], "must be a positive number"),
        (&["--engine", "quantum"], "invalid value 'quantum'"),
        (&["--activation", "tanh"], "invalid value 'tanh'"),
        (&["--n-embd", "sixteen"], "invalid value 'sixteen'"),
        (&["--no-such-flag"], "unexpected argument '--no-such-flag'"),
    ];
    for (extra, needle) in bad {
        let mut args = vec!["--input", "tiny.txt"];
        args.extend_from_slice(extra);
        assert_fails_with(&train(&dir, &args), needle);
    }
}

/// Serves `body` to every GET on 127.0.0.1 until `count` requests were answered.
fn serve(body: &'static [u8], count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body).unwrap();
        }
    });
    format!("http://{addr}/names.txt")
}

#[test]
fn missing_input_txt_is_downloaded_once() {
    let dir = temp_dir("download");
    let url = serve(b"emma\nolivia\nava\n", 1);
    let out = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args([
            "train",
            "--engine",
            "scalar",
            "--steps",
            "3",
            "--num-samples",
            "2",
        ])
        .env("MICROGPT_DATA_URL", &url)
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("input.txt")).unwrap(),
        b"emma\nolivia\nava\n"
    );
    assert!(stdout.contains("num docs: 3"), "{stdout}");
    assert!(stdout.contains("vocab size: 8"), "{stdout}");
    // A second run uses input.txt and does not download again (the server is gone).
    let again = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args([
            "train",
            "--engine",
            "scalar",
            "--steps",
            "1",
            "--num-samples",
            "0",
        ])
        .env("MICROGPT_DATA_URL", &url)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[test]
fn no_network_says_to_pass_input() {
    let dir = temp_dir("offline");
    // A port nobody listens on: bind, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(["train", "--engine", "scalar", "--steps", "1"])
        .env(
            "MICROGPT_DATA_URL",
            format!("http://127.0.0.1:{port}/names.txt"),
        )
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_fails_with(&out, "pass --input FILE");
    assert!(
        !dir.join("input.txt").exists(),
        "a failed download must leave no input.txt"
    );
}

#[test]
fn default_run_prints_the_originals_names() {
    let Some(names) = common::names_path() else {
        return;
    };
    let out = microgpt(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            "train",
            "--engine",
            "scalar",
            "--input",
            names.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.starts_with("num docs: 32033\nvocab size: 27\nnum params: 4192\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sample  1: kamon\nsample  2: ann\nsample  3: karai\n"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("sample 20: anton"), "{stdout}");
}

/// A loss that turns NaN stops training with a clear error, and the steps before it are
/// kept: metrics.csv and a checkpoint that `sample` can load.
#[test]
fn a_diverging_run_keeps_its_last_good_state() {
    let dir = temp_dir("diverge");
    std::fs::write(
        dir.join("names.txt"),
        "emma\nolivia\nava\nisabella\nsophia\n",
    )
    .unwrap();
    let out = microgpt(
        &dir,
        &[
            "train",
            "--input",
            "names.txt",
            "--dtype",
            "f32",
            "--lr",
            "1e30",
            "--steps",
            "50",
            "--quiet",
            "--save-every",
            "1",
            "--out",
            "run",
        ],
    );
    assert_fails_with(&out, "training stopped");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let metrics = std::fs::read_to_string(dir.join("run/metrics.csv")).unwrap();
    let saved = metrics.lines().count() - 1;
    assert!(saved >= 1, "{metrics}");
    assert!(
        stderr.contains(&format!("the {saved} steps before")),
        "{stderr}"
    );
    let sample = microgpt(&dir, &["sample", "--run", "run", "--num-samples", "2"]);
    assert!(
        sample.status.success(),
        "{}",
        String::from_utf8_lossy(&sample.stderr)
    );
}
