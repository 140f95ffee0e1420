//! What a run directory guarantees to its readers: bad directories are clear errors that
//! lose nothing, `--out` replaces nothing it did not write, checkpoints are deterministic,
//! Python reads them (older formats: `old_formats.rs`).

mod common;
#[path = "common/rundir.rs"]
mod rundir;

use common::cli::*;
use rundir::*;

#[test]
fn bad_run_directories_are_clear_errors_and_lose_nothing() {
    let (dir, data, run) = stopped_run("bad");
    let snap = Snapshot::take(&run);
    let model = ckpt(&run).join("model.safetensors");
    let model_bytes = std::fs::read(&model).unwrap();

    // Training afresh into a run directory would overwrite it.
    let err = fails(&["train", "--input", s(&data), "--out", s(&run)]);
    assert!(err.contains("already holds a trained run"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);

    // Not a run directory.
    let err = fails(&["sample", "--run", s(&dir)]);
    assert!(err.contains("not a run directory"), "{err}");
    let err = fails(&["train", "--resume", s(&dir.join("nowhere"))]);
    assert!(err.contains("not a run directory"), "{err}");

    // A run directory from another format version.
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::write(
        run.join("config.json"),
        config.replace("\"format_version\": 3", "\"format_version\": 99"),
    )
    .unwrap();
    let err = snap.resume_fails(&run);
    assert!(
        err.contains("newer version of microgpt (format 99"),
        "{err}"
    );

    // The temporary a killed writer recorded in .lock is cleaned; names that only look
    // like temporaries are the user's, and stay. Intact again, the run resumes.
    let stale = run.join("checkpoints/.microgpt-tmp-999999-step-00000006");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), "x").unwrap();
    let record = "999999\ncheckpoints/.microgpt-tmp-999999-step-00000006\nend\n";
    std::fs::write(run.join(".lock"), record).unwrap();
    let users = [
        run.join(".metrics.csv.tmp999999"),
        run.join("checkpoints/.step-00000006.tmp999999"),
    ];
    std::fs::write(&users[0], "x").unwrap();
    std::fs::create_dir(&users[1]).unwrap();
    ok(&["train", "--resume", s(&run), "--quiet"]);
    assert_eq!(rows(&run).len(), 10);
    assert!(!stale.exists());
    assert!(users.iter().all(|p| p.exists()));
}

#[test]
fn a_changed_dataset_is_refused_on_resume() {
    let (_, data, run) = stopped_run("dataset");
    let snap = Snapshot::take(&run);
    // A different dataset: another vocabulary; the same lines in another order.
    let original = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, format!("{original}qwx\n")).unwrap();
    assert!(snap.resume_fails(&run).contains("vocabulary"));
    let mut lines: Vec<&str> = original.lines().collect();
    lines.reverse();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let err = snap.resume_fails(&run);
    assert!(
        err.contains("is not the text the run was trained on"),
        "{err}"
    );
    std::fs::write(&data, &original).unwrap();

    ok(&["train", "--resume", s(&run), "--quiet"]);
}

/// Checkpoint files are checked against the checksums recorded when they were saved.
#[test]
fn damaged_checkpoint_files_are_refused() {
    let (dir, _, run) = stopped_run("damaged");
    let snap = Snapshot::take(&run);
    let model = ckpt(&run).join("model.safetensors");
    let model_bytes = std::fs::read(&model).unwrap();
    // Truncated, corrupt, edited and missing checkpoint files.
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "model.safetensors",
            model_bytes[..model_bytes.len() / 2].to_vec(),
        ),
        (
            "model.safetensors",
            b"\xff\xff\xff\xff not a checkpoint".to_vec(),
        ),
        (
            "optimizer.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ".to_vec(),
        ),
    ];
    for (file, bytes) in cases {
        std::fs::write(ckpt(&run).join(file), &bytes).unwrap();
        let err = snap.resume_fails(&run);
        assert!(err.contains("does not match the checksum"), "{file}: {err}");
    }
    // A weight set to 1e300 by hand: sample refuses the file rather than print empty names.
    let mut huge = model_bytes.clone();
    let at = data_start(&huge);
    huge[at..at + 8].copy_from_slice(&1e300f64.to_le_bytes());
    std::fs::write(ckpt(&run).join("model.safetensors"), &huge).unwrap();
    let err = fails(&["sample", "--run", s(&run)]);
    assert!(err.contains("does not match the checksum"), "{err}");
    snap.restore();
    std::fs::rename(&model, dir.join("moved")).unwrap();
    let err = fails(&["sample", "--run", s(&run)]);
    assert!(err.contains("model.safetensors is missing"), "{err}");
    std::fs::rename(dir.join("moved"), &model).unwrap();
}

/// Files forged to keep their checksums still hold only finite weights and a possible Adam
/// state, at the checkpoint's step.
#[test]
fn impossible_states_are_refused_even_with_matching_checksums() {
    let (_, _, run) = stopped_run("forged");
    let snap = Snapshot::take(&run);
    // Forged files that keep their checksums: NaN, inf or huge weights, NaN or negative Adam
    // state, a wrong adam_t.
    for (file, value, want) in [
        (
            "model.safetensors",
            f64::NAN,
            "non-finite weight (NaN in wte)",
        ),
        (
            "model.safetensors",
            f64::INFINITY,
            "non-finite weight (inf in wte)",
        ),
        (
            "optimizer.safetensors",
            f64::NAN,
            "impossible Adam state (first moment NaN",
        ),
    ] {
        forge(&run, file, |b| {
            let at = data_start(b);
            b[at..at + 8].copy_from_slice(&value.to_le_bytes());
        });
        assert!(snap.resume_fails(&run).contains(want), "{want}");
        if file == "model.safetensors" {
            forge(&run, file, |b| {
                let at = data_start(b);
                b[at..at + 8].copy_from_slice(&value.to_le_bytes());
            });
            let err = fails(&["sample", "--run", s(&run)]);
            assert!(err.contains(want), "{err}");
            snap.restore();
        }
    }
    forge(&run, "optimizer.safetensors", |b| {
        let at = data_start(b) + (b.len() - data_start(b)) / 2;
        b[at..at + 8].copy_from_slice(&(-1.0f64).to_le_bytes());
    });
    let err = snap.resume_fails(&run);
    assert!(
        err.contains("impossible Adam state (second moment -1"),
        "{err}"
    );
    forge(&run, "optimizer.safetensors", |b| {
        let at = b.windows(10).position(|w| w == b"\"adam_t\":\"").unwrap() + 10;
        b[at] = b'0';
    });
    let err = snap.resume_fails(&run);
    assert!(err.contains("adam_t 0"), "{err}");
}

#[test]
fn out_never_replaces_files_it_did_not_write() {
    let dir = tmp("foreign");
    let data = dataset(&dir);
    for (file, content) in [
        ("config.json", "{\"theme\": \"dark\"}"),
        ("metrics.csv", "a,b\n1,2\n"),
        ("samples.txt", "my notes\n"),
    ] {
        let out = dir.join(file.replace('.', "_"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(file), content).unwrap();
        let o = train(&data, &out, &["--steps", "3"]);
        let err = text(&o.stderr);
        assert!(
            !o.status.success() && err.starts_with("error: --out"),
            "{err}"
        );
        assert!(err.contains("did not write"), "{err}");
        assert_eq!(std::fs::read_to_string(out.join(file)).unwrap(), content);
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "nothing added");
    }
    // `--out .` in a directory of the user's.
    let o = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args([
            "train",
            "--input",
            "names.txt",
            "--steps",
            "3",
            "--out",
            ".",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("(config_json, ...)"),
        "{}",
        text(&o.stderr)
    );
    // A run of ours that never committed a step starts afresh (its 3 rows came before its
    // first save, due at step 250); a new directory is created. With its samples, it is a
    // finished run whose checkpoints were removed: refused.
    let run = dir.join("new/run");
    train_ok(&data, &run, &["--steps", "3", "--num-samples", "0"]);
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    assert!(err.contains("holds no checkpoint"), "{err}");
    let err = text(&train(&data, &run, &["--steps", "3"]).stderr);
    assert!(
        err.contains("holds the results of a run (samples.txt)"),
        "{err}"
    );
    std::fs::remove_file(run.join("samples.txt")).unwrap();
    train_ok(&data, &run, &["--steps", "3", "--num-samples", "0"]);
    assert_eq!(rows(&run).len(), 3);
}

/// Two runs of the same settings write the same bytes into every checkpoint file (issue
/// #12); their manifests differ only in the wall-clock column of metrics.csv they cover.
#[test]
fn identical_runs_write_identical_checkpoints() {
    let dir = tmp("deterministic");
    let data = dataset(&dir);
    let flags = ["--steps", "6", "--num-samples", "2", "--save-every", "3"];
    let (a, b) = (dir.join("a"), dir.join("b"));
    train_ok(&data, &a, &flags);
    train_ok(&data, &b, &flags);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let read = |run: &Path| std::fs::read(ckpt(run).join(file)).unwrap();
        assert_eq!(read(&a), read(&b), "{file}");
    }
    let manifest = |run: &Path| {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ckpt(run).join("manifest.json")).unwrap())
                .unwrap();
        m.as_object_mut().unwrap().remove("metrics");
        m
    };
    assert_eq!(manifest(&a), manifest(&b));
    assert_eq!(
        std::fs::read(a.join("samples.txt")).unwrap(),
        std::fs::read(b.join("samples.txt")).unwrap()
    );
}

#[test]
fn python_safetensors_reads_the_checkpoint_as_written() {
    let python_ok = Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        common::missing("python3 with safetensors and numpy (.ci/run installs them)");
        return;
    }
    let dir = tmp("python");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(&data, &run, &["--steps", "5", "--num-samples", "0"]);
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, "np") as f:
    meta = f.metadata()
print(json.dumps({
    "meta": meta,
    "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": [repr(x) for x in v.ravel().tolist()]}
                for k, v in tensors.items()},
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, s(&ckpt(&run).join("model.safetensors"))])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = checkpoint::load_model(&run).unwrap();
    let meta = &j["meta"];
    assert_eq!(meta["format"], "microgpt");
    assert_eq!(meta["step"], "5");
    assert_eq!(meta["dtype"], "f64");
    let vocab: String = model.vocab.chars().iter().collect();
    assert_eq!(meta["vocab"].as_str().unwrap(), vocab);
    let config: microgpt::model::config::ModelConfig =
        serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
    assert_eq!(config, model.config);
    let layout = model.config.layout();
    let params = model.params().unwrap();
    assert_eq!(j["tensors"].as_object().unwrap().len(), layout.specs.len());
    for spec in &layout.specs {
        let t = &j["tensors"][&spec.name];
        assert_eq!(t["dtype"], "float64", "{}", spec.name);
        assert_eq!(t["shape"], serde_json::json!([spec.rows, spec.cols]));
        let values: Vec<u64> = t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse::<f64>().unwrap().to_bits())
            .collect();
        let ours: Vec<u64> = params[spec.range()].iter().map(|x| x.to_bits()).collect();
        assert_eq!(values, ours, "{}", spec.name);
    }
}
