//! What a run directory guarantees to its readers: bad directories are clear errors that
//! lose nothing, Python reads the checkpoint, older formats are named.

mod common;

use common::cli::*;

#[test]
fn bad_run_directories_are_clear_errors_and_lose_nothing() {
    let dir = tmp("bad");
    let data = dataset(&dir);
    let run = dir.join("run");
    train_ok(
        &data,
        &run,
        &["--steps", "10", "--stop-after", "5", "--num-samples", "0"],
    );
    let model_bytes = std::fs::read(run.join("model.safetensors")).unwrap();

    // Training afresh into a run directory would overwrite it.
    let o = train(&data, &run, &["--steps", "10"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("already holds a trained run"));
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        model_bytes
    );

    // Not a run directory.
    let err = fails(&["sample", "--run", s(&dir)]);
    assert!(err.contains("not a run directory"), "{err}");
    let err = fails(&["train", "--resume", s(&dir.join("nowhere"))]);
    assert!(err.contains("not a run directory"), "{err}");

    // A different dataset vocabulary.
    let mut changed = std::fs::read_to_string(&data).unwrap();
    changed.push_str("qwx\n");
    std::fs::write(&data, changed).unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    assert!(err.contains("vocabulary"), "{err}");
    dataset(&dir);

    // Truncated, corrupt and missing checkpoints.
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "model.safetensors",
            model_bytes[..model_bytes.len() / 2].to_vec(),
            "truncated or corrupt",
        ),
        (
            "model.safetensors",
            b"\xff\xff\xff\xff not a checkpoint".to_vec(),
            "truncated or corrupt",
        ),
        (
            "optimizer.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ".to_vec(),
            "not a microgpt checkpoint",
        ),
    ];
    for (file, bytes, want) in cases {
        let original = std::fs::read(run.join(file)).unwrap();
        std::fs::write(run.join(file), &bytes).unwrap();
        let err = fails(&["train", "--resume", s(&run)]);
        assert!(err.contains(want), "{file}: {err}");
        assert_eq!(
            std::fs::read(run.join(file)).unwrap(),
            bytes,
            "kept as found"
        );
        std::fs::write(run.join(file), original).unwrap();
    }
    std::fs::rename(run.join("model.safetensors"), dir.join("moved")).unwrap();
    let err = fails(&["sample", "--run", s(&run)]);
    assert!(err.contains("model.safetensors is missing"), "{err}");
    std::fs::rename(dir.join("moved"), run.join("model.safetensors")).unwrap();

    // A run directory from another format version.
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::write(
        run.join("config.json"),
        config.replace("\"format_version\": 2", "\"format_version\": 99"),
    )
    .unwrap();
    let err = fails(&["train", "--resume", s(&run)]);
    assert!(
        err.contains("newer version of microgpt (format 99"),
        "{err}"
    );
    std::fs::write(run.join("config.json"), config).unwrap();

    // Intact again: it resumes.
    ok(&["train", "--resume", s(&run), "--quiet"]);
    assert_eq!(rows(&run).len(), 10);
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
        .args(["-c", script, s(&run.join("model.safetensors"))])
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
