"""A minimal progress bar: drawn on a terminal, silent under CI or when output is not a TTY."""
from __future__ import annotations

import os
import sys
import time


def _enabled() -> bool:
    if os.environ.get("CI") or os.environ.get("CLAIMBENCH_NO_PROGRESS"):
        return False
    stream = sys.__stderr__
    return bool(stream is not None and stream.isatty())


class Progress:
    """``with Progress(total, label) as bar: bar.update(1, loss=0.3)``; writes to the real stderr so
    pytest's output capture does not hide it."""

    def __init__(self, total: int, label: str = "", min_interval: float = 0.1):
        self.total, self.label, self.min_interval = max(1, total), label, min_interval
        self.done, self._last, self._t0 = 0, 0.0, time.perf_counter()
        self.enabled = _enabled()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._draw(force=True)
            sys.__stderr__.write("\n")
            sys.__stderr__.flush()

    def update(self, n: int = 1, **postfix: float) -> None:
        self.done += n
        if self.enabled:
            self._draw(postfix=postfix)

    def _draw(self, force: bool = False, postfix: dict | None = None) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        frac = min(1.0, self.done / self.total)
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        rate = self.done / max(now - self._t0, 1e-9)
        extra = " ".join(f"{k}={v:.4g}" for k, v in (postfix or {}).items())
        sys.__stderr__.write(f"\r  {self.label} [{bar}] {self.done}/{self.total} {rate:.1f}/s {extra}   ")
        sys.__stderr__.flush()
