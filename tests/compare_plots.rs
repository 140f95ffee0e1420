//! `compare`'s plots show what they are for: every axis numbered (linear and log), the whole
//! run with its first steps above a marked zoom, one diverging run neither flattening the
//! others nor confused with a healthy run's spikes, curves that coincide said to, long
//! labels wrapped, and NaN or infinite losses in metrics.csv as gaps (they once hung it).

mod common;

use common::cli::*;
use common::deadline::run_str_within;
use microgpt::model::config::Activation;
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
    std::fs::write(dir.join("config.json"), config.json().unwrap()).unwrap();
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

/// The y-axis tick labels of an SVG plot, top panel first: (height in the picture,
/// value) of every right-aligned number left of the plot.
fn y_labels(svg: &str) -> Vec<(f64, f64)> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|t| {
            let (attrs, rest) = t.split_once('>')?;
            let attrs = format!(" {attrs}");
            let attr = |name: &str| {
                let v = attrs.split(&format!(" {name}=\"")).nth(1)?;
                v.split('"').next()
            };
            let x: f64 = attr("x")?.parse().ok()?;
            let value: f64 = rest.split('<').next()?.trim().parse().ok()?;
            (attr("text-anchor")? == "end" && x < 150.0)
                .then(|| Some((attr("y")?.parse().ok()?, value)))
                .flatten()
        })
        .collect()
}

/// Every text of an SVG plot, joined by spaces: a note wrapped over lines reads whole.
fn texts(svg: &str) -> String {
    let pieces = svg.split("<text ").skip(1);
    let contents = pieces.filter_map(|t| t.split_once('>')?.1.split('<').next());
    contents.map(str::trim).collect::<Vec<_>>().join(" ")
}

/// The labels of the panel above `split` (in picture pixels) and of the one below it.
fn panels(labels: &[(f64, f64)], split: f64) -> (Vec<f64>, Vec<f64>) {
    let side = |above: bool| {
        labels
            .iter()
            .filter(|l| (l.0 < split) == above)
            .map(|l| l.1)
            .collect()
    };
    (side(true), side(false))
}

/// A loss falling from 3.3 to `end` over 300 steps, with the noise and spikes of a real
/// run: a noisy start above 3.3, and jumps of a whole nat.
fn noisy(end: f64) -> Vec<f64> {
    let mut losses = falling(end);
    losses[1] = 3.6;
    for s in [40, 120, 200] {
        losses[s] += 1.0;
    }
    losses
}

#[test]
fn a_diverging_run_is_marked_and_the_whole_run_is_shown() {
    let dir = tmp("compare_diverging");
    let template = template(&dir);
    let mut runs: Vec<PathBuf> = [2.0, 2.1, 2.2, 2.3, 2.4]
        .iter()
        .map(|&end| synthetic(&template, &format!("ok{end}"), &noisy(end), |_| {}))
        .collect();
    let diverged: Vec<f64> = (0..300).map(|s| if s < 10 { 3.3 } else { 800.0 }).collect();
    runs.push(synthetic(&template, "diverged", &diverged, |_| {}));
    let paths: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();

    let svg = compare(&paths, &dir.join("linear"), &[]);
    // Healthy runs, spikes and a noisy start included, are not marked.
    assert_eq!(svg.matches("▲").count(), 1, "only the diverged run");
    let said = texts(&svg);
    assert!(
        said.contains("▲ diverged at step 11: loss"),
        "marked: {said}"
    );
    assert!(
        said.contains("above where it started (3.30)"),
        "and why: {said}"
    );
    // The whole run, on a log axis (the diverging run would flatten the rest), labelled
    // from the healthy runs' losses to the diverged one's; the zoom below it in tenths.
    let (whole, zoom) = panels(&y_labels(&svg), 330.0);
    assert!(svg.contains("The whole run, log scale"));
    assert!(whole.iter().any(|&y| y < 3.0), "{whole:?}");
    assert!(whole.iter().any(|&y| y >= 500.0), "{whole:?}");
    assert!(
        zoom.iter().filter(|&&y| (2.0..3.1).contains(&y)).count() >= 8,
        "{zoom:?}"
    );

    let svg = compare(&paths, &dir.join("log"), &["--log-y"]);
    assert!(svg.contains("log scale") && svg.contains("▲ diverged at step 11"));
    let (all, none) = panels(&y_labels(&svg), 900.0);
    assert!(none.is_empty() && all.iter().any(|&y| y < 3.0), "{all:?}");

    // Without the diverged run, the whole run fits one linear panel (a zoom would add
    // nothing), numbered from below 2 to the start at 3.3 and above.
    let svg = compare(&paths[..5], &dir.join("healthy"), &[]);
    assert!(!svg.contains("▲") && !svg.contains("grey band"));
    let (whole, _) = panels(&y_labels(&svg), 900.0);
    assert!(
        whole.iter().any(|&y| y <= 2.0) && whole.iter().any(|&y| y >= 3.4),
        "{whole:?}"
    );
    // --log-y on losses within a factor of two: still numbered (plotters' log axis
    // labelled only powers of ten, and so none of them).
    let svg = compare(&paths[..5], &dir.join("healthy_log"), &["--log-y"]);
    assert!(y_labels(&svg).len() >= 5, "{:?}", y_labels(&svg));
}

#[test]
fn curves_that_coincide_are_said_to() {
    let dir = tmp("compare_coincide");
    let template = template(&dir);
    let edit = |activation: Activation| {
        move |c: &mut RunConfig| {
            c.settings.model.activation = activation;
            c.model.activation = activation;
        }
    };
    let a = synthetic(&template, "a", &noisy(2.0), edit(Activation::Relu));
    let close: Vec<f64> = noisy(2.0).iter().map(|l| l + 0.001).collect();
    let b = synthetic(&template, "b", &close, edit(Activation::Gelu));
    let c = synthetic(&template, "c", &noisy(2.3), edit(Activation::Relu2));
    let svg = compare(&[&a, &b, &c], &dir.join("out"), &[]);
    let said = texts(&svg);
    assert!(
        said.contains(
            "activation=relu and activation=gelu coincide: their curves are at most 0.001 apart"
        ),
        "{said}"
    );
    assert_eq!(svg.matches("coincide").count(), 1, "relu2 is apart");
    let svg = compare(&[&a, &c], &dir.join("apart"), &[]);
    assert!(!svg.contains("coincide"));
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
        assert!(y_labels(&svg).iter().all(|y| y.1.is_finite()));
        compare(&runs, &dir.join(format!("log{}", runs.len())), &["--log-y"]);
    }
}
