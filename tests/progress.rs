//! Long commands say how long they will take (issue #21): off a terminal, on stderr, once the
//! work is estimated at more than a few seconds; short ones stay quiet. (`sweep`'s estimate
//! is checked in tests/sweep.rs.)

mod common;

use common::cli::*;

/// `gradcheck` on `data` with a model `n_embd` wide, `batches` batches of 16: its stderr.
fn gradcheck_stderr(data: &Path, n_embd: &str, batches: &str) -> String {
    let out = microgpt(&[
        "gradcheck",
        "--input",
        s(data),
        "--n-embd",
        n_embd,
        "--n-head",
        "4",
        "--block-size",
        "16",
        "--batch-size",
        "16",
        "--batches",
        batches,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stderr)
}

#[test]
fn a_long_gradcheck_reports_progress_with_an_estimate_and_a_short_one_does_not() {
    let dir = tmp("progress_gradcheck");
    let data = dataset(&dir);
    assert_eq!(
        gradcheck_stderr(&data, "8", "1"),
        "",
        "a short check is quiet"
    );
    // About 10 s of the scalar reference engine on a quiet core: beyond the 3 s after which
    // the estimate is said (on a machine up to 3x faster too), with a line every batch after.
    let err = gradcheck_stderr(&data, "64", "48");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.first().is_some_and(
            |l| l.starts_with("checking 48 batches of 16: about ") && l.contains(" in all (")
        ),
        "{err}"
    );
    assert!(lines.len() >= 2, "{err}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains("% done, ") && l.contains(" | eta ")),
        "{err}"
    );
    assert!(lines.last().unwrap().contains("100% done"), "{err}");
}
