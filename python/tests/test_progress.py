"""Progress while training (tqdm's bar when installed, plain lines otherwise, nothing with
progress=False) and stopping: Ctrl-C or a notebook's stop button (a KeyboardInterrupt in the
main thread) stops the run at a step boundary, saved, and resuming it gives the run an
uninterrupted one would have been, byte for byte."""

import _thread
import sys
import threading
import types
from pathlib import Path

import pytest

import microgpt
from conftest import TINY
from test_same_numbers import checkpoint_files, metrics_columns


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_plain_lines_without_tqdm(tmp_path, names, capsys, no_tqdm):
    microgpt.train(out=tmp_path / "r", input=str(names), steps=200, val_frac=0.1, eval_every=50, num_samples=0,
                   **TINY)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "num docs: 32033 | vocab size: 27 | num params: 1264"
    steps = [line for line in out[1:] if line.startswith("step ")]
    assert steps and len(steps) == len(out) - 1
    assert steps[-1].startswith("step  200 /  200 | loss ") and " | val " in steps[-1] and " tok/s | eta 0s" in steps[-1]
    # Every evaluation is shown; at most a line per twentieth of the run besides.
    assert sum(" | val " in line for line in steps) == 4 and len(steps) <= 24


def test_no_output_without_progress(tmp_path, names, capsys):
    microgpt.train(out=tmp_path / "r", input=str(names), steps=50, num_samples=0, progress=False, **TINY)
    assert capsys.readouterr().out == ""


class FakeTqdm:
    made = []

    def __init__(self, total, initial, **kwargs):
        self.total, self.n, self.postfixes, self.closed = total, initial, [], False
        self.initial = initial
        FakeTqdm.made.append(self)

    def update(self, n):
        self.n += n

    def set_postfix_str(self, text, refresh=True):
        self.postfixes.append(text)

    def close(self):
        self.closed = True


def test_a_tqdm_bar_when_tqdm_is_installed(tmp_path, names, monkeypatch):
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    FakeTqdm.made.clear()
    run = microgpt.train(out=tmp_path / "r", input=str(names), steps=30, stop_after=12, num_samples=0, **TINY)
    run.resume()
    first, second = FakeTqdm.made
    assert (first.total, first.initial, first.n, first.closed) == (30, 0, 12, True)
    assert (second.total, second.initial, second.n, second.closed) == (30, 12, 30, True)
    assert second.postfixes[-1].startswith("loss ") and second.postfixes[-1].endswith(" tok/s")


LONG = dict(TINY, steps=10_000_000, save_every=0, num_samples=0)


def test_ctrl_c_stops_at_a_step_boundary_saved_and_resume_continues_exactly(tmp_path, names):
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt) as e:
        microgpt.train(out=tmp_path / "r", input=str(names), progress=False, **LONG)
    timer.join()
    message = str(e.value)
    assert message.startswith("interrupted at step ") and "of 10000000; saved in " in message
    assert f"microgpt.Run('{tmp_path / 'r'}').resume() continues it" in message
    run = microgpt.Run(tmp_path / "r")
    stopped = int(message.split()[3])
    assert stopped > 0 and run.step == stopped and len(run.metrics["loss"]) == stopped
    run.resume(stop_after=stopped + 10, progress=False)
    assert run.step == stopped + 10
    whole = microgpt.train(out=tmp_path / "whole", input=str(names), stop_after=stopped + 10, progress=False, **LONG)
    assert checkpoint_files(Path(run.path)) == checkpoint_files(Path(whole.path))
    assert metrics_columns(Path(run.path)) == metrics_columns(Path(whole.path))


def test_an_error_of_the_progress_display_stops_the_run_saved(tmp_path, names, monkeypatch, no_tqdm):
    def broken(self, row):
        raise RuntimeError(f"display broke at step {row['step']}")

    monkeypatch.setattr(microgpt.Progress, "update", broken)
    with pytest.raises(RuntimeError, match="display broke at step") as e:
        microgpt.train(out=tmp_path / "r", input=str(names), steps=40, num_samples=0, **TINY)
    broke_at = int(str(e.value).split()[-1])
    assert microgpt.Run(tmp_path / "r").step == broke_at
