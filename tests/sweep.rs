//! `microgpt sweep` and `microgpt compare`: grids, resumable sweeps, plots and summaries.

mod common;

use common::cli::*;

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
    // Each finished run's line estimates the rest; the last has nothing left to estimate.
    let finished: Vec<&str> = stdout.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(finished.len(), 4, "{stdout}");
    assert!(
        finished[..3].iter().all(|l| l.contains(" | eta ")),
        "{stdout}"
    );
    assert!(!finished[3].contains("eta"), "{stdout}");
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

/// `microgpt sweep` in `dir` with the tiny model, `extra` flags and `--out sw`.
fn sweep_in(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["sweep"];
    args.extend_from_slice(TINY);
    args.extend(["--engine", "scalar", "--num-samples", "0", "--out", "sw"]);
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn one_line_error(o: &Output) -> String {
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.starts_with("error: "), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

#[test]
fn sweep_runs_are_identified_by_every_setting() {
    let dir = tmp("sweep_identity");
    let data = dataset(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(&data, dir.join("data/five.txt")).unwrap();
    let mut other = std::fs::read_to_string(&data).unwrap();
    other.push_str("zed\n");
    std::fs::write(dir.join("data_five.txt"), other).unwrap();

    // Grid values that a flat name would merge get directories of their own.
    let grid = [
        "--grid",
        "input=data/five.txt,data_five.txt",
        "--steps",
        "6",
    ];
    let o = sweep_in(&dir, &grid);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for (name, file) in [
        ("input=data%2Ffive.txt", "data/five.txt"),
        ("input=data_five.txt", "data_five.txt"),
    ] {
        let cfg = RunConfig::read(&dir.join("sw").join(name)).unwrap();
        assert_eq!(cfg.dataset, std::fs::canonicalize(dir.join(file)).unwrap());
        assert_eq!(rows(&dir.join("sw").join(name)).len(), 6);
    }
    let again = sweep_in(&dir, &grid);
    assert_eq!(text(&again.stdout).matches("already done").count(), 2);

    // Another base setting is another run: refused, naming the setting, nothing trained.
    let before = rows(&dir.join("sw/input=data_five.txt"));
    let err = one_line_error(&sweep_in(&dir, &[&grid[..], &["--lr", "0.02"]].concat()));
    assert!(
        err.contains("holds a run with --lr 0.01, this sweep asks for 0.02"),
        "{err}"
    );
    // More steps: refused unless --extend, which trains the finished runs on.
    let longer = [&grid[..2], &["--steps", "9"]].concat();
    let err = one_line_error(&sweep_in(&dir, &longer));
    assert!(
        err.contains("this sweep asks for 9: pass --extend"),
        "{err}"
    );
    assert_eq!(rows(&dir.join("sw/input=data_five.txt")), before);
    let o = sweep_in(&dir, &[&longer[..], &["--extend"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(rows(&dir.join("sw/input=data_five.txt")).len(), 9);
    // Fewer steps than a run has is another run.
    let err = one_line_error(&sweep_in(&dir, &[&grid[..2], &["--steps", "4"]].concat()));
    assert!(
        err.contains("holds a run of --steps 9 (9 done), this sweep asks for --steps 4"),
        "{err}"
    );
}
