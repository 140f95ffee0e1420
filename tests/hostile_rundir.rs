//! Issue #22, data loss: a run directory trusts no name it did not verify. A directory moved
//! under a live run, a lock removed or replaced, checkpoint names that lie, files that only
//! look like temporaries, a `.lock` that is a link, special files where the run's files go:
//! each is a test here, and each loses nothing.
#![cfg(unix)]

mod common;
#[path = "common/rundir.rs"]
mod rundir;

use common::cli::*;
use common::deadline::run_str_within;
use common::live::*;
use rundir::*;
use std::time::{Duration, Instant};

/// Fails unless `err` is one `error: ` line holding every one of `needles`.
fn says(err: &str, needles: &[&str]) {
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line:\n{err}");
    for n in needles {
        assert!(err.contains(n), "no {n:?} in:\n{err}");
    }
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// Waits (at most 10 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed().as_secs() < 10, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Item 1: `mv mv1 mv1_old` under a live run, then `train --out mv1`. The first run saves
/// where its lock went and stops, naming it; the second has mv1 to itself.
#[test]
fn a_moved_live_run_is_saved_where_it_went_and_the_name_is_free() {
    let dir = tmp("hostile_moved");
    let data = dataset(&dir);
    let (mv1, old) = (dir.join("mv1"), dir.join("mv1_old"));
    let flags = ["--steps", "1000000", "--save-every", "100000"];
    let mut first = spawn(&train_args(&data, &mv1, &flags));
    let _reaper = Reaper(first.id());
    ready(&mut first);
    let metrics = mv1.join("metrics.csv");
    wait_for("rows in metrics.csv", || {
        metrics::read(&metrics).is_ok_and(|r| !r.is_empty())
    });
    std::fs::rename(&mv1, &old).unwrap();
    train_ok(&data, &mv1, &["--steps", "5", "--lr", "0.005", "--quiet"]);
    // The first notices at its next write (metrics every 2 s).
    let (code, err) = ends_within(first, 30);
    assert_eq!(code, Some(1), "{err}");
    let resume = format!("--resume {}", old.display());
    says(
        &err,
        &[
            "was moved to",
            s(&old),
            "steps before are saved in",
            &resume,
        ],
    );
    assert_eq!(whole(&mv1), 5);
    assert_eq!(rows(&mv1).len(), 5);
    ok(&["sample", "--run", s(&mv1), "--num-samples", "2"]);
    resumes(&old);
}

/// Item 2: a name in `checkpoints/` that is not this run's checkpoint (an empty directory,
/// a link, another run's, one renamed) is named and nothing is removed; one below the
/// run's own is left alone when the run moves on.
#[test]
fn checkpoint_names_are_verified_before_anything_is_used_or_removed() {
    let (dir, data, run) = stopped_run("hostile_ckpt_names");
    let good = run.join("checkpoints/step-00000005");
    let other = dir.join("other");
    train_ok(
        &data,
        &other,
        &["--steps", "7", "--lr", "0.005", "--num-samples", "0"],
    );
    let others = other.join("checkpoints/step-00000007");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    let snap = Snapshot::take(&run);
    let bogus = run.join("checkpoints/step-99999999");
    std::fs::create_dir(&bogus).unwrap();
    let err = snap.resume_fails(&run);
    says(&err, &["step-99999999", "not a checkpoint microgpt wrote"]);
    says(&fails(&["sample", "--run", s(&run)]), &["step-99999999"]);
    std::fs::remove_dir(&bogus).unwrap();

    let link = run.join("checkpoints/step-00000050");
    std::os::unix::fs::symlink(&others, &link).unwrap();
    says(
        &snap.resume_fails(&run),
        &["step-00000050", "symbolic link"],
    );
    std::fs::remove_file(&link).unwrap();
    assert!(others.join("manifest.json").exists());

    let foreign = run.join("checkpoints/step-00000007");
    copy(&others, &foreign);
    says(&snap.resume_fails(&run), &["another run's checkpoint"]);
    std::fs::remove_dir_all(&foreign).unwrap();

    let renamed = run.join("checkpoints/step-00000008");
    copy(&good, &renamed);
    says(
        &snap.resume_fails(&run),
        &["holds the checkpoint of step 5", "renamed"],
    );
    std::fs::remove_dir_all(&renamed).unwrap();
    assert!(good.join("model.safetensors").exists());

    // Below the run's own, another run's checkpoint is never taken for one to remove.
    let below = run.join("checkpoints/step-00000002");
    copy(&others, &below);
    std::fs::write(below.join("manifest.json"), {
        let m = std::fs::read_to_string(below.join("manifest.json")).unwrap();
        m.replace("\"step\": 7", "\"step\": 2")
    })
    .unwrap();
    ok(&["train", "--resume", s(&run), "--quiet"]);
    assert_eq!(whole(&run), 10);
    assert!(!good.exists());
    assert!(below.join("model.safetensors").exists());
}

/// Item 3: `--out` on a finished run whose checkpoints were removed (and a sweep run again
/// over one) refuses: its metrics and samples are results no checkpoint holds.
#[test]
fn out_never_replaces_the_results_of_a_run_whose_checkpoints_were_removed() {
    let dir = tmp("hostile_done");
    let data = dataset(&dir);
    let done = dir.join("done1");
    train_ok(&data, &done, &["--steps", "30", "--save-every", "10"]);
    std::fs::remove_dir_all(done.join("checkpoints")).unwrap();
    let before = Snapshot::take(&done);
    let o = train(&data, &done, &["--steps", "5"]);
    assert!(!o.status.success());
    says(
        &text(&o.stderr),
        &["holds the results of a run (30 steps in metrics.csv, samples.txt)"],
    );
    std::fs::remove_file(done.join("samples.txt")).unwrap();
    let o = train(&data, &done, &["--steps", "5"]);
    says(&text(&o.stderr), &["(30 steps in metrics.csv)"]);
    before.restore();
    assert_eq!(rows(&done).len(), 30);

    let out = dir.join("sweep");
    let mut sweep = vec!["sweep", "--grid", "n_layer=1", "--out", s(&out)];
    sweep.extend(["--input", s(&data), "--engine", "scalar"]);
    sweep.extend_from_slice(TINY);
    sweep.extend(["--steps", "30", "--save-every", "10", "--num-samples", "2"]);
    ok(&sweep);
    let run = out.join("n_layer=1");
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let o = microgpt(&sweep);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("holds the results of a run"));
    assert_eq!(rows(&run).len(), 30);
}

/// Item 4: only what microgpt created and recorded is ever cleaned; names that look like
/// temporaries are the user's.
#[test]
fn names_that_look_like_temporaries_are_never_removed() {
    let dir = tmp("hostile_tmp_names");
    let data = dataset(&dir);
    let out = dir.join("o");
    let album = out.join(".photos.tmp2024/album");
    std::fs::create_dir_all(&album).unwrap();
    std::fs::write(album.join("a.jpg"), "jpeg").unwrap();
    std::fs::write(out.join(".notes.tmp1"), "notes").unwrap();
    let o = train(&data, &out, &["--steps", "3"]);
    says(&text(&o.stderr), &["did not write (.notes.tmp1"]);
    assert!(album.join("a.jpg").exists() && out.join(".notes.tmp1").exists());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "nothing added");

    // In a run directory, neither they nor an unrecorded name of microgpt's own prefix.
    let (_, _, run) = stopped_run("hostile_tmp_names_run");
    let users = [
        run.join(".notes.tmp1"),
        run.join("checkpoints/.photos.tmp2024"),
        run.join("checkpoints/.microgpt-tmp-1-step-00000003"),
    ];
    std::fs::write(&users[0], "notes").unwrap();
    std::fs::create_dir(&users[1]).unwrap();
    std::fs::create_dir(&users[2]).unwrap();
    ok(&["train", "--resume", s(&run), "--quiet"]);
    assert_eq!(whole(&run), 10);
    assert!(users.iter().all(|p| p.exists()));
}

/// Item 5: `.lock` is never followed through a link nor truncated when it has other names.
#[test]
fn a_lock_file_is_never_followed_or_shared() {
    let dir = tmp("hostile_lock_links");
    let data = dataset(&dir);
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let o1 = dir.join("o1");
    std::fs::create_dir(&o1).unwrap();
    std::os::unix::fs::symlink(&victim, o1.join(".lock")).unwrap();
    says(
        &text(&train(&data, &o1, &["--steps", "3"]).stderr),
        &["symbolic link"],
    );
    let o2 = dir.join("o2");
    std::fs::create_dir(&o2).unwrap();
    std::os::unix::fs::symlink(dir.join("nothing"), o2.join(".lock")).unwrap();
    says(
        &text(&train(&data, &o2, &["--steps", "3"]).stderr),
        &["symbolic link"],
    );
    assert!(!dir.join("nothing").exists());
    let o3 = dir.join("o3");
    std::fs::create_dir(&o3).unwrap();
    std::fs::hard_link(&victim, o3.join(".lock")).unwrap();
    says(
        &text(&train(&data, &o3, &["--steps", "3"]).stderr),
        &["other names"],
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let o4 = dir.join("o4");
    std::fs::create_dir(&o4).unwrap();
    mkfifo(&o4.join(".lock"));
    let args = train_args(&data, &o4, &["--steps", "3"]);
    let o = run_str_within(&args, Duration::from_secs(10)).expect("hung on a FIFO .lock");
    says(&text(&o.stderr), &["is a FIFO, not microgpt's lock"]);
}

/// Item 6: a `.lock` removed under a live run is taken again by its writer, so a second
/// writer is still refused; a `.lock` replaced by another holder's stops the run without
/// another write, and the directory resumes.
#[test]
fn a_removed_lock_is_retaken_and_a_replaced_one_stops_its_writer() {
    let dir = tmp("hostile_lock_removed");
    let data = dataset(&dir);
    let run = dir.join("run");
    let flags = ["--steps", "1000000", "--save-every", "3"];
    let mut child = spawn(&train_args(&data, &run, &flags));
    let _reaper = Reaper(child.id());
    ready(&mut child);
    wait_for("a checkpoint", || {
        checkpoint::latest_step(&run).unwrap().is_some()
    });
    std::fs::remove_file(run.join(".lock")).unwrap();
    let pid = child.id().to_string();
    wait_for("the lock taken again", || {
        std::fs::read_to_string(run.join(".lock")).is_ok_and(|t| t.starts_with(&pid))
    });
    let err = fails(&["train", "--resume", s(&run), "--steps", "2000000"]);
    says(&err, &[&format!("is being trained by process {pid}")]);
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    resumes(&run);

    let mut child = spawn(&["train", "--resume", s(&run), "--steps", "2000000"]);
    let _reaper = Reaper(child.id());
    ready(&mut child);
    let resumed = whole(&run);
    wait_for("a new checkpoint", || {
        checkpoint::latest_step(&run).unwrap() > Some(resumed)
    });
    let taker = dir.join("taker");
    std::fs::write(&taker, format!("{}\n", std::process::id())).unwrap();
    let held = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&taker)
        .unwrap();
    held.try_lock().unwrap();
    std::fs::rename(&taker, run.join(".lock")).unwrap();
    let (code, err) = ends_within(child, 30);
    assert_eq!(code, Some(1), "{err}");
    let me = format!("process {} has taken the directory", std::process::id());
    says(
        &err,
        &[
            "was removed while this run trained",
            &me,
            "nothing more is saved",
        ],
    );
    whole(&run);
    drop(held);
    resumes(&run);
}

/// Item 10: a FIFO or a device where a run's file goes is an error, never a hang or an
/// endless read, in every command that reads it.
#[test]
fn special_files_in_a_run_directory_are_errors_not_hangs() {
    let (dir, data, run) = stopped_run("hostile_special");
    let cmp = dir.join("cmp");
    let resume = ["train", "--resume", s(&run)];
    let sample = ["sample", "--run", s(&run)];
    let compare = ["compare", s(&run), "--out", s(&cmp)];
    let inspect = ["inspect", "--run", s(&run), "--text", "ka"];
    let out = [&["train", "--input", s(&data), "--out", s(&run)][..], TINY].concat();
    let manifest = "checkpoints/step-00000005/manifest.json";
    let cases: [(&str, &[&[&str]]); 3] = [
        ("config.json", &[&resume, &sample, &compare, &inspect, &out]),
        (manifest, &[&resume, &sample, &inspect]),
        ("metrics.csv", &[&resume, &compare]),
    ];
    for (name, commands) in cases {
        let path = run.join(name);
        let saved = std::fs::read(&path).unwrap();
        for special in ["fifo", "/dev/zero"] {
            std::fs::remove_file(&path).unwrap();
            match special {
                "fifo" => mkfifo(&path),
                dev => std::os::unix::fs::symlink(dev, &path).unwrap(),
            }
            for args in commands {
                let o = run_str_within(args, Duration::from_secs(10))
                    .unwrap_or_else(|| panic!("{args:?} hung on {name} as {special}"));
                assert!(!o.status.success(), "{args:?} with {name} as {special}");
                says(&text(&o.stderr), &[name.rsplit('/').next().unwrap()]);
            }
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, saved).unwrap();
    }
    whole(&run);
}

/// Item 10: a run trained from a FIFO, or from `/dev/stdin` fed by a pipe, cannot read its
/// data again: resume says so at once (it once waited silently) and takes `--input` with
/// the same text.
#[test]
fn a_run_trained_from_a_pipe_resumes_from_a_file_with_the_same_text() {
    let dir = tmp("hostile_pipe_input");
    let data = dataset(&dir);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let feed = |to: PathBuf, data: PathBuf| {
        std::thread::spawn(move || std::fs::write(to, std::fs::read(data).unwrap()).unwrap())
    };
    let writer = feed(fifo.clone(), data.clone());
    let run = dir.join("run");
    train_ok(&fifo, &run, &["--steps", "10", "--stop-after", "5"]);
    writer.join().unwrap();
    let mut stuck = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(["train", "--resume", s(&run)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = stuck.stdin.take();
    let (code, err) = ends_within(stuck, 10);
    drop(stdin);
    assert_eq!(code, Some(1));
    says(
        &err,
        &[
            "is a FIFO",
            "resume with --input FILE holding the same text",
        ],
    );
    let err = fails(&["train", "--resume", s(&run), "--input", s(&dir)]);
    says(&err, &["is a directory"]);
    ok(&["train", "--resume", s(&run), "--input", s(&data), "--quiet"]);
    assert_eq!(whole(&run), 10);

    // `--input /dev/stdin` fed by a pipe, resumed with the same pipe left open.
    let piped = dir.join("piped");
    let mut args = vec!["train", "--input", "/dev/stdin", "--out", s(&piped)];
    args.extend_from_slice(TINY);
    args.extend(["--engine", "scalar", "--steps", "10", "--stop-after", "5"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &std::fs::read(&data).unwrap()).unwrap();
    drop(stdin);
    let (code, err) = ends_within(child, 30);
    assert_eq!(code, Some(0), "{err}");
    let mut stuck = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(["train", "--resume", s(&piped)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = stuck.stdin.take();
    let (code, err) = ends_within(stuck, 10);
    drop(stdin);
    assert_eq!(code, Some(1), "{err}");
    says(&err, &["/dev/stdin", "resume with --input FILE"]);
    ok(&[
        "train",
        "--resume",
        s(&piped),
        "--input",
        s(&data),
        "--quiet",
    ]);
    assert_eq!(whole(&piped), 10);
}
