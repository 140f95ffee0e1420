"""A run's progress as the library reports it while training: tqdm.auto's bar when tqdm is
installed (a widget in a notebook, a bar in a terminal), otherwise a plain line every
twentieth of the run, as the command line prints when its output is not a terminal."""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, Optional


def _duration(seconds: float) -> str:
    """`42s`, `3m05s` or `1h02m`, as the command line shows an ETA."""
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Receives `start(info)`, `update(row)` (at most every 0.1 s, at every evaluation and at
    the session's last step) and `close()` from the run."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._total = 0
        self._every = 1
        self._printed = 0
        self._start: Dict[str, float] = {}

    def start(self, info: Dict[str, Any]) -> None:
        self._total = info["steps"]
        self._every = max(1, math.ceil(self._total / 20))
        self._printed = info["done"]
        self._start = {"step": info["done"], "tokens": info["tokens"], "elapsed_s": info["elapsed_s"]}
        if info["num_docs"]:
            data = f"num docs: {info['num_docs']}"
        else:
            data = f"num chars: {info['num_chars']}"
        print(f"{data} | vocab size: {info['vocab_size']} | num params: {info['num_params']}")
        try:
            with warnings.catch_warnings():
                # In a notebook without ipywidgets tqdm.auto warns, then draws a text bar.
                warnings.simplefilter("ignore")
                from tqdm.auto import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=self._total, initial=info["done"], unit="step", dynamic_ncols=True)

    def update(self, row: Dict[str, Any]) -> None:
        seconds = row["elapsed_s"] - self._start["elapsed_s"]
        tok_per_s = (row["tokens"] - self._start["tokens"]) / max(seconds, 1e-9)
        if self._bar is not None:
            val = row["last_val"]
            val_text = f" | val {val:.4f}" if val is not None else ""
            self._bar.set_postfix_str(f"loss {row['smoothed']:.4f}{val_text} | {tok_per_s:.0f} tok/s", refresh=False)
            self._bar.update(row["step"] - self._bar.n)
            return
        step = row["step"]
        crossed = step // self._every > self._printed // self._every
        if not (crossed or step == self._total or row["val_loss"] is not None):
            return
        self._printed = step
        done = step - self._start["step"]
        eta = _duration((self._total - step) * seconds / done) if done else "?"
        val_text = f" | val {row['val_loss']:.4f}" if row["val_loss"] is not None else ""
        print(
            f"step {step:4} / {self._total:4} | loss {row['loss']:.4f} | smoothed {row['smoothed']:.4f}"
            f"{val_text} | {tok_per_s:.0f} tok/s | eta {eta}",
            flush=True,
        )

    def close(self, _info: Optional[Dict[str, Any]] = None) -> None:
        if self._bar is not None:
            self._bar.close()
