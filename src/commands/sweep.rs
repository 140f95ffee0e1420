//! The `sweep` command (mission A): one `train` run per combination of a grid of settings,
//! each a child process in its own directory `OUT/key=value,key=value`, then `compare`.
//! Running the same sweep again skips finished runs and resumes interrupted ones; the plan
//! (grid, directories, what each asks for) is the library's [`microgpt::training::sweep`].

mod process;

use super::progress::duration;
use crate::cli::SweepArgs;
use anyhow::{bail, Context, Result};
use microgpt::settings::validate::flag;
use microgpt::settings::{checked_value, RunSettings, SettingsMap};
use microgpt::training::interrupt::{self, Outcome};
use microgpt::training::sweep::{self, Action, Grid, Point};
use process::{dies_with_the_sweep, tee_last_line, wait_passing_interrupt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One run of the sweep.
struct Planned {
    name: String,
    dir: PathBuf,
    /// `train` flags, `--out` included.
    argv: Vec<String>,
    /// Every setting of the run.
    settings: RunSettings,
    /// What its directory asks for.
    action: Action,
}

pub fn run(args: &SweepArgs) -> Result<Outcome> {
    let out = args.out.as_path();
    let grid = sweep::parse_grid(&args.grid)?;
    let mut runs = plan(&grid, &args.flags.settings(), args.jobs, out)?;
    for run in &mut runs {
        run.action = sweep::action(&run.dir, &run.settings, args.extend)
            .with_context(|| format!("run {}", run.name))?;
    }
    if args.print_commands {
        for run in &runs {
            let words: Vec<String> = run.argv.iter().map(|a| shell_quote(a)).collect();
            println!("microgpt train {}", words.join(" "));
        }
        return Ok(Outcome::Done);
    }
    // The comparison at the end replaces only an earlier sweep's, unless asked: said before
    // training.
    microgpt::data::files::refuse_clobber(out, &super::compare::OUTPUTS, args.force)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    interrupt::install()?;
    println!(
        "sweep: {} runs, {} at a time, in {}",
        runs.len(),
        args.jobs.min(runs.len()),
        out.display()
    );
    let results = execute(&runs, args.jobs)?;

    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut unfinished = 0;
    for (run, result) in runs.iter().zip(results) {
        match result {
            Some(RunResult::Done | RunResult::AlreadyDone) => done.push(run.dir.clone()),
            Some(RunResult::Failed(why)) => failed.push(format!("{} ({why})", run.name)),
            Some(RunResult::Interrupted) | None => unfinished += 1,
        }
    }
    if unfinished > 0 {
        eprintln!(
            "sweep interrupted with {unfinished} of {} runs unfinished: run the same command again to resume it",
            runs.len()
        );
        return Ok(Outcome::Interrupted);
    }
    if !done.is_empty() {
        println!();
        super::compare::run(&done, out, true)?;
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} runs failed: {}",
            failed.len(),
            runs.len(),
            failed.join("; ")
        );
    }
    Ok(Outcome::Done)
}

/// Every combination, the last key varying fastest, each value checked by its setting's
/// rule and each run's settings validated.
fn plan(grid: &Grid, base: &RunSettings, jobs: usize, out: &Path) -> Result<Vec<Planned>> {
    let defaults = RunSettings::default().to_map();
    let runs = sweep::points(grid, out)?
        .into_iter()
        .map(
            |Point {
                 name,
                 dir,
                 values: combo,
             }| {
                let mut values = base.to_map();
                // Runs side by side share the cores: unless --threads was set, each gets a share.
                if jobs > 1 && values.get("threads") == defaults.get("threads") {
                    let share = (defaults["threads"].as_u64().unwrap_or(1) as usize / jobs).max(1);
                    values.insert("threads".into(), share.into());
                }
                // The flags give grid values as they were written (`--lr 1e-3`).
                let mut given = values.clone();
                for (k, v) in combo {
                    let text = serde_json::Value::String(v);
                    let value = checked_value(&k, &text).with_context(|| format!("run {name}"))?;
                    values.insert(k.clone(), value);
                    given.insert(k, text);
                }
                let settings = RunSettings::from_map(&values)?;
                settings.validate().with_context(|| format!("run {name}"))?;
                let mut argv = train_flags(&given, &defaults);
                argv.push("--out".into());
                argv.push(dir.display().to_string());
                Ok(Planned {
                    name,
                    dir,
                    argv,
                    settings,
                    action: Action::Train,
                })
            },
        )
        .collect::<Result<Vec<_>>>()?;
    sweep::distinct_settings(runs.iter().map(|r| (r.name.as_str(), &r.settings)))?;
    Ok(runs)
}

/// The flags that give `settings`: every value that differs from the default, and every
/// grid value (stored as a string).
fn train_flags(settings: &SettingsMap, defaults: &SettingsMap) -> Vec<String> {
    let mut argv = Vec::new();
    for (key, value) in settings {
        if defaults.get(key) == Some(value) {
            continue;
        }
        let flag = flag(key);
        match value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => {}
            serde_json::Value::Bool(true) => argv.push(flag),
            serde_json::Value::String(s) => argv.extend([flag, s.clone()]),
            other => argv.extend([flag, other.to_string()]),
        }
    }
    argv
}

enum RunResult {
    Done,
    /// Finished by an earlier sweep.
    AlreadyDone,
    Interrupted,
    Failed(String),
}

/// Runs `runs` as child processes, `jobs` at a time; `None` for runs never started
/// (Ctrl-C came first).
fn execute(runs: &[Planned], jobs: usize) -> Result<Vec<Option<RunResult>>> {
    let exe = std::env::current_exe().context("cannot find the microgpt executable")?;
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let clock = Mutex::new(Clock::new(runs, jobs));
    let results: Mutex<Vec<Option<RunResult>>> =
        Mutex::new((0..runs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(runs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= runs.len() || interrupt::requested() {
                    break;
                }
                let run = &runs[i];
                let started = Instant::now();
                clock
                    .lock()
                    .expect("no panics while locked")
                    .start(i, started);
                let result =
                    run_one(&exe, run).unwrap_or_else(|e| RunResult::Failed(format!("{e:#}")));
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                let took = started.elapsed().as_secs_f64();
                let eta = clock
                    .lock()
                    .expect("no panics while locked")
                    .finish(i, matches!(result, RunResult::Done).then_some(took));
                let eta = eta.map_or(String::new(), |s| format!(" | eta {}", duration(s)));
                let status = match &result {
                    RunResult::Done => format!("done in {took:.1}s{eta}"),
                    RunResult::AlreadyDone => "already done".into(),
                    RunResult::Interrupted => "interrupted".into(),
                    RunResult::Failed(why) => format!("FAILED: {why}{eta}"),
                };
                println!("[{n}/{}] {}: {status}", runs.len(), run.name);
                results.lock().expect("no panics while locked")[i] = Some(result);
            });
        }
    });
    Ok(results.into_inner().expect("no panics while locked"))
}

/// What the sweep's estimate of its end is made of.
struct Clock {
    jobs: usize,
    /// The runs not started yet that will train (not already done).
    to_start: Vec<bool>,
    /// When each running run started.
    running: Vec<(usize, Instant)>,
    /// How long each run trained in this sweep took.
    took: Vec<f64>,
}

impl Clock {
    fn new(runs: &[Planned], jobs: usize) -> Self {
        Clock {
            jobs,
            to_start: runs.iter().map(|r| r.action != Action::Done).collect(),
            running: Vec::new(),
            took: Vec::new(),
        }
    }

    fn start(&mut self, run: usize, at: Instant) {
        self.to_start[run] = false;
        self.running.push((run, at));
    }

    /// Records the end of `run` (`trained_in`: its time, when it trained to its end) and
    /// estimates the seconds left, if any run has trained yet and any is left.
    fn finish(&mut self, run: usize, trained_in: Option<f64>) -> Option<f64> {
        self.running.retain(|&(r, _)| r != run);
        self.took.extend(trained_in);
        let running: Vec<f64> = self
            .running
            .iter()
            .map(|(_, at)| at.elapsed().as_secs_f64())
            .collect();
        let to_start = self.to_start.iter().filter(|&&t| t).count();
        seconds_left(&self.took, to_start, &running, self.jobs)
    }
}

/// Seconds until the sweep ends: `to_start` runs at the mean time `took` of those trained so
/// far, and what that mean leaves of the `running` ones (seconds in), shared among the jobs.
fn seconds_left(took: &[f64], to_start: usize, running: &[f64], jobs: usize) -> Option<f64> {
    if took.is_empty() || to_start + running.len() == 0 {
        return None;
    }
    let mean = took.iter().sum::<f64>() / took.len() as f64;
    let left: f64 =
        to_start as f64 * mean + running.iter().map(|r| (mean - r).max(0.0)).sum::<f64>();
    let lanes = jobs.min(to_start + running.len()).max(1);
    Some(left / lanes as f64)
}

/// Trains one run to its end in a child process, resuming or skipping what a previous
/// sweep left in its directory (see [`action`]). Output goes to `DIR/train.log`.
fn run_one(exe: &Path, run: &Planned) -> Result<RunResult> {
    if run.action == Action::Train {
        // A directory `train --out` would refuse is left as it is: no train.log in it.
        microgpt::rundir::outdir::inspect_out(&run.dir)?;
    }
    std::fs::create_dir_all(&run.dir)
        .with_context(|| format!("cannot create {}", run.dir.display()))?;
    let argv: Vec<String> = match run.action {
        Action::Done => return Ok(RunResult::AlreadyDone),
        Action::Resume(steps) => vec![
            "--resume".into(),
            run.dir.display().to_string(),
            "--steps".into(),
            steps.to_string(),
        ],
        Action::Train => run.argv.clone(),
    };
    let log_path = run.dir.join("train.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("train")
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(Stdio::piped());
    // A process group of its own: a terminal's Ctrl-C reaches the sweep alone, which passes
    // every interrupt on once (a second signal would make the run exit without saving).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    dies_with_the_sweep(&mut command);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    // Its errors go to the log and are its own reason: another sweep's run may share the log.
    let stderr = child.stderr.take().expect("piped");
    let copied = std::thread::spawn(move || tee_last_line(stderr, log));
    let status = wait_passing_interrupt(&mut child)?;
    let last = copied.join().unwrap_or_default();
    Ok(match status.code() {
        Some(0) => RunResult::Done,
        Some(130) => RunResult::Interrupted,
        // Killed by the interrupt passed on before it could install its handler.
        None if interrupt::requested() => RunResult::Interrupted,
        _ => RunResult::Failed(format!(
            "{} (see {})",
            last.as_deref()
                .map_or("no output", |l| l.trim_start_matches("error: ")),
            log_path.display()
        )),
    })
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=,:+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::seconds_left;

    #[test]
    fn the_estimate_shares_the_runs_left_among_the_jobs() {
        assert_eq!(seconds_left(&[], 3, &[], 1), None, "nothing trained yet");
        assert_eq!(seconds_left(&[10.0], 0, &[], 2), None, "nothing left");
        assert_eq!(seconds_left(&[10.0, 20.0], 4, &[], 1), Some(60.0));
        assert_eq!(seconds_left(&[10.0, 20.0], 4, &[], 2), Some(30.0));
        // A run 5 s in has 10 s left of the 15 s mean; one past the mean, none.
        assert_eq!(seconds_left(&[15.0], 1, &[5.0, 20.0], 3), Some(25.0 / 3.0));
        // More jobs than runs left: the runs left set the pace.
        assert_eq!(seconds_left(&[10.0], 1, &[], 4), Some(10.0));
    }
}
