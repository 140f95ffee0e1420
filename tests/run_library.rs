//! The run loop as a library (`microgpt::training::run`), without the command line: an
//! observer that stops a run at a step boundary, a resume that ends where an uninterrupted
//! run ends, bit for bit, the same run as the binary trains, and `metrics.csv` that grows
//! while the run trains.

mod common;
use common::cli::*;
use microgpt::rundir::metrics::Row;
use microgpt::settings::{RunSettings, SettingsMap};
use microgpt::training::interrupt::Outcome;
use microgpt::training::run::{self, Observer};
use std::ops::ControlFlow;
use std::time::Duration;

fn settings(data: &Path) -> RunSettings {
    let mut s = RunSettings::default();
    s.data.input = Some(data.to_path_buf());
    (s.model.n_embd, s.model.n_head, s.model.block_size) = (8, 2, 8);
    s.schedule.steps = 12;
    s.system.save_every = 5;
    s.system.threads = 1;
    s
}

/// Stops the run after step `at`.
struct StopAt(usize);

impl Observer for StopAt {
    fn step(&mut self, row: &Row) -> ControlFlow<()> {
        if row.step == self.0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[test]
fn an_observer_stops_a_run_and_resume_finishes_it_as_one_run_would() {
    let dir = tmp("library_stop_resume");
    let data = dataset(&dir);
    let set = settings(&data);
    let whole = dir.join("whole");
    let done = run::train(&set, Some(&whole), None, &mut ()).unwrap();
    assert_eq!(
        (done.outcome, done.step, done.samples.len()),
        (Outcome::Done, 12, 20)
    );

    let split = dir.join("split");
    let stopped = run::train(&set, Some(&split), None, &mut StopAt(7)).unwrap();
    assert_eq!((stopped.outcome, stopped.step), (Outcome::Interrupted, 7));
    assert!(!stopped.finished() && stopped.samples.is_empty());
    let resumed = run::resume(&split, &SettingsMap::new(), None, &mut ()).unwrap();
    assert_eq!((resumed.outcome, resumed.step), (Outcome::Done, 12));
    assert_eq!(resumed.samples, done.samples);
    same_metrics(&whole, &split);
    same_checkpoint(&whole, &split);

    // The binary trains the same run.
    let cli = dir.join("cli");
    let mut args = vec!["train", "--input", s(&data), "--out", s(&cli)];
    args.extend_from_slice(TINY);
    args.extend(["--steps", "12", "--save-every", "5", "--threads", "1"]);
    ok(&args);
    same_metrics(&whole, &cli);
    same_checkpoint(&whole, &cli);
}

/// Sleeps past the metrics interval once, then checks what `metrics.csv` holds.
struct Follow {
    dir: PathBuf,
    seen: Option<usize>,
}

impl Observer for Follow {
    fn step(&mut self, row: &Row) -> ControlFlow<()> {
        match row.step {
            3 => std::thread::sleep(Duration::from_millis(2100)),
            4 => self.seen = Some(rows(&self.dir).len()),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[test]
fn metrics_grow_while_the_run_trains() {
    let dir = tmp("library_metrics_follow");
    let data = dataset(&dir);
    let mut set = settings(&data);
    set.system.save_every = 0;
    let out = dir.join("run");
    let mut follow = Follow {
        dir: out.clone(),
        seen: None,
    };
    run::train(&set, Some(&out), None, &mut follow).unwrap();
    // No checkpoint before the end, yet the rows up to step 4 were on disk at step 4.
    assert_eq!(follow.seen, Some(4));
    assert_eq!(rows(&out).len(), 12);
}

#[test]
fn quiet_without_a_run_directory_still_prints_the_samples() {
    let dir = tmp("quiet_no_out");
    let data = dataset(&dir);
    let mut args = vec!["train", "--input", s(&data), "--quiet", "--steps", "3"];
    args.extend_from_slice(TINY);
    args.extend(["--num-samples", "4"]);
    let printed = ok(&args);
    assert_eq!(
        printed.lines().filter(|l| l.starts_with("sample ")).count(),
        4,
        "{printed}"
    );
    assert!(!printed.contains("num params"), "{printed}");
}

#[test]
fn train_warns_when_lines_are_cropped_to_the_block() {
    let dir = tmp("crop_warning");
    let data = dir.join("long.txt");
    std::fs::write(
        &data,
        "a short one\nand a line far longer than the block\nok\n",
    )
    .unwrap();
    let out = microgpt(&[
        "train",
        "--input",
        s(&data),
        "--block-size",
        "8",
        "--n-embd",
        "8",
        "--n-head",
        "2",
        "--steps",
        "1",
        "--num-samples",
        "0",
        "--quiet",
    ]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("warning: 2 of 3 lines"), "{err}");
    assert!(err.contains("--data stream"), "{err}");
}
