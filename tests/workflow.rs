//! The experiment workflow end to end, through the binary: run directories, resume,
//! sampling, the temperature study, sweeps, comparisons and every bad input we promise a
//! clear error for. Tiny models on the scalar engine keep it fast.

use microgpt::checkpoint::{self, RunConfig};
use microgpt::metrics;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A small model that trains in milliseconds per step.
const TINY: &[&str] = &["--n-embd", "8", "--n-head", "2", "--block-size", "8"];

fn microgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run microgpt")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
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
fn fails(args: &[&str]) -> String {
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

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("workflow")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A UTF-8 dataset of made-up names with non-ASCII letters (mission D), written to `dir`.
fn dataset(dir: &Path) -> PathBuf {
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `train` with the tiny model on `data` into `out`, plus `extra` flags; on the scalar
/// engine unless they name one.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--input", s(data), "--out", s(out)];
    args.extend_from_slice(TINY);
    if !extra.contains(&"--engine") {
        args.extend(["--engine", "scalar"]);
    }
    args.extend_from_slice(extra);
    microgpt(&args)
}

fn train_ok(data: &Path, out: &Path, extra: &[&str]) -> String {
    let o = train(data, out, extra);
    assert!(
        o.status.success(),
        "train {extra:?} failed:\n{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn rows(dir: &Path) -> Vec<metrics::Row> {
    metrics::read(&dir.join("metrics.csv")).unwrap()
}

/// Losses, learning rates, tokens and val losses, bit for bit (not the wall clock).
fn same_metrics(a: &Path, b: &Path) {
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

fn same_checkpoint(a: &Path, b: &Path) {
    let (ma, mb) = (
        checkpoint::load_model(a).unwrap(),
        checkpoint::load_model(b).unwrap(),
    );
    assert_eq!(ma.step, mb.step);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&ma.params), bits(&mb.params), "weights differ");
    let (oa, ob) = (
        checkpoint::load_optimizer(a, &ma).unwrap(),
        checkpoint::load_optimizer(b, &mb).unwrap(),
    );
    assert_eq!(oa.t, ob.t);
    assert_eq!(bits(&oa.m), bits(&ob.m), "Adam m differs");
    assert_eq!(bits(&oa.v), bits(&ob.v), "Adam v differs");
}

#[test]
fn run_directory_holds_config_metrics_samples_and_checkpoint() {
    let dir = tmp("rundir");
    let data = dataset(&dir);
    let run = dir.join("run");
    let out = train_ok(
        &data,
        &run,
        &[
            "--steps",
            "24",
            "--val-frac",
            "0.1",
            "--eval-every",
            "10",
            "--num-samples",
            "6",
            "--activation",
            "gelu",
            "--save-every",
            "5",
        ],
    );
    // The original's header and sample lines.
    assert!(out.contains("num docs: "), "{out}");
    assert!(out.contains("vocab size: "), "{out}");
    assert!(out.contains("num params: "), "{out}");
    assert!(out.contains("sample  1: "), "{out}");
    // Not a terminal: periodic lines, not one per step.
    assert!(out.lines().filter(|l| l.starts_with("step ")).count() < 24);

    let cfg = RunConfig::read(&run).unwrap();
    assert_eq!(cfg.format_version, checkpoint::FORMAT_VERSION);
    assert_eq!(cfg.settings.schedule.steps, 24);
    assert_eq!(cfg.model.activation.to_string(), "gelu");
    assert_eq!(cfg.dataset, std::fs::canonicalize(&data).unwrap());
    assert!(cfg.vocab.contains('ë') && cfg.vocab.contains('ß'));
    assert_eq!(cfg.num_train_docs + cfg.num_val_docs, cfg.num_docs);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    for key in ["lr", "beta1", "seed", "n_layer", "val_frac", "eval_every"] {
        assert!(
            json.to_string().contains(&format!("\"{key}\"")),
            "config.json lacks {key}"
        );
    }

    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(text.starts_with("step,loss,lr,tokens,elapsed_s,val_loss\n"));
    let r = rows(&run);
    assert_eq!(
        r.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
    // Every float is written so it parses back to the same value: re-writing is identity.
    assert_eq!(metrics::to_csv(&r), text);
    let evals: Vec<usize> = r
        .iter()
        .filter(|r| r.val_loss.is_some())
        .map(|r| r.step)
        .collect();
    assert_eq!(evals, [10, 20, 24]);
    assert!(r
        .windows(2)
        .all(|w| w[1].tokens > w[0].tokens && w[1].elapsed_s >= w[0].elapsed_s));
    assert_eq!(r[0].lr, 0.01);

    let samples = std::fs::read_to_string(run.join("samples.txt")).unwrap();
    assert_eq!(samples.lines().count(), 6);

    let model = checkpoint::load_model(&run).unwrap();
    assert_eq!(model.step, 24);
    assert_eq!(model.config, cfg.model);
    assert_eq!(model.params.len(), cfg.num_params);
    assert!(model.params.iter().all(|p| p.is_finite()));
}

#[test]
fn stopped_and_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let dir = tmp("resume");
    let data = dataset(&dir);
    let (full, part) = (dir.join("full"), dir.join("part"));
    let flags = [
        "--steps",
        "30",
        "--val-frac",
        "0.1",
        "--eval-every",
        "7",
        "--activation",
        "relu2",
        "--save-every",
        "4",
        "--num-samples",
        "5",
    ];
    train_ok(&data, &full, &flags);
    let mut stop = flags.to_vec();
    stop.extend(["--stop-after", "13"]);
    let o = train(&data, &part, &stop);
    assert!(o.status.success());
    assert!(
        text(&o.stderr).contains(&format!("microgpt train --resume {}", s(&part))),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(rows(&part).len(), 13);
    assert!(!part.join("samples.txt").exists());
    // Resume in two more pieces: stop again, then finish.
    ok(&["train", "--resume", s(&part), "--stop-after", "21"]);
    assert_eq!(checkpoint::load_model(&part).unwrap().step, 21);
    let out = ok(&["train", "--resume", s(&part)]);
    assert!(out.contains("sample  1: "), "{out}");

    same_metrics(&full, &part);
    same_checkpoint(&full, &part);
    assert_eq!(
        std::fs::read_to_string(full.join("samples.txt")).unwrap(),
        std::fs::read_to_string(part.join("samples.txt")).unwrap()
    );
    // A finished run needs --steps to go on; settings other than a few cannot change.
    let err = fails(&["train", "--resume", s(&part)]);
    assert!(err.contains("finished") && err.contains("--steps"), "{err}");
    let err = fails(&[
        "train",
        "--resume",
        s(&part),
        "--steps",
        "40",
        "--lr",
        "0.1",
    ]);
    assert!(err.contains("--lr cannot change when resuming"), "{err}");
    let err = fails(&["train", "--resume", s(&part), "--steps", "30"]);
    assert!(err.contains("not beyond"), "{err}");
}

#[test]
fn resume_with_more_steps_extends_a_finished_run() {
    let dir = tmp("extend");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "10", "--num-samples", "0"]);
    ok(&["train", "--resume", s(&run), "--steps", "16", "--quiet"]);
    let r = rows(&run);
    assert_eq!(
        r.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    // The schedule is recomputed for the new total: lr_t = lr * (1 - t/16) from step 11.
    assert_eq!(
        r[10].lr.to_bits(),
        (0.01_f64 * (1.0 - 10.0 / 16.0)).to_bits()
    );
    assert_eq!(RunConfig::read(&run).unwrap().settings.schedule.steps, 16);
    assert_eq!(checkpoint::load_model(&run).unwrap().step, 16);
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_at_a_step_boundary_saves_and_resumes() {
    let dir = tmp("ctrlc");
    let data = dataset(&dir);
    let run = dir.join("run");
    let mut args = vec!["train", "--input", s(&data), "--out", s(&run)];
    args.extend_from_slice(TINY);
    args.extend([
        "--engine",
        "scalar",
        "--steps",
        "1000000",
        "--save-every",
        "0",
    ]);
    let child = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is training (config.json is written just before the loop).
    let t0 = std::time::Instant::now();
    while !run.join("config.json").exists() && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted at step") && err.contains("--resume"),
        "{err}"
    );
    let step = checkpoint::load_model(&run).unwrap().step;
    assert!(step > 0);
    assert_eq!(rows(&run).len(), step);
    ok(&[
        "train",
        "--resume",
        s(&run),
        "--stop-after",
        &(step + 3).to_string(),
    ]);
    assert_eq!(rows(&run).len(), step + 3);
}

#[test]
fn sample_reproduces_the_runs_samples_and_takes_a_prompt() {
    let dir = tmp("sample");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "15", "--num-samples", "8"]);
    let expected: Vec<String> = std::fs::read_to_string(run.join("samples.txt"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| format!("sample {:2}: {l}", i + 1))
        .collect();
    let out = ok(&["sample", "--run", s(&run)]);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    let out = ok(&[
        "sample",
        "--run",
        s(&run),
        "--prompt",
        "zoë",
        "--seed",
        "7",
        "--num-samples",
        "4",
        "--temperature",
        "0.8",
    ]);
    assert_eq!(out.lines().count(), 4);
    assert!(
        out.lines()
            .all(|l| l.split_once(": ").unwrap().1.starts_with("zoë")),
        "{out}"
    );
    let err = fails(&["sample", "--run", s(&run), "--prompt", "kaX!"]);
    assert!(err.contains("'!', 'X'"), "{err}");
}

#[test]
fn temperature_study_reports_uniqueness_novelty_length_and_nll() {
    let dir = tmp("temperatures");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "20", "--num-samples", "0"]);
    ok(&[
        "sample",
        "--run",
        s(&run),
        "--temperatures",
        "0.2,0.5,1.0",
        "--num-samples",
        "30",
    ]);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("temperatures.json")).unwrap())
            .unwrap();
    let rows = j["temperatures"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, t) in rows.iter().zip([0.2, 0.5, 1.0]) {
        assert_eq!(row["temperature"].as_f64().unwrap(), t);
        assert_eq!(row["samples"].as_array().unwrap().len(), 30);
        for k in ["unique_frac", "novel_frac"] {
            let v = row[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
        assert!(row["mean_length"].as_f64().unwrap() >= 0.0);
        assert!(row["nll_per_char"].as_f64().unwrap() > 0.0);
    }
    let md = std::fs::read_to_string(run.join("temperatures.md")).unwrap();
    assert!(md.contains("| 0.5 |") && md.contains("final BOS"), "{md}");

    fails(&["sample", "--run", s(&run), "--temperatures", "0.5,0"]);
    fails(&["sample", "--run", s(&run), "--temperature", "-1"]);
}

#[test]
fn sweep_trains_the_grid_and_compare_draws_and_summarises() {
    let dir = tmp("sweep");
    let data = dataset(&dir);
    let out = dir.join("sweep");
    let mut args = vec![
        "sweep",
        "--grid",
        "n_embd=4,8",
        "--grid",
        "activation=relu,gelu",
    ];
    args.extend_from_slice(TINY);
    args.extend([
        "--engine",
        "scalar",
        "--input",
        s(&data),
        "--steps",
        "12",
        "--val-frac",
        "0.1",
        "--eval-every",
        "4",
        "--num-samples",
        "2",
        "--jobs",
        "2",
        "--out",
        s(&out),
    ]);
    let mut print = args.clone();
    print.push("--print-commands");
    let commands = ok(&print);
    assert_eq!(commands.lines().count(), 4);
    assert!(commands
        .lines()
        .all(|l| l.starts_with("microgpt train ") && l.contains("--n-embd")));
    assert!(!out.exists(), "--print-commands trains nothing");

    let stdout = ok(&args);
    let names = [
        "n_embd=4,activation=relu",
        "n_embd=4,activation=gelu",
        "n_embd=8,activation=relu",
        "n_embd=8,activation=gelu",
    ];
    for name in names {
        let cfg = RunConfig::read(&out.join(name)).unwrap();
        assert_eq!(cfg.settings.schedule.steps, 12);
        assert_eq!(rows(&out.join(name)).len(), 12);
        assert!(stdout.contains(name), "{stdout}");
    }
    let png = std::fs::read(out.join("loss_curves.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    let svg = std::fs::read_to_string(out.join("loss_curves.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("activation=gelu, n_embd=8"));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with(
        "run,label,params,steps,final_train_loss_ema,final_val_loss,wall_time_s,tokens_per_s\n"
    ));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("loss_curves.png"));

    // Running it again skips the finished runs.
    let again = ok(&args);
    assert_eq!(again.matches("already done").count(), 4, "{again}");

    // compare on its own, with runs that differ in one setting.
    let cmp = dir.join("cmp");
    ok(&[
        "compare",
        s(&out.join(names[0])),
        s(&out.join(names[2])),
        "--out",
        s(&cmp),
    ]);
    let csv = std::fs::read_to_string(cmp.join("summary.csv")).unwrap();
    assert!(
        csv.contains(",n_embd=4,") && csv.contains(",n_embd=8,"),
        "{csv}"
    );
}

#[test]
fn sweep_rejects_unknown_keys_empty_grids_and_bad_values() {
    let dir = tmp("sweep_bad");
    let out = dir.join("out");
    let err = fails(&["sweep", "--grid", "n_embed=8", "--out", s(&out)]);
    assert!(
        err.contains("unknown grid key \"n_embed\"") && err.contains("n_embd"),
        "{err}"
    );
    let err = fails(&["sweep", "--out", s(&out)]);
    assert!(err.contains("grid is empty"), "{err}");
    let err = fails(&["sweep", "--grid", "n_layer=", "--out", s(&out)]);
    assert!(err.contains("empty value"), "{err}");
    let err = fails(&["sweep", "--grid", "n_layer=1,x", "--out", s(&out)]);
    assert!(
        err.contains("n_layer=x") && err.contains("invalid value"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn bad_run_directories_are_clear_errors_and_lose_nothing() {
    let dir = tmp("bad");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(
        &data,
        &run,
        &["--steps", "10", "--stop-after", "5", "--num-samples", "0"],
    );
    let model_bytes = std::fs::read(run.join("model.safetensors")).unwrap();

    // Training afresh into a run directory would overwrite it.
    let o = train(&data, &run, &["--steps", "10"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("already holds a trained run"));
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        model_bytes
    );

    // Not a run directory.
    let err = fails(&["sample", "--run", s(&dir)]);
    assert!(err.contains("not a run directory"), "{err}");
    let err = fails(&["train", "--resume", s(&dir.join("nowhere"))]);
    assert!(err.contains("not a run directory"), "{err}");

    // A different dataset vocabulary.
    let mut changed = std::fs::read_to_string(&data).unwrap();
    changed.push_str("qwx\n");
    std::fs::write(&data, changed).unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    assert!(err.contains("vocabulary"), "{err}");
    dataset(&dir);

    // Truncated, corrupt and missing checkpoints.
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "model.safetensors",
            model_bytes[..model_bytes.len() / 2].to_vec(),
            "truncated or corrupt",
        ),
        (
            "model.safetensors",
            b"\xff\xff\xff\xff not a checkpoint".to_vec(),
            "truncated or corrupt",
        ),
        (
            "optimizer.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ".to_vec(),
            "not a microgpt checkpoint",
        ),
    ];
    for (file, bytes, want) in cases {
        let original = std::fs::read(run.join(file)).unwrap();
        std::fs::write(run.join(file), &bytes).unwrap();
        let err = fails(&["train", "--resume", s(&run)]);
        assert!(err.contains(want), "{file}: {err}");
        assert_eq!(
            std::fs::read(run.join(file)).unwrap(),
            bytes,
            "kept as found"
        );
        std::fs::write(run.join(file), original).unwrap();
    }
    std::fs::rename(run.join("model.safetensors"), dir.join("moved")).unwrap();
    let err = fails(&["sample", "--run", s(&run)]);
    assert!(err.contains("model.safetensors is missing"), "{err}");
    std::fs::rename(dir.join("moved"), run.join("model.safetensors")).unwrap();

    // A run directory from another format version.
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::write(
        run.join("config.json"),
        config.replace("\"format_version\": 2", "\"format_version\": 99"),
    )
    .unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    assert!(
        err.contains("newer version of microgpt (format 99"),
        "{err}"
    );
    std::fs::write(run.join("config.json"), config).unwrap();

    // Intact again: it resumes.
    ok(&["train", "--resume", s(&run), "--quiet"]);
    assert_eq!(rows(&run).len(), 10);
}

#[test]
fn python_safetensors_reads_the_checkpoint_as_written() {
    let python_ok = Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with safetensors and numpy (.ci/run installs them)"
        );
        eprintln!("skipping: python3 with safetensors and numpy not available");
        return;
    }
    let dir = tmp("python");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "5", "--num-samples", "0"]);
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, "np") as f:
    meta = f.metadata()
print(json.dumps({
    "meta": meta,
    "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": [repr(x) for x in v.ravel().tolist()]}
                for k, v in tensors.items()},
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, s(&run.join("model.safetensors"))])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = checkpoint::load_model(&run).unwrap();
    let meta = &j["meta"];
    assert_eq!(meta["format"], "microgpt");
    assert_eq!(meta["step"], "5");
    assert_eq!(meta["dtype"], "f64");
    let vocab: String = model.vocab.chars().iter().collect();
    assert_eq!(meta["vocab"].as_str().unwrap(), vocab);
    let config: microgpt::config::ModelConfig =
        serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
    assert_eq!(config, model.config);
    let layout = model.config.layout();
    assert_eq!(j["tensors"].as_object().unwrap().len(), layout.specs.len());
    for spec in &layout.specs {
        let t = &j["tensors"][&spec.name];
        assert_eq!(t["dtype"], "float64", "{}", spec.name);
        assert_eq!(t["shape"], serde_json::json!([spec.rows, spec.cols]));
        let values: Vec<u64> = t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse::<f64>().unwrap().to_bits())
            .collect();
        let ours: Vec<u64> = model.params[spec.range()]
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(values, ours, "{}", spec.name);
    }
}

#[test]
fn tensor_engine_runs_resume_bit_identically_in_f64_and_f32() {
    let dir = tmp("tensor");
    let data = dataset(&dir);
    for dtype in ["f64", "f32"] {
        let (full, part) = (
            dir.join(format!("full-{dtype}")),
            dir.join(format!("part-{dtype}")),
        );
        let flags = [
            "--engine",
            "tensor",
            "--dtype",
            dtype,
            "--batch-size",
            "3",
            "--steps",
            "30",
            "--val-frac",
            "0.1",
            "--eval-every",
            "10",
            "--num-samples",
            "5",
        ];
        train_ok(&data, &full, &flags);
        let mut stop = flags.to_vec();
        stop.extend(["--stop-after", "11"]);
        train_ok(&data, &part, &stop);
        ok(&["train", "--resume", s(&part), "--quiet"]);
        same_metrics(&full, &part);
        same_checkpoint(&full, &part);
        assert_eq!(
            checkpoint::load_model(&part).unwrap().dtype.to_string(),
            dtype
        );
        assert_eq!(
            std::fs::read_to_string(full.join("samples.txt")).unwrap(),
            std::fs::read_to_string(part.join("samples.txt")).unwrap()
        );
        let out = ok(&["sample", "--run", s(&part), "--prompt", "ka", "--seed", "3"]);
        assert!(out.lines().all(|l| l.contains(": ka")), "{out}");
    }
}

/// A run directory written by microgpt 0.1 (format 1, settings stored as the command-line
/// struct): every command says it is from an older version, none guesses.
#[test]
fn run_directories_of_an_older_format_are_named_as_such() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_v1");
    for args in [
        vec!["train", "--resume", s(&fixture)],
        vec!["sample", "--run", s(&fixture)],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("made by an older version of microgpt (format 1"),
            "{args:?}: {err}"
        );
    }
}
