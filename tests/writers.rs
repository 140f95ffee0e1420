//! Who writes a run directory and how a writer may end: one writer at a time (an OS lock,
//! released by the kernel however the process ends), SIGTERM and SIGHUP saved like Ctrl-C,
//! and SIGKILL at random instants losing no step.
#![cfg(unix)]

mod common;

use common::cli::*;
use common::live::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_and_sighup_save_at_a_step_boundary_like_ctrl_c() {
    let dir = tmp("signals");
    let data = dataset(&dir);
    for name in ["TERM", "HUP"] {
        let run = dir.join(name);
        let args = train_args(&data, &run, &["--steps", "1000000", "--save-every", "0"]);
        let mut child = spawn(&args);
        ready(&mut child);
        signal(&child, name);
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{name}: {err}");
        assert!(
            err.contains("interrupted at step") && err.contains("--resume"),
            "{err}"
        );
        resumes(&run);
    }
}

/// A second signal while the first waits for the step boundary exits at once, without
/// saving; the last checkpoint stays whole.
#[test]
fn a_second_signal_exits_without_saving() {
    let dir = tmp("second_signal");
    let data = dataset(&dir);
    let run = dir.join("run");
    // Steps of a tenth of a second or more: both signals land within one.
    let args = [
        "train",
        "--input",
        s(&data),
        "--out",
        s(&run),
        "--engine",
        "scalar",
        "--n-embd",
        "128",
        "--n-head",
        "2",
        "--steps",
        "1000000",
        "--save-every",
        "1",
    ];
    let mut child = spawn(&args);
    ready(&mut child);
    while checkpoint::latest_step(&run).unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Past the end of that save (its checkpoint read back, the old one removed): inside the
    // next step.
    std::thread::sleep(Duration::from_millis(30));
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(20));
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("second interrupt: exiting without saving"),
        "{err}"
    );
    assert!(!err.contains("saved"), "{err}");
    resumes(&run);
}

#[test]
fn a_live_run_has_one_writer_and_any_number_of_readers() {
    let dir = tmp("live");
    let data = dataset(&dir);
    let run = dir.join("run");
    let args = train_args(&data, &run, &["--steps", "1000000", "--save-every", "1"]);
    let mut child = spawn(&args);
    ready(&mut child);
    let pid = child.id();
    while checkpoint::latest_step(&run).unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let holder = format!("is being trained by process {pid}");
    let err = fails(&train_args(&data, &run, &["--steps", "10"]));
    assert!(err.contains(&holder), "{err}");
    let err = fails(&["train", "--resume", s(&run), "--steps", "2000000"]);
    assert!(err.contains(&holder), "{err}");
    // Readers take no lock, and always find a whole checkpoint while it is replaced.
    for _ in 0..5 {
        ok(&["sample", "--run", s(&run), "--num-samples", "2"]);
    }
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    whole(&run);
    // Killed outright, it leaves no stale lock: the kernel released it.
    let mut child = spawn(&["train", "--resume", s(&run)]);
    ready(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    resumes(&run);
}

/// Starts `a` and `b` together: one of them must be refused as a second writer; then
/// stops the other, which leaves `dir` whole.
fn race(a: &[&str], b: &[&str], dir: &Path) {
    let mut children = vec![spawn(a), spawn(b)];
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = loop {
        if let Some(i) = (0..2).find(|&i| children[i].try_wait().unwrap().is_some()) {
            break children.swap_remove(i);
        }
        assert!(Instant::now() < deadline, "neither writer was refused");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut winner = children.pop().unwrap();
    let out = lost.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("is being trained by"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    ready(&mut winner);
    signal(&winner, "INT");
    assert_eq!(winner.wait().unwrap().code(), Some(130));
    whole(dir);
}

#[test]
fn two_writers_started_together_one_is_refused() {
    let dir = tmp("together");
    let data = dataset(&dir);
    let run = dir.join("run");
    let args = train_args(&data, &run, &["--steps", "1000000", "--save-every", "1"]);
    race(&args, &args, &run);
    let resume = ["train", "--resume", s(&run)];
    race(&resume, &resume, &run);
}

/// A tiny xorshift: random instants without a dependency, the seed printed to replay them.
struct Rand(u64);

impl Rand {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// How long the kill test kills: past it, runs end on their own.
const KILL_BUDGET: Duration = Duration::from_secs(4);

/// Kills `train` at random instants until its run is finished, and tells what it saw.
struct Killer {
    rand: Rand,
    /// Kill instants are drawn from `0..span` microseconds after the start.
    span: u64,
    started: Instant,
    kills: usize,
    /// Kills that left a checkpoint half written or the one before not yet removed.
    mid_commit: usize,
    resumed_from: std::collections::BTreeSet<usize>,
}

impl Killer {
    /// Starts `train` (`--out`, or `--resume` once there is a checkpoint) and kills it
    /// until the run has its samples (written last), checking the directory after each kill.
    fn finish(&mut self, first: &[&str], run: &Path) {
        while !run.join("samples.txt").exists() {
            let resume = ["train", "--resume", s(run), "--quiet"];
            let args = match checkpoint::latest_step(run).unwrap() {
                Some(step) => {
                    self.resumed_from.insert(step);
                    &resume[..]
                }
                None => first,
            };
            let mut child = Command::new(env!("CARGO_BIN_EXE_microgpt"))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(self.rand.below(self.span)));
            let budget_left = self.started.elapsed() < KILL_BUDGET;
            if !budget_left || child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "{}", text(&out.stderr));
                continue;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            self.kills += 1;
            let entries = std::fs::read_dir(run.join("checkpoints")).map_or(0, |d| d.count());
            self.mid_commit += usize::from(entries > 1);
            if checkpoint::latest_step(run).unwrap().is_some() {
                whole(run);
            }
        }
    }
}

/// SIGKILL at random instants of runs that save every step (most land inside a save: it
/// is where the time goes), each run resumed until it ends: after every kill the directory
/// is whole, and every finished run equals the uninterrupted one bit for bit.
#[test]
fn kills_at_random_instants_lose_no_step() {
    let dir = tmp("kill");
    let data = dataset(&dir);
    let flags = [
        "--steps",
        "20",
        "--save-every",
        "1",
        "--val-frac",
        "0.1",
        "--eval-every",
        "3",
        "--num-samples",
        "4",
    ];
    let full = dir.join("full");
    let timer = Instant::now();
    train_ok(&data, &full, &flags);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut killer = Killer {
        rand: Rand(seed),
        // Up to a quarter of an uninterrupted run: each attempt gets a few saves in.
        span: (timer.elapsed().as_micros() as u64 / 4).max(2_000),
        started: Instant::now(),
        kills: 0,
        mid_commit: 0,
        resumed_from: Default::default(),
    };
    let mut runs = 0;
    while runs < 2 || (killer.kills < 60 && killer.started.elapsed() < KILL_BUDGET) {
        runs += 1;
        let run = dir.join(format!("run{runs}"));
        killer.finish(&train_args(&data, &run, &flags), &run);
        same_metrics(&full, &run);
        same_checkpoint(&full, &run);
        let samples = |d: &Path| std::fs::read_to_string(d.join("samples.txt")).unwrap();
        assert_eq!(samples(&full), samples(&run));
        let left: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "stale files left: {left:?}");
    }
    let Killer {
        kills,
        mid_commit,
        resumed_from,
        ..
    } = &killer;
    eprintln!(
        "kill test (seed {seed}): {kills} SIGKILLs over {runs} runs in {:.1}s; {mid_commit} left a save half done; resumed from {} distinct checkpoints",
        killer.started.elapsed().as_secs_f64(),
        resumed_from.len()
    );
    assert!(*kills >= 10, "only {kills} kills");
    assert!(resumed_from.len() >= 5, "resumed from {resumed_from:?}");
}

/// A sweep stopped by SIGTERM (as `timeout` or `kill` stop it) passes it on: the run it is
/// training saves at a step boundary, and it resumes.
#[test]
fn a_sweep_passes_sigterm_on_to_its_run() {
    let dir = tmp("sweep_signal");
    let data = dataset(&dir);
    let out = dir.join("sw");
    let mut args = vec!["sweep", "--grid", "n_layer=1", "--out", s(&out)];
    args.extend(["--input", s(&data)]);
    args.extend_from_slice(TINY);
    // ~40 s of steps: without the signal passed on, the run would end by itself, untimely.
    args.extend(["--engine", "scalar", "--steps", "100000"]);
    args.extend(["--save-every", "0", "--num-samples", "0"]);
    let sweep = spawn(&args);
    // Ready once the run has printed `num params`: its signal handler is in place.
    let run = out.join("n_layer=1");
    let log = run.join("train.log");
    let started = || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("num params"));
    let start = Instant::now();
    while !started() {
        assert!(start.elapsed().as_secs() < 60, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&sweep, "TERM");
    let o = sweep.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("interrupted at step"), "{log}");
    resumes(&run);
}
