//! What a run directory guarantees to its readers: bad directories are clear errors that
//! lose nothing, Python reads the checkpoint, older formats are named.

mod common;

use common::cli::*;

/// The latest checkpoint's directory in `run`.
fn ckpt(run: &Path) -> PathBuf {
    checkpoint::load_model(run).unwrap().path
}

/// Edits `file` of the latest checkpoint and records its new checksum, as a forger who knew
/// the format would: the checks past the checksum must still hold.
fn forge(run: &Path, file: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let dir = ckpt(run);
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    let old = microgpt::files::sha256_hex(&bytes);
    edit(&mut bytes);
    std::fs::write(dir.join(file), &bytes).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let new = microgpt::files::sha256_hex(&bytes);
    std::fs::write(dir.join("manifest.json"), manifest.replace(&old, &new)).unwrap();
}

/// The offset of the tensor data in a safetensors file.
fn data_start(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Restores every file under `run` after each case.
struct Snapshot(Vec<(PathBuf, Vec<u8>)>);

impl Snapshot {
    fn take(run: &Path) -> Self {
        let mut files = Vec::new();
        let mut dirs = vec![run.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        Snapshot(files)
    }

    fn restore(&self) {
        for (p, bytes) in &self.0 {
            std::fs::write(p, bytes).unwrap();
        }
    }

    /// Errors as `--resume`, changing no file; then restores the snapshot.
    fn resume_fails(&self, run: &Path) -> String {
        let before = Snapshot::take(run);
        let err = fails(&["train", "--resume", s(run)]);
        for (p, bytes) in &before.0 {
            let now = std::fs::read(p).unwrap();
            assert!(
                p.ends_with(".lock") || now == *bytes,
                "{} changed",
                p.display()
            );
        }
        self.restore();
        err
    }
}

/// A run of 10 steps stopped after 5 in a scratch directory: (dir, dataset, run).
fn stopped_run(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = tmp(name);
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(
        &data,
        &run,
        &["--steps", "10", "--stop-after", "5", "--num-samples", "0"],
    );
    (dir, data, run)
}

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

    // Stale temporary files of a killed writer are cleaned; intact again, it resumes.
    let stale = [
        run.join(".metrics.csv.tmp999999"),
        run.join("checkpoints/.step-00000006.tmp999999"),
    ];
    std::fs::write(&stale[0], "x").unwrap();
    std::fs::create_dir(&stale[1]).unwrap();
    ok(&["train", "--resume", s(&run), "--quiet"]);
    assert_eq!(rows(&run).len(), 10);
    assert!(stale.iter().all(|p| !p.exists()));
}

/// Edits `key` (a `"key": value` line) of config.json.
fn edit_config(run: &Path, key: &str, value: &str) -> String {
    let text = std::fs::read_to_string(run.join("config.json")).unwrap();
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !found && trimmed.starts_with(&format!("\"{key}\":")) {
            found = true;
            let indent = &line[..line.len() - trimmed.len()];
            let comma = if trimmed.ends_with(',') { "," } else { "" };
            if value != "DELETE" {
                out.push_str(&format!("{indent}\"{key}\": {value}{comma}\n"));
            } else if !comma.is_empty() {
                continue;
            } else {
                // The last key of its object: drop the comma before it.
                out.truncate(out.trim_end().trim_end_matches(',').len());
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(found, "no {key} in config.json");
    std::fs::write(run.join("config.json"), &out).unwrap();
    out
}

#[test]
fn config_json_is_read_strictly_and_must_describe_the_checkpoint() {
    let (dir, _, run) = stopped_run("strict");
    let snap = Snapshot::take(&run);
    let cases: &[(&str, &str, &str)] = &[
        // Values the command line refuses.
        ("lr", "-0.01", "--lr -0.01: must be a positive number"),
        (
            "temperature",
            "0",
            "--temperature 0.0: must be a positive number",
        ),
        ("eps", "-1e308", "--eps -1e+308: must be a positive number"),
        ("val_frac", "-1", "--val-frac -1"),
        ("beta1", "1.5", "--beta1 1.5: must be in [0, 1)"),
        (
            "batch_size",
            "1000000000000",
            "--batch-size 1000000000000: must be at most",
        ),
        ("batch_size", "1e12", "settings.schedule.batch_size = "),
        ("steps", "\"ten\"", "settings.schedule.steps = \"ten\""),
        // Deleted keys, optional ones included, and unknown ones.
        ("lr", "DELETE", "key settings.optimizer.lr is missing"),
        (
            "grad_clip",
            "DELETE",
            "key settings.optimizer.grad_clip is missing",
        ),
        (
            "activation",
            "DELETE",
            "key settings.model.activation is missing",
        ),
        ("dataset_sha256", "DELETE", "key dataset_sha256 is missing"),
        ("seed", "42, \"sede\": 1", "unknown key settings.data.sede"),
        // Valid values that are not what the checkpoint was trained with.
        (
            "beta1",
            "1e-8",
            "sets beta1 (--beta1) to 1e-8, but the checkpoint at step 5 was trained with 0.85",
        ),
        ("init_std", "0.1", "sets init_std (--init-std) to 0.1"),
        ("dtype", "\"f32\"", "sets dtype (--dtype) to \"f32\""),
        ("dataset_sha256", "\"00\"", "sets dataset_sha256 to 00"),
    ];
    for &(key, value, want) in cases {
        edit_config(&run, key, value);
        let err = snap.resume_fails(&run);
        assert!(err.contains(want), "{key} = {value}: {err}");
        edit_config(&run, key, value);
        let err = fails(&["sample", "--run", s(&run)]);
        assert!(err.contains(want), "sample, {key} = {value}: {err}");
        snap.restore();
    }
    // The architecture, in both of its places: settings and model.
    for (key, value, edited) in [
        ("n_embd", "8", "16"),
        ("n_head", "2", "4"),
        ("n_layer", "1", "2"),
        ("block_size", "8", "16"),
    ] {
        let text = std::fs::read_to_string(run.join("config.json")).unwrap();
        let from = format!("\"{key}\": {edited}");
        let wrong = text.replace(&format!("\"{key}\": {value}"), &from);
        assert_ne!(wrong, text, "{key}");
        std::fs::write(run.join("config.json"), &wrong).unwrap();
        let err = snap.resume_fails(&run);
        let flag = format!("--{}", key.replace('_', "-"));
        assert!(
            err.contains(&format!("sets {key} ({flag}) to {edited}, but the checkpoint at step 5 was trained with {value}")),
            "{key}: {err}"
        );
    }
    let text = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::write(
        run.join("config.json"),
        text.replace("\"relu\"", "\"gelu\""),
    )
    .unwrap();
    let err = snap.resume_fails(&run);
    assert!(
        err.contains("sets activation (--activation) to \"gelu\""),
        "{err}"
    );
    // Only one of the two places edited: the file contradicts itself.
    edit_config(&run, "n_layer", "2");
    let err = snap.resume_fails(&run);
    assert!(
        err.contains("model.n_layer is 1 but settings --n-layer is 2"),
        "{err}"
    );

    // Unchanged values of the run's settings are not refused, a path given another way
    // included.
    let same_data = dir.join(".").join("names.txt");
    ok(&[
        "train",
        "--resume",
        s(&run),
        "--quiet",
        "--lr",
        "0.01",
        "--input",
        s(&same_data),
    ]);
    assert_eq!(rows(&run).len(), 10);
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
    // A run of ours that never saved starts afresh; a new directory is created.
    let run = dir.join("new/run");
    train_ok(&data, &run, &["--steps", "3", "--num-samples", "0"]);
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    assert!(err.contains("start it again with train --out"), "{err}");
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
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with safetensors and numpy (.ci/run installs them)"
        );
        eprintln!("skipping: python3 with safetensors and numpy not available");
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
    let config: microgpt::config::ModelConfig =
        serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
    assert_eq!(config, model.config);
    let layout = model.config.layout();
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
        let ours: Vec<u64> = model.params[spec.range()]
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(values, ours, "{}", spec.name);
    }
}

/// A run directory written by microgpt 0.1 (format 1, settings stored as the command-line
/// struct): every command says it is from an older version, none guesses.
#[test]
fn run_directories_of_an_older_format_are_named_as_such() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_v1");
    for args in [
        vec!["train", "--resume", s(&fixture)],
        vec!["sample", "--run", s(&fixture)],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("made by an older version of microgpt (format 1"),
            "{args:?}: {err}"
        );
    }
}
