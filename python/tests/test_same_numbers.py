"""The same numbers as the command line: a run trained from Python and the same run from the
binary have the same metrics.csv (but for the wall clock) and the same checkpoint bytes;
`Run.inspect` is `microgpt inspect`'s JSON, `Run.sample` prints what `microgpt sample` does,
`Run.weights` is what safetensors reads, and `gradcheck` is `microgpt gradcheck`'s table."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import microgpt
from conftest import TINY, tiny_flags


def metrics_columns(run_dir: Path):
    """metrics.csv as written, without its wall clock: every value as its text."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]


def checkpoint_files(run_dir: Path):
    (step,) = sorted((run_dir / "checkpoints").iterdir())
    return {name: (step / name).read_bytes() for name in ("model.safetensors", "optimizer.safetensors")}


CASES = {
    # The default run's shape (d16), on a few steps, evaluating and saving on the way.
    "d16": dict(n_embd=16, n_head=4, block_size=16, steps=30, save_every=10, val_frac=0.1, eval_every=10, threads=1),
    # Batched f32 with the options: what the tensor engine's fast path runs.
    "f32": dict(TINY, steps=25, batch_size=4, dtype="f32", activation="gelu", lr_schedule="cosine",
                warmup_steps=3, grad_clip=1.0, weight_decay=0.1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_from_python_is_the_binarys_run(case, tmp_path, names, cli):
    settings = dict(CASES[case], input=str(names), num_samples=5)
    run = microgpt.train(out=tmp_path / "py", progress=False, **settings)
    flags = []
    for key, value in settings.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    printed = cli("train", *flags, "--out", tmp_path / "cli").stdout
    assert metrics_columns(tmp_path / "py") == metrics_columns(tmp_path / "cli")
    assert checkpoint_files(tmp_path / "py") == checkpoint_files(tmp_path / "cli")
    assert run.samples == (tmp_path / "cli" / "samples.txt").read_text().splitlines()
    for i, name in enumerate(run.samples):
        assert f"sample {i + 1:2}: {name}\n" in printed


def test_a_stopped_and_resumed_run_is_the_binarys_whole_run(tmp_path, names, cli):
    settings = dict(TINY, input=str(names), steps=20, save_every=5, num_samples=0)
    run = microgpt.train(out=tmp_path / "py", stop_after=7, progress=False, **settings)
    assert (run.step, run.finished) == (7, False)
    run.resume(progress=False)
    cli("train", *tiny_flags(steps=20, save_every=5, num_samples=0), "--input", names, "--out", tmp_path / "cli")
    assert metrics_columns(tmp_path / "py") == metrics_columns(tmp_path / "cli")
    assert checkpoint_files(tmp_path / "py") == checkpoint_files(tmp_path / "cli")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, names):
    out = tmp_path_factory.mktemp("trained") / "run"
    return microgpt.train(out=out, input=str(names), n_layer=2, steps=60, num_samples=3, progress=False, **TINY)


def test_weights_are_what_safetensors_reads(trained):
    (step,) = sorted(Path(trained.path, "checkpoints").iterdir())
    expected = load_file(str(step / "model.safetensors"))
    got = trained.weights()
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        assert np.array_equal(got[name], array), name


def test_f32_weights_keep_their_dtype(tmp_path, names):
    run = microgpt.train(out=tmp_path / "f32", input=str(names), steps=3, dtype="f32", progress=False, **TINY)
    (step,) = sorted(Path(run.path, "checkpoints").iterdir())
    expected = load_file(str(step / "model.safetensors"))
    for name, array in run.weights().items():
        assert array.dtype == np.float32 and np.array_equal(array, expected[name]), name


def test_inspect_is_the_binarys_json(trained, cli, tmp_path):
    for text in ["emma", "x", "abcdefgh"]:
        cli("inspect", "--run", trained.path, "--text", text, "--out", tmp_path / text)
        expected = json.loads((tmp_path / text / "inspect.json").read_text())
        got = trained.inspect(text)
        attention, probs = got.pop("attention"), got.pop("probs")
        ragged = expected.pop("attention")
        assert got == expected
        n_layer, n_head = 2, TINY["n_head"]
        t = len(expected["positions"])
        assert attention.shape == (n_layer, n_head, t, t)
        for layer in range(n_layer):
            for head in range(n_head):
                for q in range(t):
                    assert attention[layer, head, q, : q + 1].tolist() == ragged[layer][head][q]
                    assert not attention[layer, head, q, q + 1 :].any()
        assert probs.shape == (t, len(trained.config["vocab"]) + 1)
        for pos, position in enumerate(expected["positions"]):
            assert probs[pos, position["target_id"]] == position["p_target"]


def test_samples_are_the_binarys(trained, cli):
    def printed(*flags):
        out = cli("sample", "--run", trained.path, *flags).stdout
        return [line.split(": ", 1)[1] if ": " in line else "" for line in out.splitlines()]

    assert trained.sample() == printed()
    assert trained.sample() == trained.samples, "the run's own stream, as after training"
    assert trained.sample(n=7, temperature=1.3, seed=5) == printed("--num-samples", "7", "--temperature", "1.3", "--seed", "5")
    assert trained.sample(n=4, prompt="ma") == printed("--num-samples", "4", "--prompt", "ma")
    assert all(s.startswith("ma") for s in trained.sample(n=4, prompt="ma"))
    assert trained.sample(n=3, engine="scalar") == printed("--num-samples", "3", "--engine", "scalar")


def test_stream_samples_are_the_binarys(tmp_path, shakespeare, cli):
    run = microgpt.train(out=tmp_path / "s", input=str(shakespeare), data="stream", steps=20, num_samples=1,
                         progress=False, **TINY)
    assert len(run.samples) == 1 and len(run.samples[0]) == 300
    got = run.sample(prompt="ROMEO:", max_new_tokens=50, seed=3)
    out = cli("sample", "--run", run.path, "--prompt", "ROMEO:", "--max-new-tokens", "50", "--seed", "3").stdout
    assert got == [out[:-1]]
    assert got[0].startswith("ROMEO:") and len(got[0]) == 56
    two = run.sample(n=2, max_new_tokens=10)
    assert len(two) == 2 and all(s.startswith("\n") and len(s) == 11 for s in two)


def test_gradcheck_is_the_binarys_table(names, cli):
    for dtype in ["f64", "f32"]:
        rows = microgpt.gradcheck(input=str(names), n_embd=8, n_head=2, n_layer=2, block_size=8, batch_size=2,
                                  dtype=dtype, activation="gelu")
        out = cli("gradcheck", "--input", names, "--n-embd", "8", "--n-head", "2", "--n-layer", "2",
                  "--block-size", "8", "--batch-size", "2", "--dtype", dtype, "--activation", "gelu").stdout
        lines = [line for line in out.splitlines() if "max abs" in line]
        assert [r["name"] for r in rows] == [line.split()[0] for line in lines]
        for row, line in zip(rows, lines):
            # `max abs 3.138e-8  max rel 9.711e-9  OK`: Rust's exponents, to 4 digits.
            words = line.split()
            shown = {words[i] + " " + words[i + 1]: float(words[i + 2]) for i in (-7, -4)}
            assert shown["max abs"] == float(f"{row['max_abs']:.3e}"), line
            assert shown["max rel"] == float(f"{row['max_rel']:.3e}"), line
            assert (words[-1] == "OK" and words[-2] != "NOT") == row["ok"], line
        assert all(r["ok"] for r in rows)
    assert (rows[0]["name"], rows[0]["shape"]) == ("loss", (1, 1))
    assert (rows[1]["name"], rows[1]["shape"]) == ("wte", (27, 8))
