//! The `inspect` command: what trained runs predict at every position of a text
//! (`inspect.md`, `inspect.json`) and where each attention head looks (`attention.png` and
//! `.svg`, drawn by [`heatmap`]). Several runs get their per-position losses side by side.

mod heatmap;

use crate::cli::InspectArgs;
use anyhow::{bail, Context, Result};
use microgpt::data::files::{self, write_atomic};
use microgpt::rundir::lock::RunLock;
use microgpt::settings::Choice;
use microgpt::training::inspect::{names, run_report, Inspected, RunReport, TOP};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The settings a reader needs to place the run: shape, length and data.
fn settings_line(run: &Inspected) -> String {
    let s = &run.config.settings;
    let m = &s.model;
    format!(
        "n_embd {}, n_head {}, n_layer {}, block_size {}, {}, {} steps, batch {}, lr {}, {} data; {}",
        m.n_embd,
        m.n_head,
        m.n_layer,
        m.block_size,
        m.activation.name(),
        s.schedule.steps,
        s.schedule.batch_size,
        s.optimizer.lr,
        s.data.data.name(),
        run.engine
    )
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let runs = names(&args.run)
        .into_iter()
        .zip(&args.run)
        .map(|(name, dir)| Inspected::load(dir, name, &args.text, args.engine, args.dtype))
        .collect::<Result<Vec<_>>>()?;
    let mode = runs[0].config.settings.data.data;
    if let Some(other) = runs.iter().find(|r| r.config.settings.data.data != mode) {
        bail!(
            "{} is a {} run but {} is a {} run: the text means different positions to them",
            runs[0].dir.display(),
            mode.name(),
            other.dir.display(),
            other.config.settings.data.data.name()
        );
    }
    let pictures: Vec<PathBuf> = runs
        .iter()
        .map(|r| match &args.out {
            Some(out) if runs.len() == 1 => out.join("attention"),
            Some(out) => out.join(format!("attention_{}", r.name)),
            None => r.dir.join("attention"),
        })
        .collect();
    let outputs = outputs(&pictures, args.out.as_deref());
    for (dir, names) in &outputs {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        files::refuse_clobber(dir, &names, args.force)?;
    }
    // Maps written into a run directory are written under its lock, as its writers write.
    let _writing: Vec<RunLock> = match &args.out {
        Some(_) => Vec::new(),
        None => runs
            .iter()
            .map(|r| RunLock::acquire(&r.dir))
            .collect::<Result<_>>()?,
    };
    let md = markdown(&runs, &args.text, args.out.is_some().then_some(&pictures));
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        write_atomic(&out.join("inspect.md"), md.as_bytes())?;
        let json = report(&runs, &args.text)?;
        write_atomic(&out.join("inspect.json"), json.as_bytes())?;
    }
    for (run, stem) in runs.iter().zip(&pictures) {
        heatmap::write(stem, &heatmap_of(run, &args.text))?;
    }
    for (dir, names) in &outputs {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        files::record_outputs(dir, &names)?;
    }
    print!("{md}");
    let mut wrote: Vec<String> = pictures
        .iter()
        .map(|p| format!("{0}.png and {0}.svg", p.display()))
        .collect();
    if let Some(out) = &args.out {
        let (md, json) = (out.join("inspect.md"), out.join("inspect.json"));
        wrote.insert(0, format!("{} and {}", md.display(), json.display()));
    }
    // Stdout stays the table alone, ready to paste into notes.
    eprintln!("wrote {}", wrote.join(", "));
    Ok(())
}

/// Each directory `inspect` writes to, and the files it writes there: each run's maps
/// (`pictures` are their stems), and with `--out` the report too, all in `out`.
fn outputs(pictures: &[PathBuf], out: Option<&Path>) -> Vec<(PathBuf, Vec<String>)> {
    let mut outputs: Vec<(PathBuf, Vec<String>)> = pictures
        .iter()
        .map(|p| {
            let dir = p.parent().map_or(PathBuf::from("."), Path::to_path_buf);
            let stem = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let stem = stem.unwrap_or_default();
            (dir, vec![format!("{stem}.png"), format!("{stem}.svg")])
        })
        .collect();
    if let Some(out) = out {
        let names = ["inspect.md".to_string(), "inspect.json".to_string()];
        let all = outputs
            .drain(..)
            .flat_map(|(_, n)| n)
            .chain(names)
            .collect();
        outputs.push((out.to_path_buf(), all));
    }
    outputs
}
fn heatmap_of<'a>(run: &'a Inspected, text: &str) -> heatmap::Maps<'a> {
    let n = run.view.positions();
    heatmap::Maps {
        title: format!("Attention of {} on “{}”", run.name, text.replace('\n', "↵")),
        subtitle: settings_line(run),
        labels: (0..n).map(|i| run.shown(run.view.tokens[i])).collect(),
        attention: &run.view.attention,
    }
}

/// A token as a Markdown table cell: a code span, with its pipe escaped.
fn cell(s: &str) -> String {
    if s == "`" {
        "`` ` ``".into()
    } else {
        format!("`{}`", s.replace('|', "\\|"))
    }
}

/// `inspect.md`: for one run its table; for several, their losses side by side, then
/// each run's table.
fn markdown(runs: &[Inspected], text: &str, pictures: Option<&Vec<PathBuf>>) -> String {
    let mut md = format!("# What the model predicts for {text:?}\n\n");
    md.push_str(
        "Position *i* reads the input and predicts the target. p(target) is the probability the model gives the target — the distribution `sample` draws from at temperature 1; the loss is −ln p(target) in nats, as in training.\n",
    );
    if runs.len() > 1 {
        md.push_str(&side_by_side(runs));
    }
    for (i, run) in runs.iter().enumerate() {
        if runs.len() > 1 {
            let _ = write!(md, "\n## `{}`\n", run.name);
        }
        let _ = writeln!(
            md,
            "\nRun `{}`: {}. Mean loss {:.4} nats over {} positions.\n",
            run.dir.display(),
            settings_line(run),
            run.view.mean_loss(),
            run.view.positions()
        );
        md.push_str(&table(run));
        if let Some(p) = pictures {
            let file = p[i].file_name().map(|f| f.to_string_lossy().into_owned());
            let _ = writeln!(
                md,
                "\n![attention of {}]({}.png)",
                run.name,
                file.unwrap_or_default()
            );
        }
    }
    md
}

/// One run's table: a row per position.
fn table(run: &Inspected) -> String {
    let mut t = String::from(
        "| pos | input | target | p(target) | loss | top 5 |\n|---:|:---:|:---:|---:|---:|---|\n",
    );
    let v = &run.view;
    for pos in 0..v.positions() {
        let target = v.tokens[pos + 1];
        let top: Vec<String> = v
            .top(pos, TOP)
            .iter()
            .map(|&(id, p)| {
                let entry = format!("{} {p:.3}", cell(&run.shown(id)));
                if id == target {
                    format!("**{entry}**")
                } else {
                    entry
                }
            })
            .collect();
        let _ = writeln!(
            t,
            "| {pos} | {} | {} | {:.4} | {:.3} | {} |",
            cell(&run.shown(v.tokens[pos])),
            cell(&run.shown(target)),
            v.p_target(pos),
            v.loss(pos),
            top.join(" · ")
        );
    }
    t
}

/// The runs' per-position losses in columns, the lowest of each row in bold.
fn side_by_side(runs: &[Inspected]) -> String {
    let mut t = String::from(
        "\nLoss (nats) per position; the lowest in each row in bold.\n\n| pos | input | target |",
    );
    for r in runs {
        let _ = write!(t, " `{}` |", r.name);
    }
    t.push_str("\n|---:|:---:|:---:|");
    t.push_str(&"---:|".repeat(runs.len()));
    let bold_lowest = |losses: Vec<f64>| -> String {
        let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
        losses
            .iter()
            .map(|&l| {
                if l == best {
                    format!(" **{l:.3}** |")
                } else {
                    format!(" {l:.3} |")
                }
            })
            .collect()
    };
    let first = &runs[0];
    for pos in 0..first.view.positions() {
        let _ = write!(
            t,
            "\n| {pos} | {} | {} |",
            cell(&first.shown(first.view.tokens[pos])),
            cell(&first.shown(first.view.tokens[pos + 1]))
        );
        t.push_str(&bold_lowest(
            runs.iter().map(|r| r.view.loss(pos)).collect(),
        ));
    }
    t.push_str("\n| mean | | |");
    t.push_str(&bold_lowest(
        runs.iter().map(|r| r.view.mean_loss()).collect(),
    ));
    t.push('\n');
    t
}

/// Several runs' losses, position by position (`loss[position][run]`).
#[derive(Serialize)]
struct Comparison<'a> {
    runs: Vec<&'a str>,
    loss: Vec<Vec<f64>>,
    mean_loss: Vec<f64>,
}

#[derive(Serialize)]
struct MultiReport<'a> {
    text: &'a str,
    comparison: Comparison<'a>,
    runs: Vec<RunReport<'a>>,
}

/// `inspect.json`: one run's report, or several runs' with their losses side by side.
fn report(runs: &[Inspected], text: &str) -> Result<String> {
    let mut reports: Vec<RunReport> = runs.iter().map(|r| run_report(r, text)).collect();
    if reports.len() == 1 {
        return Ok(serde_json::to_string_pretty(&reports.remove(0))?);
    }
    let comparison = Comparison {
        runs: runs.iter().map(|r| r.name.as_str()).collect(),
        loss: (0..runs[0].view.positions())
            .map(|pos| runs.iter().map(|r| r.view.loss(pos)).collect())
            .collect(),
        mean_loss: runs.iter().map(|r| r.view.mean_loss()).collect(),
    };
    let multi = MultiReport {
        text,
        comparison,
        runs: reports,
    };
    Ok(serde_json::to_string_pretty(&multi)?)
}
