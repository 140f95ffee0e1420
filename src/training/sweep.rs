//! A sweep's plan, whoever trains it (the command line's child processes, or Python one run
//! after another): the grid of settings and its combinations, each run's directory
//! `OUT/key=value,key=value`, and what a directory an earlier sweep left asks for (train,
//! resume, nothing). A run directory holding a run of other settings is an error, never
//! reused.

use crate::rundir::checkpoint::{self, RunConfig, CONFIG_FILE};
use crate::settings::validate::flag;
use crate::settings::{self, role, Role, RunSettings};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The grid: each setting (flat name) with its values as given, in order.
pub type Grid = Vec<(String, Vec<String>)>;

/// `KEY=V1,V2` arguments in order; keys are train settings (`n_embd` or `n-embd`).
pub fn parse_grid(specs: &[String]) -> Result<Grid> {
    let grid = specs
        .iter()
        .map(|spec| {
            let (key, values) = spec
                .split_once('=')
                .with_context(|| format!("--grid {spec:?} is not KEY=V1,V2,..."))?;
            let values = values.split(',').map(|v| v.trim().to_string()).collect();
            Ok((key.trim().to_string(), values))
        })
        .collect::<Result<Grid>>()?;
    checked(grid)
}

/// The grid with its keys as flat names (`n-embd` becomes `n_embd`), each a train setting
/// given once, and every value non-empty.
pub fn checked(grid: Grid) -> Result<Grid> {
    let keys: Vec<&str> = settings::all().map(|s| s.name).collect();
    if grid.is_empty() {
        bail!(
            "the grid is empty: give at least one --grid KEY=V1,V2 (keys: {})",
            keys.join(", ")
        );
    }
    let mut out: Grid = Vec::new();
    for (key, values) in grid {
        let key = key.replace('-', "_");
        if !keys.contains(&key.as_str()) {
            bail!(
                "unknown grid key {key:?}: it must be one of {}",
                keys.join(", ")
            );
        }
        if out.iter().any(|(k, _)| *k == key) {
            bail!("grid key {key} is given twice");
        }
        if values.is_empty() || values.iter().any(String::is_empty) {
            bail!("grid key {key} has an empty value");
        }
        out.push((key, values));
    }
    Ok(out)
}

/// One combination of the grid's values, and where its run goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// `key=value,key=value`: the directory's name.
    pub name: String,
    pub dir: PathBuf,
    /// `(key, value)` in the grid's order.
    pub values: Vec<(String, String)>,
}

/// Every combination, the last key varying fastest, each in its own directory of `out`.
pub fn points(grid: &Grid, out: &Path) -> Result<Vec<Point>> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let points: Vec<Point> = combos
        .into_iter()
        .map(|values| {
            let name = values
                .iter()
                .map(|(k, v)| format!("{k}={}", escape(v)))
                .collect::<Vec<_>>()
                .join(",");
            Point {
                dir: out.join(&name),
                name,
                values,
            }
        })
        .collect();
    distinct(points)
}

/// A grid value as part of a directory name: `/`, `\` and `%` percent-encoded, so values
/// that differ get names that differ.
fn escape(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('\\', "%5C")
}

/// Errors if two runs would share a directory (values the file system does not tell apart).
fn distinct(points: Vec<Point>) -> Result<Vec<Point>> {
    let mut dirs = HashMap::new();
    for a in &points {
        if let Some(b) = dirs.insert(&a.dir, &a.name) {
            bail!(
                "runs {b} and {} would share the directory {}: give grid values that differ",
                a.name,
                a.dir.display()
            );
        }
    }
    Ok(points)
}

/// Errors if two runs are the same run (`lr=0.01,1e-2`: values that parse to the same
/// setting).
pub fn distinct_settings<'a>(
    runs: impl IntoIterator<Item = (&'a str, &'a RunSettings)>,
) -> Result<()> {
    let mut seen = HashMap::new();
    for (name, settings) in runs {
        let key = serde_json::to_string(&settings.to_map())?;
        if let Some(other) = seen.insert(key, name) {
            bail!(
                "runs {other} and {name} are the same run (their settings are equal): give each grid value once"
            );
        }
    }
    Ok(())
}

/// What a planned run needs, given what its directory holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Train,
    /// Continue the run in the directory to this many steps.
    Resume(usize),
    Done,
}

/// What the run of `settings` in `dir` needs: a run there must have all of its settings,
/// and its length, or be extended (`extend`).
pub fn action(dir: &Path, settings: &RunSettings, extend: bool) -> Result<Action> {
    if !dir.join(CONFIG_FILE).exists() || checkpoint::latest_step(dir)?.is_none() {
        // Nothing trained there yet: `train --out` refuses anything but an unsaved run.
        return Ok(Action::Train);
    }
    let (stored, model) = checkpoint::load_run(dir)?;
    let (old, new) = (stored.settings.to_map(), settings.to_map());
    for (key, value) in &new {
        if role(key) != Some(Role::Identity) || old.get(key) == Some(value) {
            continue;
        }
        let dataset =
            |v: &serde_json::Value| v.as_str().and_then(|p| std::fs::canonicalize(p).ok());
        if key == "input" && dataset(value).as_ref() == Some(&stored.dataset) {
            continue;
        }
        bail!(
            "{} holds a run with {} {}, this sweep asks for {value}: sweep into another --out, or remove that directory",
            dir.display(),
            flag(key),
            old.get(key).unwrap_or(&serde_json::Value::Null)
        );
    }
    steps_action(&stored, model.step, settings.schedule.steps, extend, dir)
}

fn steps_action(
    stored: &RunConfig,
    done: usize,
    wanted: usize,
    extend: bool,
    dir: &Path,
) -> Result<Action> {
    let total = stored.settings.schedule.steps;
    if wanted < total {
        bail!(
            "{} holds a run of --steps {total} ({done} done), this sweep asks for --steps {wanted}: sweep into another --out, or remove that directory",
            dir.display()
        );
    }
    if wanted > total && !extend {
        bail!(
            "{} holds a run of --steps {total} ({done} done), this sweep asks for {wanted}: pass --extend to train it on (its schedule is then recomputed), or sweep into another --out",
            dir.display()
        );
    }
    Ok(if done >= wanted {
        Action::Done
    } else {
        Action::Resume(wanted)
    })
}
