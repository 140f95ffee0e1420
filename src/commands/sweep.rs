//! The `sweep` command (mission A): one `train` run per combination of a grid of settings,
//! each a child process in its own directory `OUT/key=value,key=value`, then `compare`.
//! Running the same sweep again skips finished runs and resumes interrupted ones; a run
//! directory holding a run of other settings is an error, never reused.

mod process;

use crate::cli::{self, Cli, Command, SweepArgs};
use anyhow::{bail, Context, Result};
use clap::Parser;
use microgpt::rundir::checkpoint::{self, RunConfig, CONFIG_FILE};
use microgpt::settings::validate::flag;
use microgpt::settings::{role, Role, RunSettings, SettingsMap, ROLES};
use microgpt::training::interrupt::{self, Outcome};
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

/// What a planned run needs, given what its directory holds.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    Train,
    /// Continue the run in the directory to this many steps.
    Resume(usize),
    Done,
}

pub fn run(args: &SweepArgs) -> Result<Outcome> {
    let out = args
        .train
        .out
        .as_deref()
        .context("sweep needs --out DIR for its runs")?;
    if args.train.resume.is_some() || args.train.stop_after.is_some() {
        bail!("--resume and --stop-after are for single runs; to resume a sweep, run it again");
    }
    let grid = parse_grid(&args.grid)?;
    let mut runs = plan(&grid, &args.train.settings(), args.jobs, out)?;
    for run in &mut runs {
        run.action = action(run, args.extend).with_context(|| format!("run {}", run.name))?;
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

/// `KEY=V1,V2` arguments in order; keys are train settings (`n_embd` or `n-embd`).
fn parse_grid(specs: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    let keys: Vec<&str> = ROLES.iter().map(|(k, _)| *k).collect();
    if specs.is_empty() {
        bail!(
            "the grid is empty: give at least one --grid KEY=V1,V2 (keys: {})",
            keys.join(", ")
        );
    }
    let mut grid: Vec<(String, Vec<String>)> = Vec::new();
    for spec in specs {
        let (key, values) = spec
            .split_once('=')
            .with_context(|| format!("--grid {spec:?} is not KEY=V1,V2,..."))?;
        let key = key.trim().replace('-', "_");
        if !keys.contains(&key.as_str()) {
            bail!(
                "unknown grid key {key:?}: it must be one of {}",
                keys.join(", ")
            );
        }
        if grid.iter().any(|(k, _)| *k == key) {
            bail!("grid key {key} is given twice");
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            bail!("--grid {spec:?} has an empty value");
        }
        grid.push((key, values));
    }
    Ok(grid)
}

/// Every combination, the last key varying fastest, each checked by the train parser.
fn plan(
    grid: &[(String, Vec<String>)],
    base: &RunSettings,
    jobs: usize,
    out: &Path,
) -> Result<Vec<Planned>> {
    let defaults = RunSettings::default().to_map();
    let mut combos: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for (key, values) in grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.as_str(), v.as_str()));
                    c
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|combo| {
            let name = combo
                .iter()
                .map(|(k, v)| format!("{k}={}", escape(v)))
                .collect::<Vec<_>>()
                .join(",");
            let dir = out.join(&name);
            let mut settings = base.to_map();
            // Runs side by side share the cores: unless --threads was set, each gets a share.
            if jobs > 1 && settings.get("threads") == defaults.get("threads") {
                let share = (defaults["threads"].as_u64().unwrap_or(1) as usize / jobs).max(1);
                settings.insert("threads".into(), share.into());
            }
            for &(k, v) in &combo {
                settings.insert(k.into(), serde_json::Value::String(v.into()));
            }
            let mut argv = train_flags(&settings, &defaults);
            argv.push("--out".into());
            argv.push(dir.display().to_string());
            let parsed = Cli::try_parse_from(
                ["microgpt", "train"]
                    .into_iter()
                    .map(String::from)
                    .chain(argv.iter().cloned()),
            );
            let settings = match parsed {
                Ok(Cli {
                    command: Command::Train(a),
                }) => a.settings(),
                Ok(_) => unreachable!("parsed the train subcommand"),
                Err(e) => bail!("run {name}: {}", cli::one_line(&e)),
            };
            settings.validate().with_context(|| format!("run {name}"))?;
            Ok(Planned {
                name,
                dir,
                argv,
                settings,
                action: Action::Train,
            })
        })
        .collect::<Result<Vec<_>>>()
        .and_then(distinct)
}

/// A grid value as part of a directory name: `/`, `\` and `%` percent-encoded, so values
/// that differ get names that differ.
fn escape(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('\\', "%5C")
}

/// Errors if two runs would share a directory (values the file system does not tell apart)
/// or are the same run (`lr=0.01,1e-2`: values that parse to the same setting).
fn distinct(runs: Vec<Planned>) -> Result<Vec<Planned>> {
    let mut dirs = std::collections::HashMap::new();
    let mut settings = std::collections::HashMap::new();
    for a in &runs {
        if let Some(b) = dirs.insert(&a.dir, &a.name) {
            bail!(
                "runs {b} and {} would share the directory {}: give grid values that differ",
                a.name,
                a.dir.display()
            );
        }
        let key = serde_json::to_string(&a.settings.to_map())?;
        if let Some(b) = settings.insert(key, &a.name) {
            bail!(
                "runs {b} and {} are the same run (their settings are equal): give each grid value once",
                a.name
            );
        }
    }
    Ok(runs)
}

/// What `run` needs given its directory: a run there must have all of its settings, and
/// its length, or be extended (`--extend`).
fn action(run: &Planned, extend: bool) -> Result<Action> {
    if !run.dir.join(CONFIG_FILE).exists() || checkpoint::latest_step(&run.dir)?.is_none() {
        // Nothing trained there yet: `train --out` refuses anything but an unsaved run.
        return Ok(Action::Train);
    }
    let (stored, model) = checkpoint::load_run(&run.dir)?;
    let (old, new) = (stored.settings.to_map(), run.settings.to_map());
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
            run.dir.display(),
            flag(key),
            old.get(key).unwrap_or(&serde_json::Value::Null)
        );
    }
    steps_action(
        &stored,
        model.step,
        run.settings.schedule.steps,
        extend,
        &run.dir,
    )
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

/// The flags that give `settings`: every value that differs from the default, and every
/// grid value (stored as a string).
fn train_flags(settings: &SettingsMap, defaults: &SettingsMap) -> Vec<String> {
    let mut argv = Vec::new();
    for (key, value) in settings {
        if defaults.get(key) == Some(value) {
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
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
                let result =
                    run_one(&exe, run).unwrap_or_else(|e| RunResult::Failed(format!("{e:#}")));
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                let status = match &result {
                    RunResult::Done => format!("done in {:.1}s", started.elapsed().as_secs_f64()),
                    RunResult::AlreadyDone => "already done".into(),
                    RunResult::Interrupted => "interrupted".into(),
                    RunResult::Failed(why) => format!("FAILED: {why}"),
                };
                println!("[{n}/{}] {}: {status}", runs.len(), run.name);
                results.lock().expect("no panics while locked")[i] = Some(result);
            });
        }
    });
    Ok(results.into_inner().expect("no panics while locked"))
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
