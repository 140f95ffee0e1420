"""The API a learner expects: the command line's setting names and defaults, a Run's
settings, metrics, weights, samples, inspection and resume, sweeps, help() and the stub."""

import ast
import inspect
import math
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import microgpt
from conftest import TINY


def test_settings_are_the_command_lines_flags_and_defaults(cli):
    help_text = " ".join(cli("train", "--help").stdout.split())
    for name, default in microgpt.SETTINGS.items():
        flag = "--" + name.replace("_", "-")
        assert re.search(rf"{flag}[ =<]", help_text), flag
        # Up to the next flag's definition (a help text may name other flags: "a multiple of --n-head").
        shown = re.search(rf"{flag} <[A-Z0-9_]+> (?:(?! --[a-z-]+ <).)*?\[default: ([^\]]+)\]", help_text)
        if default is None or name == "input":
            continue
        assert shown, f"{flag} shows no default"
        value = shown.group(1)
        if isinstance(default, str):
            assert value == default, flag
        else:
            assert float(value) == default, flag


def test_help_shows_every_setting_with_its_default():
    params = inspect.signature(microgpt.train).parameters
    for name, default in microgpt.SETTINGS.items():
        assert params[name].default == default
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    for thing in [microgpt, microgpt.train, microgpt.Run, microgpt.Run.sample, microgpt.Run.inspect,
                  microgpt.Run.resume, microgpt.Run.weights, microgpt.sweep, microgpt.gradcheck, microgpt.Error]:
        assert thing.__doc__ and len(thing.__doc__) > 40, thing


def test_the_stub_names_every_setting_in_order_and_the_api():
    stub = Path(microgpt.__file__).with_name("__init__.pyi")
    tree = ast.parse(stub.read_text())
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    names = [s.target.id for s in settings.body if isinstance(s, ast.AnnAssign)]
    assert names == list(microgpt.SETTINGS)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(microgpt.__all__) - {"SETTINGS"} <= defined
    assert Path(microgpt.__file__).with_name("py.typed").exists()


@pytest.fixture(scope="module")
def run(tmp_path_factory, names):
    out = tmp_path_factory.mktemp("api") / "run"
    return microgpt.train(out=out, input=str(names), steps=40, val_frac=0.1, eval_every=10, num_samples=4,
                          progress=False, **TINY)


def test_a_run_knows_its_settings_steps_and_samples(run, names):
    assert isinstance(run, microgpt.Run) and os.fspath(run) == run.path
    assert run.settings == {**microgpt.SETTINGS, **TINY, "input": str(names), "steps": 40, "val_frac": 0.1,
                            "eval_every": 10, "num_samples": 4}
    assert run.config["num_params"] > 0 and run.config["settings"]["model"]["n_embd"] == 8
    assert (run.step, run.steps, run.finished) == (40, 40, True)
    assert len(run.samples) == 4 and all(isinstance(s, str) for s in run.samples)
    assert repr(run) == f"Run({run.path!r}: step 40 of 40)"
    assert microgpt.Run(Path(run.path)).settings == run.settings


def test_metrics_are_columns_of_numpy_arrays_or_a_dataframe(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    m = run.metrics
    assert list(m) == ["step", "loss", "lr", "tokens", "elapsed_s", "val_loss"]
    assert all(isinstance(c, np.ndarray) and len(c) == 40 for c in m.values())
    assert m["step"].tolist() == list(range(1, 41)) and m["step"].dtype == np.int64
    evaluated = ~np.isnan(m["val_loss"])
    assert m["step"][evaluated].tolist() == [10, 20, 30, 40]
    assert np.all(np.diff(m["tokens"]) > 0) and m["lr"][0] == microgpt.SETTINGS["lr"]
    monkeypatch.delitem(sys.modules, "pandas")
    pd = pytest.importorskip("pandas")
    frame = run.metrics
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(m)


def test_weights_are_views_of_one_array(run):
    w = run.weights()
    assert list(w)[:3] == ["wte", "wpe", "lm_head"] and w["layer0.mlp_fc1"].shape == (32, 8)
    bases = {id(a.base) for a in w.values()}
    assert len(bases) == 1 and all(a.base is not None for a in w.values()), "views, not copies"
    total = sum(a.size for a in w.values())
    assert total == run.config["num_params"] and next(iter(w.values())).base.size == total


def test_sample_and_inspect(run):
    names = run.sample(n=6, temperature=0.7, seed=1)
    assert len(names) == 6 and names == run.sample(n=6, temperature=0.7, seed=1)
    assert run.sample(n=0) == []
    report = run.inspect("anna")
    assert report["text"] == "anna" and len(report["positions"]) == 5
    assert report["attention"].shape == (1, 2, 5, 5) and report["probs"].shape == (5, 27)
    assert np.allclose(report["attention"].sum(axis=-1), 1.0)
    assert np.allclose(report["probs"].sum(axis=-1), 1.0)
    losses = [p["loss"] for p in report["positions"]]
    assert math.isclose(report["mean_loss"], sum(losses) / len(losses))
    assert [p["input"] for p in report["positions"]] == ["⟨BOS⟩", "a", "n", "n", "a"]
    assert len(report["positions"][0]["top5"]) == 5
    assert run.inspect("anna", engine="scalar")["engine"] == "scalar f64"


def test_resume_extends_a_run(tmp_path, names):
    run = microgpt.train(out=tmp_path / "r", input=str(names), steps=10, num_samples=0, progress=False, **TINY)
    assert run.finished and run.samples == []
    assert run.resume(steps=15, progress=False) is run
    assert (run.step, run.steps) == (15, 15) and len(run.metrics["loss"]) == 15
    with pytest.raises(microgpt.Error, match="is finished"):
        run.resume(progress=False)


def test_train_without_out_keeps_the_run_in_a_temporary_directory(names):
    run = microgpt.train(input=str(names), steps=3, num_samples=1, progress=False, **TINY)
    assert Path(run.path).is_dir() and run.finished and len(run.samples) == 1


def test_training_releases_the_gil(tmp_path, names):
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.002)

    thread = threading.Thread(target=tick)
    thread.start()
    started = time.perf_counter()
    microgpt.train(out=tmp_path / "gil", input=str(names), steps=3000, num_samples=0, progress=False,
                   n_embd=64, n_head=4, block_size=16, threads=1)
    took = time.perf_counter() - started
    stop.set()
    thread.join()
    during = [t for t in ticks if started < t < started + took]
    # Holding the GIL, the thread would tick only when the run reports (every 0.1 s).
    assert took > 0.3 and len(during) > 5 * took / 0.1, (took, len(during))


def test_sweep_trains_the_grid_and_skips_finished_runs(tmp_path, names, capsys):
    base = dict(TINY, input=str(names), steps=8, num_samples=0)
    grid = {"n_embd": [4, 8], "activation": ["relu", "gelu"]}
    runs = microgpt.sweep(grid, tmp_path / "sw", progress=False, **base)
    expected = ["n_embd=4,activation=relu", "n_embd=4,activation=gelu", "n_embd=8,activation=relu",
                "n_embd=8,activation=gelu"]
    assert [Path(r.path).name for r in runs] == expected
    assert [(r.settings["n_embd"], r.settings["activation"]) for r in runs] == [
        (4, "relu"), (4, "gelu"), (8, "relu"), (8, "gelu")]
    assert all(r.finished for r in runs)
    capsys.readouterr()
    again = microgpt.sweep(grid, tmp_path / "sw", progress=False, **base)
    assert [r.path for r in again] == [r.path for r in runs]
    assert capsys.readouterr().out.count("already done") == 4
    longer = microgpt.sweep({"lr": [0.01]}, tmp_path / "sw2", progress=False, **base)
    assert Path(longer[0].path).name == "lr=0.01"
    with pytest.raises(microgpt.Error, match="--extend"):
        microgpt.sweep({"lr": [0.01]}, tmp_path / "sw2", progress=False, **dict(base, steps=12))
    (extended,) = microgpt.sweep({"lr": [0.01]}, tmp_path / "sw2", extend=True, progress=False, **dict(base, steps=12))
    assert extended.step == 12


def test_a_sweep_point_is_the_binarys_sweep_point(tmp_path, names, cli):
    base = dict(TINY, input=str(names), steps=6, num_samples=0)
    (run,) = microgpt.sweep({"n_layer": [2]}, tmp_path / "py", progress=False, **base)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in base.items()]
    cli("sweep", "--grid", "n_layer=2", *flags, "--out", tmp_path / "cli")
    cli_run = tmp_path / "cli" / "n_layer=2"
    assert Path(run.path).name == cli_run.name
    assert microgpt.Run(cli_run).settings == run.settings
    assert microgpt.Run(cli_run).metrics["loss"].tolist() == run.metrics["loss"].tolist()


def test_gradcheck_rows(names):
    rows = microgpt.gradcheck(input=str(names), n_embd=8, n_head=2, block_size=8, batches=1)
    assert [r["name"] for r in rows[:3]] == ["loss", "wte", "wpe"]
    assert all(r["ok"] and r["max_rel"] <= 1e-9 for r in rows)
    strict = microgpt.gradcheck(input=str(names), n_embd=8, n_head=2, block_size=8, batches=1, dtype="f32",
                                tolerance=1e-12)
    assert not all(r["ok"] for r in strict), "f32 is not within 1e-12 of f64"
