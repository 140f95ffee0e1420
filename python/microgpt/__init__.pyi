"""Types of the microgpt package for editors and type checkers. The settings' defaults are
the command line's: ``microgpt.SETTINGS`` holds them (tests/test_api.py checks that the
names below are its names, in its order)."""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from typing_extensions import TypedDict, Unpack

_Path = Union[str, os.PathLike[str]]

SETTINGS: Dict[str, Any]

class Error(RuntimeError):
    """What microgpt refuses or cannot do: a run directory another process is training, a
    corrupt checkpoint, a run whose loss diverged, ..."""

class Settings(TypedDict, total=False):
    """Every run setting, by the command line's flag with ``_`` for ``-``."""

    input: Optional[_Path]
    data: str
    seed: int
    val_frac: float
    n_embd: int
    n_head: int
    n_layer: int
    block_size: int
    activation: str
    init_std: float
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    grad_clip: Optional[float]
    steps: int
    batch_size: int
    lr_schedule: str
    warmup_steps: int
    eval_every: int
    eval_windows: int
    temperature: float
    num_samples: int
    engine: str
    dtype: str
    threads: int
    save_every: int

class GradcheckRow(TypedDict):
    name: str
    shape: Tuple[int, int]
    max_abs: float
    max_rel: float
    ok: bool

def train(
    *, out: Optional[_Path] = None, stop_after: Optional[int] = None, progress: bool = True, **settings: Unpack[Settings]
) -> Run:
    """Trains a new run in ``out`` (default: a new temporary directory) and returns it."""

class Run:
    """A run directory written by ``microgpt train --out DIR`` or ``microgpt.train``."""

    path: str
    def __init__(self, path: _Path) -> None: ...
    def __fspath__(self) -> str: ...
    @property
    def settings(self) -> Dict[str, Any]: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def step(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def finished(self) -> bool: ...
    @property
    def samples(self) -> List[str]: ...
    @property
    def metrics(self) -> Any:
        """A pandas DataFrame when pandas is installed, else a dict of numpy arrays."""
    def weights(self) -> Dict[str, np.ndarray]: ...
    def sample(
        self,
        n: Optional[int] = None,
        temperature: Optional[float] = None,
        prompt: str = "",
        max_new_tokens: Optional[int] = None,
        seed: Optional[int] = None,
        engine: Optional[str] = None,
    ) -> List[str]: ...
    def inspect(self, text: str, engine: Optional[str] = None) -> Dict[str, Any]: ...
    def resume(
        self,
        steps: Optional[int] = None,
        *,
        stop_after: Optional[int] = None,
        progress: bool = True,
        **settings: Unpack[Settings],
    ) -> Run: ...

def sweep(
    grid: Mapping[str, Sequence[Any]],
    out: _Path,
    *,
    extend: bool = False,
    progress: bool = True,
    **settings: Unpack[Settings],
) -> List[Run]: ...
def gradcheck(
    *, tolerance: Optional[float] = None, batches: Optional[int] = None, **settings: Unpack[Settings]
) -> List[GradcheckRow]: ...
