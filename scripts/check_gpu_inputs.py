"""Check what a bare GPU machine was given before it trains: the Python packages, the device, and the
datasets (against the SHA256SUMS that travels with them). Prints what will be "not run (data)"."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="the folder the datasets were carried into")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    missing = []
    for name in ("torch", "torchvision", "numpy", "scipy", "pandas", "tabulate", "matplotlib", "pytest",
                 "pytest_benchmark", "tqdm"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(f"check: missing Python packages: {', '.join(missing)} (carry them as wheels)", file=sys.stderr)
        return 2
    import torch

    print(f"check: torch {torch.__version__}, CUDA {torch.version.cuda}, device asked: {args.device}")
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("check: CUDA is not available on this machine", file=sys.stderr)
            return 2
        gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        print(f"check: {torch.cuda.get_device_name(0)}, {gib:.0f} GiB")
    from fixtures.data import DataCorrupt, check_sha256sums

    data = Path(args.data)
    files = sorted(p for p in data.rglob("*.npz"))
    try:
        check_sha256sums(data, files)
    except DataCorrupt as e:
        print(f"check: {e}", file=sys.stderr)
        return 2
    mnist = (data / "mnist" / "mnist.npz").exists()
    cifar = [data / "cifar10" / f"cifar10_train_{i}.npz" for i in range(5)] + [data / "cifar10" / "cifar10_test.npz"]
    have_cifar = [p.name for p in cifar if p.exists()]
    print(f"check: MNIST {'present' if mnist else 'MISSING (its claims will be not run)'}; CIFAR-10 parts "
          f"{len(have_cifar)}/6{'' if len(have_cifar) == 6 else ' (incomplete: its claims will be not run)'}; "
          f"checksums verified for {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
