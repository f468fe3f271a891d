"""Device resolution and per-device training settings (bf16 autocast on CUDA, fp32 on CPU)."""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import platform
import re
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ContextManager, Iterator

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


PRECISIONS = ("auto", "fp32", "bf16")
UNCHOSEN = "default (bf16 on CUDA, fp32 on the CPU)"  # recorded where no session chose a precision
FP32_CHANNELS_LAST = "fp32 channels_last"  # a chosen fp32's environment field (CUDA and CPU alike)


@dataclass(frozen=True)
class Precision:
    """The numerics a session trains with: a value the session owns (``ClaimBench.precision``), resolved once
    from ``--precision`` / ``--deterministic`` and recorded in every run's environment. The device helpers
    below read the precision *active* in the current context: a session activates its own for its lifetime
    (``activate``), a worker process the one its session sent, and a block may run under another one
    (``precision_override``, the fp32 control seed). Outside any session: bf16 on CUDA, fp32 on the CPU."""

    mode: str = ""  # "fp32" | "bf16"; "" = none chosen
    note: str = ""  # how "auto" chose it, for the terminal header
    deterministic: bool = False  # --deterministic (the torch flags themselves: ``set_deterministic``)
    auto: bool = False  # chosen by ``--precision auto`` (a claim may then keep fp32: ``ClaimContext.numerics``)

    def on(self, device: torch.device | None) -> str:
        """The mode used on ``device``: the chosen one, else the default for the device."""
        if self.mode:
            return self.mode
        return "bf16" if device is not None and device.type == "cuda" else "fp32"

    def recorded(self) -> str:
        """The precision field of a run's environment. A chosen fp32 says its layout: since 2026-12-02 it trains
        in channels_last on the CPU too (before: NCHW there, recorded as plain "fp32"), so runs of the two
        layouts never resume as each other."""
        if self.mode == "fp32":
            return FP32_CHANNELS_LAST
        return self.mode or UNCHOSEN

    @contextlib.contextmanager
    def activate(self) -> Iterator["Precision"]:
        """Make this the active precision for a block (the session's lifetime, or one control run)."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


_ACTIVE: contextvars.ContextVar[Precision] = contextvars.ContextVar("claimbench_precision", default=Precision())


def active_precision() -> Precision:
    """The precision active in this context (the session's, a worker's, or an override's)."""
    return _ACTIVE.get()


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # instructions that run bf16 natively (elsewhere it is emulated)


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The bf16 instructions this CPU reports (Linux /proc/cpuinfo); [] where it has none or cannot tell."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return [f for f in BF16_CPU_FLAGS if f in flags]


def resolve_precision(spec: str | None, device: torch.device, default: str = "auto",
                      deterministic: bool = False) -> Precision:
    """Resolve ``--precision``: fp32 or bf16 (autocast), both with channels_last convolutions, or auto = bf16 where the
    hardware has it: on CUDA, and on a CPU that reports bf16 instructions (avx512_bf16 or amx_bf16); fp32
    elsewhere, where bf16 is emulated and slower. Decided by capability, never by a timing a loaded machine
    could flip. Not given: the profile's ``default`` (smoke: fp32; cpu, full: auto). The note says how auto
    chose, for the report header."""
    spec = (spec or os.environ.get("CLAIMBENCH_PRECISION") or default).strip().lower()
    if spec not in PRECISIONS:
        raise UsageError(f"unknown precision {spec!r}; valid values: {', '.join(PRECISIONS)}")
    note = ""
    if spec == "auto":
        if device.type == "cuda":
            spec, note = "bf16", "auto: bf16 on CUDA"
        else:
            flags = cpu_bf16_flags()
            spec = "bf16" if flags else "fp32"
            note = (f"auto: this CPU has {', '.join(flags)}" if flags else
                    "auto: this CPU has no bf16 instructions (bf16 would be emulated); --precision bf16 forces it")
    return Precision(spec, note, deterministic, auto=bool(note))


@contextlib.contextmanager
def precision_override(mode: str) -> Iterator[Precision]:
    """Run a block at another precision (the fp32 control seed of a bf16 session); the environment recorded
    for runs inside says so, so they never resume as, or mix with, the session's own runs."""
    if mode not in ("fp32", "bf16"):
        raise ValueError(f"precision {mode!r}: fp32 or bf16")
    with replace(active_precision(), mode=mode, note="").activate() as p:
        yield p


def set_deterministic(on: bool) -> None:
    """``--deterministic``: deterministic algorithms everywhere (an op without one raises, naming itself),
    cuDNN without autotuning, and cuBLAS's fixed workspace, which must be set before the first cuBLAS call,
    so the plugin calls this at configure time. Recorded in every run's environment (``Precision``)."""
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def deterministic() -> bool:
    """Whether the active session asked for deterministic algorithms (``--deterministic``)."""
    return active_precision().deterministic


def threads_per_worker(workers: int) -> int:
    """torch threads for each of ``workers`` processes sharing this machine's cores (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def precision(device: torch.device | None = None) -> str:
    """The active precision's mode on ``device`` (outside a session: bf16 on CUDA, fp32 on the CPU)."""
    return active_precision().on(device)


def autocast(device: torch.device) -> ContextManager:
    """bf16 autocast when the session's precision is bf16 (the default on CUDA); exact fp32 otherwise (on the
    CPU with a fixed thread count, a seed then gives bit-identical results)."""
    if precision(device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(device: torch.device) -> bool:
    """NHWC convolutions: on CUDA (tensor cores), and on the CPU at whichever precision a session chose: oneDNN's
    NHWC kernels were faster than NCHW in fp32 too on every CPU measured (a 2-core Xeon with amx_bf16: ms per
    step 625 -> 346 for EfficientNet-Lite0, 39.4 -> 26.7 for the ConvNet; two AMD EPYCs: 15.0 -> 11.5 for the
    ConvNet, 0.97 -> 0.83 s for Lite0; ``benchmarks/test_speed.py``). Outside a session (no precision chosen:
    unit tests, bare loops) the CPU keeps PyTorch's default NCHW."""
    return device.type == "cuda" or bool(active_precision().mode)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to the device, with channels_last memory format where that pays (see ``channels_last``)."""
    model = model.to(device)
    if channels_last(device):
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


def install_id() -> str:
    """This installation's identity, created on first use in the user's cache (never in the repository): runs
    resume only where it matches, so a store copied from another machine (the published one, or one cloned
    from the same image, which shares the system machine id) is never resumed as this user's own runs."""
    base = Path(os.environ.get("CLAIMBENCH_HOME") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = (base if os.environ.get("CLAIMBENCH_HOME") else base / "claimbench") / "install-id"
    try:
        text = path.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    new = uuid.uuid4().hex
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".install-id.{os.getpid()}")
        tmp.write_text(new + "\n")
        try:
            os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's id
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text().strip() or new
    except OSError:
        return f"unwritable-cache-{new}"  # nothing can be resumed across sessions, but nothing is mistaken either


def environment(device_label: str) -> dict[str, Any]:
    """The environment a run was produced in: what resume and comparisons key on (never the host name,
    which containers and cloned VMs share). ``device_label`` is ``device_name(device)``: the GPU model, or
    the CPU model with the thread count."""
    v = versions()
    return {"install_id": install_id(), "device": device_label, "threads": torch.get_num_threads(),
            "precision": active_precision().recorded(),
            "deterministic": deterministic(),
            "torch": v["torch"], "torchvision": v["torchvision"], "cuda": v["cuda"], "python": v["python"],
            "numpy": v["numpy"]}


def environment_hash(env: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
