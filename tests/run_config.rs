//! `config.json` is read strictly: its keys, the command line's rules for every value, and
//! agreement with the checkpoint it describes, each refused with the key or flag named.

mod common;
#[path = "common/rundir.rs"]
mod rundir;

use common::cli::*;
use rundir::*;

#[test]
fn config_json_is_read_strictly() {
    let (_, _, run) = stopped_run("strict");
    let snap = Snapshot::take(&run);
    let cases: &[(&str, &str, &str)] = &[
        // Values the command line refuses.
        ("lr", "-0.01", "--lr -0.01: must be a positive number"),
        (
            "temperature",
            "1e-310",
            "--temperature 1e-310: must be 0 (greedy) or at least",
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
}

/// The model's shape, edited in config.json, is never used for a checkpoint of another:
/// the setting is named, never an assertion or a silent switch of architecture.
#[test]
fn config_json_must_describe_the_checkpoint() {
    let (dir, _, run) = stopped_run("architecture");
    let snap = Snapshot::take(&run);
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
