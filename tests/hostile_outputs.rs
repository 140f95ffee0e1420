//! Issue #22: outputs replaced only when asked (item 7), and sweeps whose runs die with them,
//! plan in linear time, train each run once and give each failure its own reason (item 11).
#![cfg(unix)]

mod common;

use common::cli::*;
use common::deadline::run_str_within;
use common::live::*;
use std::time::{Duration, Instant};

fn sweep_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sweep",
        "--out",
        s(out),
        "--input",
        s(data),
        "--engine",
        "scalar",
    ];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    args
}

/// Fails unless `o` failed with a one-line error holding `needle`.
fn refused(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}{err}", text(&o.stdout));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "no {needle:?} in:\n{err}");
}

/// Item 7: `compare`, `inspect` and `sweep` replace only what microgpt wrote and nobody
/// changed since (recorded with its checksum); anything else needs `--force`. `inspect`
/// writes into a run directory under its lock.
#[test]
fn outputs_are_replaced_only_when_nothing_is_lost_or_with_force() {
    let dir = tmp("hostile_outputs");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "3", "--num-samples", "2"]);
    let cmp = dir.join("cmp");
    std::fs::create_dir_all(&cmp).unwrap();
    std::fs::write(cmp.join("summary.md"), "my notes").unwrap();
    let compare = ["compare", s(&run), "--out", s(&cmp)];
    refused(
        &microgpt(&compare),
        "summary.md exists, and microgpt did not write it",
    );
    assert_eq!(std::fs::read(cmp.join("summary.md")).unwrap(), b"my notes");
    ok(&[&compare[..], &["--force"]].concat());
    ok(&compare); // its own outputs, unchanged: replaced
    std::fs::write(cmp.join("loss_curves.png"), "edited").unwrap();
    refused(
        &microgpt(&compare),
        "loss_curves.png exists, and microgpt did not write it",
    );
    assert_eq!(
        std::fs::read(cmp.join("loss_curves.png")).unwrap(),
        b"edited"
    );

    let inspect = ["inspect", "--run", s(&run), "--text", "ka"];
    ok(&inspect);
    ok(&inspect);
    std::fs::write(run.join("attention.svg"), "mine").unwrap();
    refused(
        &microgpt(&inspect),
        "attention.svg exists, and microgpt did not write it",
    );
    let out = ["--out", s(&cmp)];
    ok(&[&inspect[..], &out].concat());
    std::fs::write(cmp.join("inspect.md"), "mine").unwrap();
    refused(
        &microgpt(&[&inspect[..], &out].concat()),
        "inspect.md exists",
    );
    // Into a run being trained: refused by its writer's lock, nothing written.
    let live = dir.join("live");
    let mut child = spawn(&train_args(&data, &live, &["--steps", "1000000"]));
    let _reaper = Reaper(child.id());
    ready(&mut child);
    while checkpoint::latest_step(&live).unwrap().is_none() {
        // The first checkpoint, at step 250: a run directory inspect can read.
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = microgpt(&["inspect", "--run", s(&live), "--text", "ka", "--force"]);
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    refused(&o, "is being trained by process");
    assert!(!live.join("attention.png").exists());

    // A sweep run again replaces its own comparison, not one edited since.
    let sw = dir.join("sw");
    let args = sweep_args(&data, &sw, &["--grid", "n_layer=1", "--steps", "3"]);
    ok(&args);
    ok(&args);
    std::fs::write(sw.join("summary.md"), "my notes").unwrap();
    refused(
        &microgpt(&args),
        "summary.md exists, and microgpt did not write it",
    );
    assert_eq!(std::fs::read(sw.join("summary.md")).unwrap(), b"my notes");
    ok(&[&args[..], &["--force"]].concat());
}

/// Item 11: a sweep killed outright (SIGKILL, no handler) once left its runs training as
/// orphans in their own process groups; now each gets SIGTERM, saves and stops.
#[test]
fn a_killed_sweep_takes_its_runs_with_it() {
    let dir = tmp("hostile_sweep_kill");
    let data = dataset(&dir);
    let out = dir.join("sw");
    let flags = [
        "--grid",
        "n_layer=1",
        "--steps",
        "100000",
        "--save-every",
        "0",
    ];
    let mut sweep = spawn(&sweep_args(&data, &out, &flags));
    let _reaper = Reaper(sweep.id());
    let run = out.join("n_layer=1");
    let log = run.join("train.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("num params")) {
        assert!(start.elapsed().as_secs() < 60, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(run.join(".lock")).unwrap();
    let pid: u32 = text.lines().next().unwrap().parse().unwrap();
    sweep.kill().unwrap();
    sweep.wait().unwrap();
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
            st.rsplit(')').next().unwrap().trim().starts_with('Z')
        })
    };
    let start = Instant::now();
    while !gone() {
        if start.elapsed().as_secs() >= 20 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the run {pid} kept training after its sweep was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // It saved at a step boundary (its only save, with --save-every 0), and resumes.
    assert!(whole(&run) > 0);
    resumes(&run);
}

/// Item 11: `--print-commands` was quadratic in the grid (40,000 points took 137 s); equal
/// values (`lr=0.01,1e-2,0.010`) trained three identical runs.
#[test]
fn sweeps_plan_in_linear_time_and_train_each_run_once() {
    let dir = tmp("hostile_sweep_plan");
    let data = dataset(&dir);
    let out = dir.join("sw");
    let values = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let (seeds, warmups) = (
        format!("seed={}", values(200)),
        format!("warmup_steps={}", values(200)),
    );
    let mut args = sweep_args(&data, &out, &["--grid", &seeds, "--grid", &warmups]);
    args.push("--print-commands");
    let o = run_str_within(&args, Duration::from_secs(60))
        .expect("planning 40,000 runs took over 60 s");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 40_000);

    let o = microgpt(&sweep_args(
        &data,
        &out,
        &["--grid", "lr=0.01,1e-2,0.010", "--steps", "3"],
    ));
    refused(&o, "runs lr=0.01 and lr=1e-2 are the same run");
    assert!(!out.exists(), "nothing trained");
}

/// Item 11: two sweeps sharing a run: the refused one gives its own reason (it once read
/// `num params: 4192` from the shared log); a directory a run refuses gets no train.log.
#[test]
fn each_failed_run_gives_its_own_reason_and_a_refused_directory_is_untouched() {
    let dir = tmp("hostile_sweep_share");
    let data = dataset(&dir);
    let out = dir.join("sw");
    let long = [
        "--grid",
        "n_layer=1",
        "--steps",
        "100000",
        "--save-every",
        "0",
    ];
    let mut first = spawn(&sweep_args(&data, &out, &long));
    let _reaper = Reaper(first.id());
    let log = out.join("n_layer=1/train.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("num params")) {
        assert!(start.elapsed().as_secs() < 60, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = microgpt(&sweep_args(&data, &out, &long));
    signal(&first, "TERM");
    let code = first.wait().unwrap().code();
    let (stdout, stderr) = (text(&second.stdout), text(&second.stderr));
    assert_eq!(second.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED: ") && stdout.contains("is being trained by process"),
        "{stdout}"
    );
    assert!(!stdout.contains("num params"), "{stdout}");
    assert_eq!(code, Some(130));

    let other = dir.join("other");
    let user = other.join("n_layer=1");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("notes.txt"), "mine").unwrap();
    let o = microgpt(&sweep_args(
        &data,
        &other,
        &["--grid", "n_layer=1", "--steps", "3"],
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("did not write (notes.txt"),
        "{}",
        text(&o.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(&user)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"]);
}

/// A pipe whose buffer is full, and its read end (kept open, never read).
fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array; fcntl and write act on the
    // write end we own.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        let chunk = [b'x'; 4096];
        while libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) > 0 {}
        libc::fcntl(fds[1], libc::F_SETFL, flags);
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// Principle: once a run trains, no write to the terminal stops or stalls it. A closed
/// pipe (`| head -1`) once killed it with SIGPIPE before it finished; a full pipe no one
/// reads kept it from saving on SIGTERM.
#[test]
fn a_closed_or_full_stdout_never_stops_a_run() {
    use std::io::BufRead;
    let dir = tmp("hostile_stdout");
    let data = dataset(&dir);
    let run = dir.join("closed");
    let mut child = spawn(&train_args(
        &data,
        &run,
        &["--steps", "300", "--save-every", "50"],
    ));
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut String::new()).unwrap();
    drop(stdout);
    let (code, err) = ends_within(child, 60);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(whole(&run), 300);
    assert!(run.join("samples.txt").exists());

    let run = dir.join("full");
    let (read_end, write_end) = full_pipe();
    let child = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(train_args(
            &data,
            &run,
            &["--steps", "1000000", "--save-every", "5"],
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _reaper = Reaper(child.id());
    let start = Instant::now();
    while checkpoint::latest_step(&run)
        .ok()
        .flatten()
        .is_none_or(|s| s < 20)
    {
        if start.elapsed().as_secs() >= 20 {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            panic!("the run never trained past its full stdout");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    let (code, err) = ends_within(child, 20);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted at step"), "{err}");
    whole(&run);
    drop(read_end);
}
