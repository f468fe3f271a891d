"""scripts/gpu-full.sh end to end at a tiny size on the CPU: it checks its inputs, runs the LTFN families and
writes a report and a per-experiment summary (on a GPU the same script runs the full profile)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_script_runs_end_to_end_at_tiny_size(tmp_path):
    src = Path(os.environ.get("CLAIMBENCH_DATA_DIR") or ROOT.parent / "shared" / "datasets")
    if not (src / "mnist" / "mnist.npz").exists():
        pytest.skip("no MNIST here")
    data = tmp_path / "gpu-data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "mnist.npz").symlink_to(src / "mnist" / "mnist.npz")
    sums = [line for line in (src / "SHA256SUMS").read_text().splitlines() if line.endswith("mnist/mnist.npz")]
    (data / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(PYTHON=sys.executable, CLAIMBENCH_GPU_DATA=str(data), OUT=str(tmp_path / "out"))
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-full.sh"), "--tiny", "-k", "not fashion"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "check: MNIST present; CIFAR-10 parts 0/6 (incomplete" in r.stdout
    assert "claimbench gpu-full: vgg-mnist: 2 runs" in r.stdout and "not run (data)" in r.stdout
    assert (tmp_path / "out" / "report" / "README.md").exists()


def test_gpu_script_refuses_damaged_data(tmp_path):
    data = tmp_path / "gpu-data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "mnist.npz").write_bytes(b"not the file")
    (data / "SHA256SUMS").write_text(f"{'0' * 64}  mnist/mnist.npz\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(PYTHON=sys.executable, CLAIMBENCH_GPU_DATA=str(data), OUT=str(tmp_path / "out"))
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-full.sh"), "--tiny"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 2 and "sha256 does not match" in r.stderr, r.stdout + r.stderr
