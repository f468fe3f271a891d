"""The training bar is drawn on a real (pseudo-)terminal while pytest captures test output, and stays
silent in CI."""
import os
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


@pytest.mark.skipif(not os.path.exists("/dev/ptmx"), reason="no pseudo-terminals here")
def test_bar_is_drawn_on_a_terminal_and_silent_in_ci(tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "CLAIMBENCH_NO_PROGRESS")}
    base.update(PYTHONPATH=str(ROOT), CLAIMBENCH_DEVICE="cpu")
    shown = _run_in_pty(base, tmp_path)
    assert "vgg adam steps" in shown and "step/s" in shown, shown[-2000:]
    # the claim line: which claim of how many, its outcome, runs trained (and their minutes) and resumed so far
    assert "claimbench: [1/1] ltfn9_checkpoint_184mb: not run | runs 1 trained (" in shown, shown[-2000:]
    assert "0 resumed" in shown and "min left at" in shown
    quiet = _run_in_pty({**base, "CI": "true"}, tmp_path)
    assert "passed" in quiet and "step/s" not in quiet, quiet[-2000:]
    again = _run_in_pty(base, tmp_path)  # the same claim again: its run is resumed, not counted as trained
    assert "runs 0 trained (0.0 min), 1 resumed" in again, again[-2000:]
