"""Lines a pytest-xdist worker would print, shown on the controller's terminal while the worker trains.

A worker has no terminal: its notices (a claim's cost estimate, a stack that ran out of memory) and the news
that a run finished training would be lost, and a person watching ``-n 2`` would see nothing for the many
minutes a claim of 20 or 45 runs takes. Each worker therefore appends its lines to a file of its own in a
folder the controller made (``Folder.writer``); the controller prints what is new there every few seconds
from a thread, and once more before each claim line a worker's report brings (``Folder.drain``), so a claim's
run lines come before its claim line. A line is one ``write`` of text ending in a newline; a line still
being written (no newline yet) waits for the next read.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

WORKERINPUT_KEY = "claimbench_lines"  # the folder's path, handed to each worker in its workerinput


class Folder:
    """The controller's side: a folder of per-worker line files, read incrementally."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="claimbench-lines-"))
        self._offsets: dict[Path, int] = {}
        self._lock = threading.Lock()  # the poller thread and the main thread both drain
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def writer(root: str | Path, worker: str) -> Callable[[str], None]:
        """A worker's side: append ``worker: message`` lines to its own file in ``root``."""
        path = Path(root) / f"{worker}.log"

        def write(message: str) -> None:
            text = "".join(f"{worker}: {line}\n" for line in str(message).splitlines() or [""])
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(text)
            except OSError:  # the controller's folder is gone (it finished or was interrupted): nothing to show
                pass
        return write

    def drain(self, show: Callable[[str], None]) -> int:
        """Show every complete line written since the last drain, worker file by worker file; how many."""
        shown = 0
        with self._lock:
            for path in sorted(self.root.glob("*.log")):
                start = self._offsets.get(path, 0)
                try:
                    with open(path, "rb") as f:
                        f.seek(start)
                        data = f.read()
                except OSError:
                    continue
                end = data.rfind(b"\n") + 1  # a line without its newline yet waits for the next read
                if not end:
                    continue
                self._offsets[path] = start + end
                for line in data[:end].decode("utf-8", "replace").splitlines():
                    show(line)
                    shown += 1
        return shown

    def follow(self, show: Callable[[str], None], every_s: float = 2.0) -> None:
        """Drain every ``every_s`` seconds from a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(every_s):
                self.drain(show)

        self._thread = threading.Thread(target=loop, name="claimbench-worker-lines", daemon=True)
        self._thread.start()

    def close(self, show: Callable[[str], None] | None = None) -> None:
        """Stop following, show what is left (when ``show`` is given) and remove the folder."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if show is not None:
            self.drain(show)
        shutil.rmtree(self.root, ignore_errors=True)
