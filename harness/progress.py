"""Progress a person can see: a tqdm bar per training run (steps, loss, images/s, ETA).

Under pytest, output capture redirects the process's stdout and stderr, so a bar written there is never
seen. The claimbench plugin therefore installs a *sink* (``set_sink``) that writes through pytest's
terminal reporter with capture suspended, the way pytest prints its own live lines. Without the plugin
the bar goes to stderr when that is a terminal. It is silent under CI (``CI`` set), with
``CLAIMBENCH_NO_PROGRESS=1``, or when no terminal is attached.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

from tqdm import tqdm

_SINK: Optional[Callable[[str], None]] = None


def set_sink(sink: Optional[Callable[[str], None]]) -> None:
    """Route bars through ``sink(text)`` (the plugin's terminal writer); None restores stderr."""
    global _SINK
    _SINK = sink


class _SinkFile:
    """The file tqdm writes to when a sink is installed."""

    def write(self, text: str) -> int:
        if _SINK is not None and text:
            _SINK(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def enabled() -> bool:
    if os.environ.get("CI") or os.environ.get("CLAIMBENCH_NO_PROGRESS"):
        return False
    if _SINK is not None:
        return True
    stream = sys.__stderr__
    return bool(stream is not None and stream.isatty())


class Progress:
    """``with Progress(total, label) as bar: bar.update(1, images=64, loss=lambda: float(loss))``.

    Keyword values may be callables: they are evaluated only when the bar is redrawn (at most every
    ``min_interval`` seconds), so reading a loss off a GPU does not synchronise every step.
    """

    def __init__(self, total: int, label: str = "", min_interval: float = 0.5):
        self.enabled = enabled()
        self.min_interval = min_interval
        self.images = 0
        self._t0 = self._last = time.perf_counter()
        self._bar = None
        if self.enabled:
            self._bar = tqdm(total=max(1, total), desc=label, unit="step", leave=False, dynamic_ncols=False,
                             ncols=110, mininterval=min_interval,
                             file=_SinkFile() if _SINK is not None else sys.__stderr__)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, n: int = 1, images: int = 0, **postfix) -> None:
        self.images += images
        if self._bar is None:
            return
        now = time.perf_counter()
        if now - self._last >= self.min_interval:
            self._last = now
            shown = {k: (v() if callable(v) else v) for k, v in postfix.items()}
            shown["img/s"] = self.images / max(now - self._t0, 1e-9)
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
        self._bar.update(n)
