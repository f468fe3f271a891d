"""The training bar is drawn on a real (pseudo-)terminal while pytest captures test output, and stays
silent in CI."""
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_in_pty(env: dict, tmp_path) -> str:
    master, slave = os.openpty()
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_params.py"), "-k", "ltfn9_checkpoint_184mb",
           "--profile", "smoke",
           "--report-dir", str(tmp_path / "rep"), "-p", "no:cacheprovider", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=600)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def _screen_lines(raw: str) -> list[str]:
    """What stays on the screen per line: colours dropped, a carriage return overwrites what came before."""
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line).split("\r")[-1]
            for line in raw.replace("\r\n", "\n").split("\n")]


def _stray_lines(raw: str) -> list[str]:
    """Lines holding nothing but pytest's status letters or a file name (they once followed each claim line)."""
    return [line for line in _screen_lines(raw)
            if re.fullmatch(r"\s*[.sFEx]+\s*(\[\s*\d+%\])?\s*", line) or re.fullmatch(r"\S+\.py\s*", line)]


def test_a_bar_reads_its_values_at_most_once_per_redraw(monkeypatch):
    """A callable postfix (a loss on the GPU) is read when the bar redraws, not per step: 200 fast steps
    read it at most once at a 60 s interval. Host reads in the training loop are bounded by time, not steps."""
    from harness import progress

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CLAIMBENCH_NO_PROGRESS", raising=False)
    written = []
    progress.set_sink(written.append)
    reads = []
    try:
        with progress.Progress(200, "t", min_interval=60) as bar:
            for _ in range(200):
                bar.update(1, images=4, loss=lambda: reads.append(1) or 0.5)
    finally:
        progress.set_sink(None)
    assert written and len(reads) <= 1


@pytest.mark.skipif(not os.path.exists("/dev/ptmx"), reason="no pseudo-terminals here")
def test_bar_is_drawn_on_a_terminal_and_silent_in_ci(tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "CLAIMBENCH_NO_PROGRESS")}
    base.update(PYTHONPATH=str(ROOT), CLAIMBENCH_DEVICE="cpu")
    shown = _run_in_pty(base, tmp_path)
    assert "vgg adam steps" in shown and "step/s" in shown, shown[-2000:]
    # the claim line: which claim of how many, its outcome, runs trained (and their minutes) and resumed so far
    assert "claimbench: [1/1] ltfn9_checkpoint_184mb: not run | runs 1 trained (" in shown, shown[-2000:]
    assert "0 resumed" in shown and "min left at" in shown
    assert not _stray_lines(shown), _stray_lines(shown)
    quiet = _run_in_pty({**base, "CI": "true"}, tmp_path)
    assert "passed" in quiet and "step/s" not in quiet, quiet[-2000:]
    again = _run_in_pty(base, tmp_path)  # the same claim again: its run is resumed, not counted as trained
    assert "runs 0 trained (0.0 min), 1 resumed" in again, again[-2000:]
