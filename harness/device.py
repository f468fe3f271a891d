"""Device resolution and per-device training settings (bf16 autocast on CUDA, fp32 on CPU)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
from typing import Any, ContextManager

import torch

from harness.profiles import UsageError

DEVICE_ENV = "CLAIMBENCH_DEVICE"
VALID_DEVICES = "auto, cpu, cuda, cuda:N"


def resolve_device(spec: str | None) -> torch.device:
    """Turn ``--device`` (auto / cpu / cuda / cuda:N) into a torch.device; a bad value is a UsageError."""
    spec = (spec or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not m:
        raise UsageError(f"unknown device {spec!r}; valid values: {VALID_DEVICES}")
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for, but CUDA is not available here; use --device cpu or auto")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """A human name for the report: the GPU model, or the CPU model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU ({cpu}, {torch.get_num_threads()} threads)"


def autocast(device: torch.device) -> ContextManager:
    """bf16 autocast on CUDA (the posts' scale runs there); exact fp32 on CPU for bit-reproducibility."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to the device; on CUDA use channels_last memory format for its convolutions."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def versions() -> dict[str, str]:
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
    }


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                mid = f.read().strip()
            if mid:
                return mid
        except OSError:
            continue
    return "unknown"


def environment(device_label: str) -> dict[str, Any]:
    """The environment a run was produced in: what resume and comparisons key on (never the host name,
    which containers and cloned VMs share). ``device_label`` is ``device_name(device)``: the GPU model, or
    the CPU model with the thread count."""
    v = versions()
    return {"machine_id": _machine_id(), "device": device_label, "threads": torch.get_num_threads(),
            "torch": v["torch"], "torchvision": v["torchvision"], "cuda": v["cuda"], "python": v["python"],
            "numpy": v["numpy"]}


def environment_hash(env: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
