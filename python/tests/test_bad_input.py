"""Bad input gets a clear exception of the right class, never a crash: unknown settings and
refused values (ValueError, with the command line's message), wrong types (TypeError),
missing files (FileNotFoundError), and a run directory a live run is writing
(microgpt.Error), which can still be read."""

import os
import subprocess
import time
from pathlib import Path

import pytest

import microgpt
from conftest import TINY, tiny_flags


def cli_error(cli, *flags):
    """The command line's one-line error for `train` with `flags`."""
    done = cli("train", *flags, check=False)
    assert done.returncode != 0
    return done.stderr.strip()


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(n_embed=8), 'unknown setting "n_embed": the settings are input, data, seed'),
        (dict(n_embd=-1), "--n-embd -1: must be at least 1"),
        (dict(n_embd=0), "--n-embd 0: must be at least 1"),
        (dict(lr=-0.01), "--lr -0.01: must be a positive number"),
        (dict(lr=float("nan")), "--lr null: must be a positive number"),
        (dict(beta1=1.5), "--beta1 1.5: must be in [0, 1)"),
        (dict(seed=-1), "--seed -1: must be 0 or more"),
        (dict(steps=2**70), "--steps 1180591620717411303424: is too large"),
        (dict(activation="swish"), "--activation \"swish\": must be one of relu, gelu, relu2"),
        (dict(dtype="f16"), "--dtype \"f16\": must be one of f32, f64, bf16"),
        (dict(n_embd=6, n_head=4), "n_embd (6) must be divisible by n_head (4)"),
        (dict(grad_clip=0), "--grad-clip 0: must be a positive number"),
    ],
)
def test_refused_settings_are_value_errors(settings, message, tmp_path, names):
    with pytest.raises(ValueError) as e:
        microgpt.train(out=tmp_path / "r", input=str(names), progress=False, **settings)
    assert message in str(e.value)
    assert not (tmp_path / "r").exists(), "nothing is created for a refused run"


def test_the_messages_are_the_command_lines(cli, names):
    # The command line words what its parser refuses its own way; the rule's reason is the same.
    for settings, flags in [(dict(n_embd=-1), ["--n-embd", "-1"]), (dict(lr=-0.01), ["--lr", "-0.01"])]:
        with pytest.raises(ValueError) as e:
            microgpt.train(input=str(names), progress=False, **settings)
        reason = str(e.value).split(": ", 1)[1]
        assert reason in cli_error(cli, "--input", names, *flags)
    # A combination only the library checks reads the same.
    with pytest.raises(ValueError) as e:
        microgpt.train(input=str(names), progress=False, n_embd=6, n_head=4)
    assert str(e.value) in cli_error(cli, "--input", names, "--n-embd", "6", "--n-head", "4")


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(n_embd="64"), "n_embd must be an int, not str"),
        (dict(n_embd=64.0), "n_embd must be an int, not float"),
        (dict(n_embd=True), "n_embd must be an int, not bool"),
        (dict(lr="0.1"), "lr must be a number, not str"),
        (dict(activation=1), "activation must be a str, not int"),
        (dict(input=["a.txt"]), "input must be a str, a path, a number or None, not list"),
        (dict(grad_clip="1"), "grad_clip: invalid type: string \"1\", expected f64"),
        (dict(input=3), "input: invalid type: integer `3`, expected path string"),
    ],
)
def test_wrong_types_are_type_errors(settings, message):
    with pytest.raises(TypeError) as e:
        microgpt.train(progress=False, **settings)
    assert message in str(e.value)


def test_arguments_that_are_not_settings(tmp_path, names):
    run = microgpt.train(out=tmp_path / "r", input=str(names), steps=3, num_samples=0, progress=False, **TINY)
    with pytest.raises(TypeError, match="n must be an int, not str"):
        run.sample(n="3")
    with pytest.raises(ValueError, match="n=-1: must be 0 or more"):
        run.sample(n=-1)
    with pytest.raises(ValueError, match=r"temperature=-1: must be 0 \(greedy\) or a positive number"):
        run.sample(temperature=-1)
    with pytest.raises(ValueError, match=r"temperature=1e-310: must be 0 \(greedy\) or at least"):
        run.sample(temperature=1e-310)
    # 0 is greedy decoding: the likeliest character each time, the same names every draw.
    assert run.sample(n=3, temperature=0, seed=1) == run.sample(n=3, temperature=0, seed=2)
    with pytest.raises(TypeError, match="temperature must be a number"):
        run.sample(temperature="hot")
    with pytest.raises(ValueError, match="prompt has characters outside the vocabulary: 'Z'"):
        run.sample(prompt="Zed")
    with pytest.raises(ValueError, match="--max-new-tokens is for stream runs"):
        run.sample(max_new_tokens=5)
    with pytest.raises(ValueError, match=r"invalid value \"gpu\" for engine \[possible values: tensor, scalar\]"):
        run.sample(engine="gpu")
    with pytest.raises(TypeError):
        run.sample(prompt=5)
    with pytest.raises(ValueError, match="the text is empty"):
        run.inspect("")
    with pytest.raises(ValueError, match="outside the run's vocabulary: 'A', 'E', 'M'"):
        run.inspect("EMMA")
    with pytest.raises(ValueError, match="the name has 9 characters, but the model sees only 8"):
        run.inspect("abcdefghi")
    with pytest.raises(ValueError, match="stop_after=0: must be at least 1"):
        microgpt.train(out=tmp_path / "s", input=str(names), stop_after=0, progress=False)
    with pytest.raises(TypeError, match="progress must be a bool"):
        microgpt.train(out=tmp_path / "s", input=str(names), progress="yes")
    with pytest.raises(ValueError, match='unknown setting "lr": the settings are input, data, seed, n_embd'):
        microgpt.gradcheck(input=str(names), lr=0.1)
    with pytest.raises(ValueError, match="batches=0: must be at least 1"):
        microgpt.gradcheck(input=str(names), batches=0)


def test_bad_grids(tmp_path, names):
    with pytest.raises(TypeError, match="grid must be a dict"):
        microgpt.sweep([("n_embd", [8])], tmp_path / "g")
    with pytest.raises(TypeError, match=r"grid\['n_embd'\] must be a list of values, not int"):
        microgpt.sweep({"n_embd": 8}, tmp_path / "g")
    with pytest.raises(ValueError, match='unknown grid key "n_embed"'):
        microgpt.sweep({"n_embed": [8]}, tmp_path / "g")
    with pytest.raises(ValueError, match="the grid is empty"):
        microgpt.sweep({}, tmp_path / "g")
    with pytest.raises(ValueError, match="has an empty value"):
        microgpt.sweep({"n_embd": []}, tmp_path / "g")
    with pytest.raises(ValueError, match="--n-embd -8: must be at least 1"):
        microgpt.sweep({"n_embd": [8, -8]}, tmp_path / "g", input=str(names))
    with pytest.raises(TypeError, match="n_embd must be an int, not str"):
        microgpt.sweep({"n_embd": ["wide"]}, tmp_path / "g", input=str(names))
    assert not (tmp_path / "g").exists(), "a refused sweep trains nothing"


def test_missing_files(tmp_path, names):
    with pytest.raises(FileNotFoundError, match="cannot read dataset .*nope.txt"):
        microgpt.train(out=tmp_path / "r", input=str(tmp_path / "nope.txt"), progress=False)
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        microgpt.Run(tmp_path / "missing")
    with pytest.raises(TypeError, match="path must be a str or a path, not int"):
        microgpt.Run(5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(microgpt.Error, match="is not a run directory \\(no config.json\\)"):
        microgpt.Run(tmp_path / "empty")
    run = microgpt.train(out=tmp_path / "r", input=str(names), steps=2, num_samples=0, progress=False, **TINY)
    os.remove(Path(run.path, "metrics.csv"))
    with pytest.raises(FileNotFoundError, match="cannot read .*metrics.csv"):
        run.metrics
    with pytest.raises(microgpt.Error, match="already holds a trained run"):
        microgpt.train(out=run.path, input=str(names), progress=False, **TINY)


def test_a_run_directory_a_live_run_is_writing(tmp_path, names, binary):
    out = tmp_path / "live"
    live = subprocess.Popen(
        [str(binary), "train", "--input", str(names), *tiny_flags(steps=10_000_000, save_every=20), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((out / "checkpoints").glob("step-*")):
            assert live.poll() is None, live.stderr.read()
            assert time.monotonic() < deadline, "the live run saved no checkpoint"
            time.sleep(0.05)
        run = microgpt.Run(out)
        with pytest.raises(microgpt.Error, match=f"is being trained by process {live.pid}"):
            run.resume(progress=False)
        with pytest.raises(microgpt.Error, match=f"is being trained by process {live.pid}"):
            microgpt.train(out=out, input=str(names), progress=False, **TINY)
        # Readers take no lock: a live run can be followed.
        assert run.step >= 20 and len(run.metrics["loss"]) >= 20
        assert len(run.sample(n=2)) == 2 and run.weights()["wte"].shape == (27, 8)
    finally:
        live.terminate()
        live.wait(timeout=60)
    assert live.returncode == 130, live.stderr.read()
    stopped = microgpt.Run(out).step
    assert stopped >= 20 and not microgpt.Run(out).finished
    assert microgpt.Run(out).resume(steps=stopped + 3, progress=False).step == stopped + 3
