//! `--data stream`: one text trained on random windows. The split holds out the last of
//! the text, runs are reproducible and resume bit for bit, generation slides past the
//! block, the gradient check covers stream windows, and bad input is a one-line error.

mod common;

use common::cli::*;
use microgpt::data::Corpus;
use microgpt::numerics::rng::Rng;
use microgpt::settings::{DataMode, DataSettings};

/// A text with newlines and non-ASCII letters, a few thousand characters long.
fn play(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..120 {
        let who = ["ROMEO", "JULIET", "NURSE", "FRIAR"][i % 4];
        text.push_str(&format!(
            "{who}:\nWhat light through yonder window breaks, {}?\n\n",
            ["my lord", "fair Ælfrida", "good nurse"][i % 3]
        ));
    }
    let path = dir.join("play.txt");
    std::fs::write(&path, text).unwrap();
    path
}

const STREAM: &[&str] = &["--data", "stream", "--batch-size", "3", "--val-frac", "0.2"];

fn stream_train(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = STREAM.to_vec();
    args.extend_from_slice(extra);
    train_ok(data, out, &args)
}

#[test]
fn the_validation_part_is_the_contiguous_end_of_the_text() {
    let dir = tmp("stream-split");
    let path = play(&dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let settings = DataSettings {
        input: Some(path),
        data: DataMode::Stream,
        seed: 1,
        val_frac: 0.1,
    };
    let corpus = Corpus::load(&settings, 8, &mut Rng::new(1)).unwrap();
    let n = text.chars().count();
    let n_val = (n as f64 * 0.1).round() as usize;
    assert_eq!(corpus.split_sizes(), (n - n_val, n_val));
    let tail: Vec<char> = text.chars().skip(n - n_val).collect();
    // Every window predicts 8 tokens; together they cover the held-out tail in order.
    let windows = corpus.val_sequences(8, 0);
    assert_eq!(windows.len(), (n_val - 1) / 8);
    for (i, w) in windows.iter().enumerate() {
        assert_eq!(w.len(), 9);
        let chars: String = tail[i * 8..i * 8 + 9].iter().collect();
        assert_eq!(corpus.vocab.decode(w), chars, "window {i}");
    }
    // A fixed subset when asked: evenly spaced, deterministic.
    let few = corpus.val_sequences(8, 5);
    assert_eq!(few.len(), 5);
    assert_eq!(few, corpus.val_sequences(8, 5));
    // Training windows stay inside the training part and depend on the step alone.
    let batches = corpus.batches(4, 8, 1);
    let train: Vec<char> = text.chars().take(n - n_val).collect();
    for step in [0, 1, 1000] {
        let batch = batches.batch(step);
        assert_eq!(batch, corpus.batches(4, 8, 1).batch(step));
        for w in batch {
            let s = corpus.vocab.decode(w);
            let train_text: String = train.iter().collect();
            assert!(train_text.contains(&s), "{s:?} is not in the training part");
        }
    }
    assert_ne!(batches.batch(0), batches.batch(1));
}

#[test]
fn stream_runs_are_reproducible_and_resume_bit_identically() {
    let dir = tmp("stream-resume");
    let data = play(&dir);
    let (whole, part, again) = (dir.join("whole"), dir.join("part"), dir.join("again"));
    for engine in ["scalar", "tensor"] {
        for d in [&whole, &part, &again] {
            let _ = std::fs::remove_dir_all(d);
        }
        let common = ["--steps", "12", "--eval-every", "4", "--engine", engine];
        let out = stream_train(&data, &whole, &common);
        assert!(out.contains("num chars:"), "{out}");
        stream_train(&data, &again, &common);
        same_metrics(&whole, &again);
        let mut stop = common.to_vec();
        stop.extend(["--stop-after", "5"]);
        stream_train(&data, &part, &stop);
        ok(&["train", "--resume", s(&part), "--quiet"]);
        same_metrics(&whole, &part);
        same_checkpoint(&whole, &part);
        let config = std::fs::read_to_string(whole.join("config.json")).unwrap();
        assert!(config.contains("\"data\": \"stream\""), "{config}");
    }
    // A stream run's samples continue a newline: one text of 300 characters.
    let samples = std::fs::read_to_string(whole.join("samples.txt")).unwrap();
    assert_eq!(
        samples.trim_end_matches('\n').chars().count(),
        300,
        "{samples}"
    );
}

#[test]
fn sampling_slides_past_the_block_and_matches_the_scalar_engine() {
    let dir = tmp("stream-sample");
    let data = play(&dir);
    let run = dir.join("run");
    stream_train(&data, &run, &["--steps", "30", "--engine", "tensor"]);
    let sample = |engine: &str| {
        ok(&[
            "sample",
            "--run",
            s(&run),
            "--prompt",
            "ROMEO:",
            "--max-new-tokens",
            "40",
            "--seed",
            "3",
            "--engine",
            engine,
        ])
    };
    let tensor = sample("tensor");
    // The prompt and 40 new characters, far past the block of 8.
    assert!(tensor.starts_with("ROMEO:"), "{tensor}");
    assert_eq!(
        tensor.trim_end_matches('\n').chars().count(),
        6 + 40,
        "{tensor:?}"
    );
    assert_eq!(tensor, sample("scalar"), "the engines sample differently");

    ok(&[
        "sample",
        "--run",
        s(&run),
        "--temperatures",
        "0.5,1.0",
        "--num-samples",
        "3",
        "--max-new-tokens",
        "30",
    ]);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("temperatures.json")).unwrap())
            .unwrap();
    for row in j["temperatures"].as_array().unwrap() {
        let copied = row["copied_8gram_frac"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&copied), "{row}");
        assert!(row["nll_per_char"].as_f64().unwrap() > 0.0);
        assert!(row.get("novel_frac").is_none());
        assert_eq!(row["samples"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn the_gradient_check_covers_stream_windows() {
    let dir = tmp("stream-gradcheck");
    let data = play(&dir);
    let out = ok(&[
        "gradcheck",
        "--data",
        "stream",
        "--input",
        s(&data),
        "--n-embd",
        "8",
        "--n-head",
        "2",
        "--n-layer",
        "2",
        "--block-size",
        "12",
        "--batch-size",
        "2",
        "--batches",
        "2",
    ]);
    assert!(out.contains("max relative error"), "{out}");
    assert!(!out.contains("NOT OK"), "{out}");
}

#[test]
fn bad_stream_input_is_a_one_line_error() {
    let dir = tmp("stream-errors");
    let data = play(&dir);
    let run = dir.join("run");
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, " \n\t\n").unwrap();
    let err = fails(&["train", "--data", "stream", "--input", s(&blank)]);
    assert!(err.contains("empty or all whitespace"), "{err}");
    let short = dir.join("short.txt");
    std::fs::write(&short, "to be or not").unwrap();
    let err = fails(&[
        "train",
        "--data",
        "stream",
        "--input",
        s(&short),
        "--block-size",
        "16",
    ]);
    assert!(err.contains("training part has 12 characters"), "{err}");
    let err = fails(&[
        "train",
        "--data",
        "stream",
        "--input",
        s(&data),
        "--block-size",
        "64",
        "--val-frac",
        "0.005",
    ]);
    assert!(err.contains("validation part"), "{err}");

    stream_train(&data, &run, &["--steps", "3"]);
    let err = fails(&["sample", "--run", s(&run), "--max-new-tokens", "0"]);
    assert!(err.contains("at least 1"), "{err}");
    let err = fails(&[
        "sample",
        "--run",
        s(&run),
        "--max-new-tokens",
        "99999999999",
    ]);
    assert!(err.contains("more than"), "{err}");
    let err = fails(&["sample", "--run", s(&run), "--prompt", "ROMEO#"]);
    assert!(err.contains("'#'"), "{err}");

    // A lines run cannot become a stream run on resume.
    let lines = dir.join("lines");
    train_ok(&data, &lines, &["--steps", "3", "--stop-after", "1"]);
    let err = fails(&["train", "--resume", s(&lines), "--data", "stream"]);
    assert!(err.contains("--data cannot change when resuming"), "{err}");
    let err = fails(&["sample", "--run", s(&lines), "--max-new-tokens", "5"]);
    assert!(err.contains("for stream runs"), "{err}");
}
