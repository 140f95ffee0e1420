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
