//! `compare`'s plots show what they are for: one diverging run does not flatten the others,
//! curves that leave the range are marked, `--log-y` shows everything, long labels wrap,
//! and NaN or infinite losses in metrics.csv are gaps (they once hung it).

mod common;

use common::cli::*;
use common::deadline::run_str_within;
use std::time::Duration;

/// A real run directory (from a tiny training) as the template of synthetic ones.
fn template(dir: &Path) -> PathBuf {
    let run = dir.join("template");
    train_ok(
        &dataset(dir),
        &run,
        &["--steps", "2", "--num-samples", "0", "--quiet"],
    );
    run
}

/// A copy of `template` named `name` whose metrics.csv has `losses` (and val losses every
/// 50 steps); `settings` edits its config.json.
fn synthetic(
    template: &Path,
    name: &str,
    losses: &[f64],
    edit: impl Fn(&mut RunConfig),
) -> PathBuf {
    let dir = template.parent().unwrap().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = RunConfig::read(template).unwrap();
    edit(&mut config);
    config.write(&dir).unwrap();
    let rows: Vec<metrics::Row> = losses
        .iter()
        .enumerate()
        .map(|(i, &loss)| metrics::Row {
            step: i + 1,
            loss,
            lr: 0.01,
            tokens: 10 * (i as u64 + 1),
            elapsed_s: 0.1 * (i + 1) as f64,
            val_loss: ((i + 1) % 50 == 0).then_some(loss + 0.05),
        })
        .collect();
    std::fs::write(dir.join("metrics.csv"), metrics::to_csv(&rows)).unwrap();
    dir
}

/// A loss falling from 3.3 to `end` over 300 steps.
fn falling(end: f64) -> Vec<f64> {
    (0..300)
        .map(|s| end + (3.3 - end) * (-(s as f64) / 40.0).exp())
        .collect()
}

/// Runs compare within a time limit and returns the SVG.
fn compare(runs: &[&Path], out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["compare"];
    args.extend(runs.iter().map(|r| s(r)));
    args.extend(["--out", s(out)]);
    args.extend_from_slice(extra);
    let done = run_str_within(&args, Duration::from_secs(60)).expect("compare hung");
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(std::fs::read(out.join("loss_curves.png")).unwrap().len() > 10_000);
    std::fs::read_to_string(out.join("loss_curves.svg")).unwrap()
}

/// The y-axis tick labels (formatted with two decimals) of an SVG plot.
fn y_ticks(svg: &str) -> Vec<f64> {
    svg.split('>')
        .filter_map(|t| t.split('<').next())
        .filter(|t| t.contains('.') && t.len() < 12)
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

#[test]
fn a_diverging_run_leaves_the_range_and_is_marked() {
    let dir = tmp("compare_diverging");
    let template = template(&dir);
    let mut runs: Vec<PathBuf> = [2.0, 2.1, 2.2, 2.3, 2.4]
        .iter()
        .map(|&end| synthetic(&template, &format!("ok{end}"), &falling(end), |_| {}))
        .collect();
    let diverged: Vec<f64> = (0..300).map(|s| if s < 10 { 3.3 } else { 800.0 }).collect();
    runs.push(synthetic(&template, "diverged", &diverged, |_| {}));
    let paths: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();

    let svg = compare(&paths, &dir.join("linear"), &[]);
    let ticks = y_ticks(&svg);
    // The main axis ticks every 0.1 between 2 and 3 (the overview's are decades).
    assert!(ticks.iter().filter(|&&y| y < 3.5).count() >= 8, "{ticks:?}");
    assert_eq!(
        svg.matches("above the plot").count(),
        1,
        "only the diverged run"
    );
    assert!(
        svg.contains("above the plot from step 16 (up to 800.05)"),
        "marked"
    );

    let svg = compare(&paths, &dir.join("log"), &["--log-y"]);
    assert!(!svg.contains("above the plot"));
    assert!(svg.contains("log scale"));
}

#[test]
fn long_labels_wrap() {
    let dir = tmp("compare_labels");
    let template = template(&dir);
    let mut runs = Vec::new();
    for (i, lr) in [0.01, 0.002].iter().enumerate() {
        runs.push(synthetic(&template, &format!("r{i}"), &falling(2.0), |c| {
            let s = &mut c.settings;
            s.optimizer.lr = *lr;
            s.optimizer.beta1 = 0.5 + i as f64 / 10.0;
            s.optimizer.beta2 = 0.9 + i as f64 / 100.0;
            s.optimizer.eps = 1e-9 * (i + 1) as f64;
            s.model.init_std = 0.02 * (i + 1) as f64;
        }));
    }
    let paths: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
    let svg = compare(&paths, &dir.join("out"), &[]);
    let csv = std::fs::read_to_string(dir.join("out/summary.csv")).unwrap();
    let label = csv
        .lines()
        .nth(1)
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(label.len() > 40, "{label}");
    assert!(!svg.contains(&label), "the label should wrap: {label}");
    assert!(svg.contains(label.split(", ").next().unwrap()));
}

#[test]
fn nan_and_infinite_losses_are_gaps_not_a_hang() {
    let dir = tmp("compare_nan");
    let template = template(&dir);
    let mut losses = falling(2.0);
    losses[100] = f64::INFINITY;
    losses[101] = f64::NAN;
    losses[200] = f64::NEG_INFINITY;
    let gappy = synthetic(&template, "gappy", &losses, |_| {});
    // Infinite and NaN validation losses too.
    let mut rows = metrics::read(&gappy.join("metrics.csv")).unwrap();
    rows[49].val_loss = Some(f64::INFINITY);
    rows[99].val_loss = Some(f64::NAN);
    std::fs::write(gappy.join("metrics.csv"), metrics::to_csv(&rows)).unwrap();
    let all_bad = synthetic(
        &template,
        "all_bad",
        &[f64::INFINITY, f64::NAN, 1e308],
        |_| {},
    );
    for runs in [
        vec![gappy.as_path()],
        vec![gappy.as_path(), all_bad.as_path()],
    ] {
        let svg = compare(&runs, &dir.join(format!("out{}", runs.len())), &[]);
        assert!(y_ticks(&svg).iter().all(|y| y.is_finite()));
        compare(&runs, &dir.join(format!("log{}", runs.len())), &["--log-y"]);
    }
}
