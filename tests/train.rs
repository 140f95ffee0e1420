//! `microgpt train` end to end: the run directory, stop and resume bit for bit, Ctrl-C.

mod common;

use common::cli::*;

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
    assert_eq!(model.params().unwrap().len(), cfg.num_params);
    assert!(model.params().unwrap().iter().all(|p| p.is_finite()));
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready: `num params` is printed once the Ctrl-C handler is installed.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("num params") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "train ended before it was ready");
    }
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
    // Saved at the step boundary it reached (possibly before the first step).
    let step = checkpoint::load_model(&run).unwrap().step;
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

/// A learning rate that makes the weights non-finite between two saves: the error names
/// the last finite checkpoint, which stays as it was, and loads.
#[test]
fn a_diverging_step_never_overwrites_the_last_finite_checkpoint() {
    let dir = tmp("diverge");
    let data = dataset(&dir);
    let run = dir.join("div");
    let flags = [
        "--engine",
        "tensor",
        "--dtype",
        "f32",
        "--lr",
        "3e6",
        "--lr-schedule",
        "constant",
        "--save-every",
        "10",
        "--steps",
        "400",
        "--threads",
        "1",
        "--num-samples",
        "0",
    ];
    let o = train(&data, &run, &flags);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "did not diverge");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let model = checkpoint::load_model(&run).unwrap();
    assert!(model.params().unwrap().iter().all(|x| x.is_finite()));
    assert_eq!(rows(&run).len(), model.step);
    assert!(
        err.starts_with("error: training stopped; the weights were no longer finite")
            && err.contains(&format!(
                "last good checkpoint (the {} steps before)",
                model.step
            )),
        "{err}"
    );
    ok(&["sample", "--run", s(&run), "--num-samples", "3"]);
}
