"""microgpt from Python: train, sample and inspect tiny GPTs on a CPU.

The Rust library behind the ``microgpt`` command line, with the command line's setting
names (its flags with ``_``), defaults and messages, and the same numbers::

    import microgpt
    run = microgpt.train(input="names.txt", out="runs/d32", n_embd=32, steps=500)
    run.metrics            # loss per step: a pandas DataFrame, or a dict of numpy arrays
    run.sample(n=5, temperature=0.8)
    run.inspect("emma")["attention"].shape   # (n_layer, n_head, T, T)

``SETTINGS`` holds every setting's default. Training releases the GIL, shows progress (a
tqdm bar when tqdm is installed, plain lines otherwise) and stops at a step boundary, saved,
on Ctrl-C or a notebook's stop button: it then raises ``KeyboardInterrupt`` saying how far it
got; ``Run(out).resume()`` continues it.

Errors: a wrong type is a ``TypeError``, a bad setting or argument a ``ValueError`` (with the
command line's message), a missing file a ``FileNotFoundError``, anything else microgpt
refuses (a run directory another process is training, a corrupt checkpoint, a diverged run)
a ``microgpt.Error``. ``MICROGPT_MAX_MEMORY`` (``8G``, ``512M``) caps the memory a model may
be estimated to need, as ``--max-memory`` does.
"""

from __future__ import annotations

import errno
import inspect as _inspect
import os
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import _core
from ._core import Error
from ._progress import Progress

__all__ = ["SETTINGS", "Error", "Run", "gradcheck", "sweep", "train"]

#: Every run setting by name, with the command line's default (``threads``: this machine's
#: cores). The names are the command line's flags with ``_`` for ``-``.
SETTINGS: Dict[str, Any] = _core.defaults()


def _path(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or a path, not {type(value).__name__}")
    return os.fspath(value)


def _progress(progress: bool) -> Optional[Progress]:
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, not {type(progress).__name__}")
    return Progress() if progress else None


def train(*, out: Any = None, stop_after: Optional[int] = None, progress: bool = True, **settings: Any) -> "Run":
    """Trains a new run and returns it.

    ``out`` is its run directory (empty or absent; default: a new temporary directory);
    ``stop_after=N`` stops it, saved, after step N (``Run.resume()`` continues it). Every
    other keyword is a run setting: see the signature or ``microgpt.SETTINGS`` for the
    names and the command line's defaults (``microgpt train --help`` says what each does).
    An unknown setting or a value the command line refuses raises ``ValueError``.
    """
    out = tempfile.mkdtemp(prefix="microgpt-") if out is None else _path("out", out)
    _core.train(out, stop_after, _progress(progress), **settings)
    return Run(out)


def _signature(fixed: Sequence[_inspect.Parameter], settings: Mapping[str, Any]) -> _inspect.Signature:
    """A signature that shows every setting with its default: what help() and editors show."""
    kind = _inspect.Parameter.KEYWORD_ONLY
    params = list(fixed)
    for name, default in settings.items():
        kind_of = type(default) if default is not None else Any
        params.append(_inspect.Parameter(name, kind, default=default, annotation=kind_of))
    return _inspect.Signature(params)


_KW = _inspect.Parameter.KEYWORD_ONLY
train.__signature__ = _signature(  # type: ignore[attr-defined]
    [
        _inspect.Parameter("out", _KW, default=None, annotation=Optional[str]),
        _inspect.Parameter("stop_after", _KW, default=None, annotation=Optional[int]),
        _inspect.Parameter("progress", _KW, default=True, annotation=bool),
    ],
    SETTINGS,
)


class Run:
    """A run directory (``microgpt train --out DIR``, or ``microgpt.train(out=DIR)``).

    Reading it takes no lock: a run that is training may be read; its latest checkpoint is
    what ``weights``, ``sample`` and ``inspect`` use, and ``metrics`` holds every step
    written so far.
    """

    def __init__(self, path: Any) -> None:
        path = _path("path", path)
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "no such run directory", path)
        #: The run directory, as given.
        self.path: str = path
        _core.read_config(path)

    def __repr__(self) -> str:
        return f"Run({self.path!r}: step {self.step} of {self.steps})"

    def __fspath__(self) -> str:
        return self.path

    @property
    def settings(self) -> Dict[str, Any]:
        """Every setting of the run by name (``config.json``'s, flattened)."""
        return _core.read_config(self.path)[0]

    @property
    def config(self) -> Dict[str, Any]:
        """``config.json``: the settings by group, the model, the dataset and its split."""
        return _core.read_config(self.path)[1]

    @property
    def step(self) -> int:
        """The steps its latest checkpoint has done (0 before the first save)."""
        return _core.latest_step(self.path) or 0

    @property
    def steps(self) -> int:
        """The run's total steps."""
        return self.settings["steps"]

    @property
    def finished(self) -> bool:
        """Whether the run trained all its steps."""
        return self.step >= self.steps

    @property
    def samples(self) -> List[str]:
        """The samples drawn when the run finished (``samples.txt``; none before)."""
        try:
            with open(os.path.join(self.path, "samples.txt"), encoding="utf-8", newline="") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        if self.settings["data"] == "stream":
            return [text[:-1]] if text else []
        return text.split("\n")[:-1]

    @property
    def metrics(self) -> Any:
        """``metrics.csv``: ``step``, ``loss``, ``lr``, ``tokens``, ``elapsed_s`` and
        ``val_loss`` (NaN where not evaluated), as a pandas DataFrame when pandas is
        installed, else a dict of numpy arrays. Read anew each time."""
        columns = _core.metrics(self.path)
        try:
            import pandas as pd
        except ImportError:
            return columns
        return pd.DataFrame(columns, copy=False)

    def weights(self) -> Dict[str, np.ndarray]:
        """The latest checkpoint's weights under its names (``wte``, ``layer0.attn_wq``, ...),
        ``[out, in]`` arrays in the run's dtype: what ``safetensors.numpy.load_file`` reads
        from ``model.safetensors``. They are views of one array."""
        flat, places = _core.weights(self.path)
        return {name: flat[o : o + r * c].reshape(r, c) for name, o, r, c in places}

    def sample(
        self,
        n: Optional[int] = None,
        temperature: Optional[float] = None,
        prompt: str = "",
        max_new_tokens: Optional[int] = None,
        seed: Optional[int] = None,
        engine: Optional[str] = None,
    ) -> List[str]:
        """Samples as ``microgpt sample`` prints them: names (lines runs; ``n`` defaults to the
        run's ``num_samples``), or continuations after ``prompt`` (stream runs; one, of
        ``max_new_tokens`` characters, 300 by default). ``temperature`` defaults to the run's;
        without ``seed`` the run's own RNG stream continues as after training (so the same
        call gives the same samples); ``engine`` ``"tensor"`` or ``"scalar"``."""
        return _core.sample(self.path, n, temperature, prompt, max_new_tokens, seed, engine)

    def inspect(self, text: str, engine: Optional[str] = None) -> Dict[str, Any]:
        """What the model predicts at every position of ``text`` (a name, or a passage of a
        stream run): ``microgpt inspect``'s ``inspect.json`` (``positions`` with each input,
        target, ``p_target``, ``loss`` and ``top5``; ``mean_loss``; ``settings``, ...), with
        ``attention`` as an ``[n_layer, n_head, T, T]`` array (query, key; zero above the
        diagonal) and ``probs``, the next-token distributions, as ``[T, vocab_size]``."""
        report, attention, probs = _core.inspect(self.path, text, engine)
        report["attention"] = attention
        report["probs"] = probs
        return report

    def resume(
        self, steps: Optional[int] = None, *, stop_after: Optional[int] = None, progress: bool = True, **settings: Any
    ) -> "Run":
        """Continues the run from its latest checkpoint, to ``steps`` in all when given (which
        extends a finished run). Settings of how it runs (``threads``, ``save_every``,
        ``eval_every``, ...) may change; those of what it computes may not (``ValueError``).
        Refused while another process trains it (``microgpt.Error``)."""
        if steps is not None:
            settings["steps"] = steps
        _core.resume(self.path, stop_after, _progress(progress), **settings)
        return self


def _text(value: Any) -> str:
    """A grid value as its run directory's name shows it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return "none" if value is None else str(value)


def sweep(grid: Mapping[str, Sequence[Any]], out: Any, *, extend: bool = False, progress: bool = True, **settings: Any) -> List[Run]:
    """Trains every combination of ``grid`` (``{"n_embd": [16, 32], "activation": ["relu",
    "gelu"]}``, the last key varying fastest) with the other ``settings``, one run after
    another, each in ``out/key=value,key=value`` as ``microgpt sweep`` names them, and returns
    the runs. Running the same sweep again skips finished runs and resumes interrupted ones;
    ``extend=True`` trains finished runs on to more ``steps``; a directory holding a run of
    other settings is refused before anything trains."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict of setting -> values, not {type(grid).__name__}")
    out = _path("out", out)
    texts, objects = [], {}
    for key, values in grid.items():
        if not isinstance(key, str):
            raise TypeError(f"grid keys must be str, not {type(key).__name__}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"grid[{key!r}] must be a list of values, not {type(values).__name__}")
        texts.append((key, [_text(v) for v in values]))
        objects[key.replace("-", "_")] = {_text(v): v for v in values}
    _core.check_settings(**settings)
    plan = []
    for name, run_dir, values in _core.sweep_points(texts, out):
        point = dict(settings, **{k: objects[k][v] for k, v in values})
        action, steps = _core.sweep_action(run_dir, extend, **point)
        plan.append((name, os.fspath(run_dir), point, action, steps))
    os.makedirs(out, exist_ok=True)
    print(f"sweep: {len(plan)} runs, one at a time, in {out}")
    for i, (name, run_dir, point, action, steps) in enumerate(plan, 1):
        started = time.perf_counter()
        if action == "train":
            _core.train(run_dir, None, _progress(progress), **point)
        elif action == "resume":
            _core.resume(run_dir, None, _progress(progress), steps=steps)
        status = "already done" if action == "done" else f"done in {time.perf_counter() - started:.1f}s"
        print(f"[{i}/{len(plan)}] {name}: {status}")
    return [Run(run_dir) for _, run_dir, _, _, _ in plan]


def gradcheck(*, tolerance: Optional[float] = None, batches: Optional[int] = None, **settings: Any) -> List[Dict[str, Any]]:
    """``microgpt gradcheck``: the tensor engine's loss and every gradient against the scalar
    reference engine's, from the initial weights, on the first ``batches`` batches (default
    3). Takes the data's and the model's settings (``input``, ``data``, ``seed``, ``n_embd``,
    ``n_head``, ``n_layer``, ``block_size``, ``activation``, ``init_std``) and ``batch_size``
    and ``dtype``. Returns one row per tensor, the loss first: ``name``, ``shape``,
    ``max_abs``, ``max_rel`` and ``ok`` (``max_rel`` within ``tolerance``: by default 1e-9
    in f64, 1e-3 in f32)."""
    return _core.gradcheck(tolerance, batches, **settings)
