"""A pretend CUDA device for machines without one, so that device-only code paths run in CI.

``FakeCuda`` tensors say ``device='cuda:0'`` and hold a real CPU tensor that does the arithmetic. Like a real
GPU, an op that mixes them with a CPU tensor of one or more dimensions raises (0-dim CPU tensors pass, as
CUDA allows), ``.numpy()`` refuses, and every value read back to the host (``.item()``, ``float(t)``,
``bool(t)``, ``nonzero``, ``torch.cuda.synchronize``) is counted as a host synchronisation, so a test can
assert that a training loop does not wait on the device once per step. ``fake_cuda()`` patches
``torch.cuda.is_available`` and friends for the duration, so autocast on "cuda" is live and runs in bf16.

This is a test double, not a simulator: kernels, streams and memory are the CPU's. What it catches is the
class of bug that only shows on a GPU: host/device mixing, host reads in hot loops, ``.numpy()`` on device
tensors.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from typing import Iterator
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
aten = torch.ops.aten

SYNCS: Counter = Counter()  # op name -> host reads since the last reset

# ops whose output is data-dependent in size or a host value: on CUDA each one waits for the device
_HOST_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.equal.default,
               aten.is_nonzero.default}
# ops allowed to take CPU and CUDA operands together (copies between devices)
_CROSS_DEVICE = {aten.copy_.default, aten._to_copy.default, aten.index_put_.default}


class FakeCuda(torch.Tensor):
    """Reports device cuda:0 to Python code; to C++ (device guards, the autograd engine) it is a CPU tensor, so
    nothing ever calls the CUDA runtime."""
    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        assert type(elem) is torch.Tensor and elem.device.type == "cpu"
        r = torch.Tensor._make_wrapper_subclass(cls, elem.size(), strides=elem.stride(),
                                                storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                layout=elem.layout, device="cpu", requires_grad=elem.requires_grad)
        r.elem = elem
        return r

    @property
    def device(self) -> torch.device:
        return CUDA

    @property
    def is_cuda(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"FakeCuda({self.elem!r})"

    def numpy(self, *a, **k):  # a CUDA tensor refuses too
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                        "to host memory first.")

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


_ORIGINAL_TO = torch.Tensor.to


def _to(self, *args, **kwargs):
    """``Tensor.to`` that moves to the pretend device (the real one would start the CUDA runtime)."""
    device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
    kw = {k: v for k, v in (("dtype", dtype), ("memory_format", memory_format)) if v is not None}
    if isinstance(self, FakeCuda) and (device is None or device.type == "cuda"):
        # stays on the device; torch's own memory-format path would pass the C++ device (CPU) and so read as a
        # copy to the host, so the layout change goes through ``contiguous`` (dispatched, autograd kept)
        out = self if dtype is None else _ORIGINAL_TO(self, dtype)
        if memory_format is not None and memory_format != torch.preserve_format:
            out = out.contiguous(memory_format=memory_format)
        return out
    if device is not None and device.type == "cuda":
        return FakeCuda(_ORIGINAL_TO(self, "cpu", copy=kwargs.get("copy", False), **kw).detach()
                        ).requires_grad_(self.requires_grad)
    if device is not None and device.type == "cpu" and isinstance(self, FakeCuda):
        SYNCS["device->host copy"] += 1
        return _ORIGINAL_TO(self.elem, **kw).clone() if kw else self.elem.clone()
    return _ORIGINAL_TO(self, *args, **kwargs)


_ORIGINAL_TENSOR, _ORIGINAL_AS_TENSOR = torch.tensor, torch.as_tensor


def _from_data(original):
    def make(data, *args, device=None, **kwargs):  # the real one initialises CUDA before any dispatch
        if device is not None and torch.device(device).type == "cuda":
            return _to(original(data, *args, **kwargs), "cuda")
        return original(data, *args, device=device, **kwargs)
    return make


def _cuda(self, device=None, non_blocking=False, memory_format=torch.preserve_format):
    return _to(self, "cuda")


def _cpu(self, memory_format=torch.preserve_format):
    return _to(self, "cpu") if isinstance(self, FakeCuda) else self


def _is_cuda_kw(v) -> bool:
    return v is not None and torch.device(v).type == "cuda"


def _run(func, args, kwargs):
    flat, _ = tree_flatten((args, kwargs))
    fakes = [t for t in flat if isinstance(t, FakeCuda)]
    plain = [t for t in flat if type(t) is torch.Tensor and t.dim() > 0]
    if fakes and plain and func not in _CROSS_DEVICE:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"cuda:0 and cpu! ({func})")
    if func in _HOST_READS:
        SYNCS[str(func)] += 1
    to_host = (func is aten._to_copy.default and kwargs.get("device") is not None
               and not _is_cuda_kw(kwargs["device"]))
    if "device" in kwargs and _is_cuda_kw(kwargs["device"]):
        kwargs = {**kwargs, "device": torch.device("cpu")}
    if to_host and fakes:
        SYNCS["device->host copy"] += 1
    un_args, un_kwargs = tree_map(lambda t: t.elem if isinstance(t, FakeCuda) else t, (args, kwargs))
    out = func(*un_args, **un_kwargs)
    if to_host:
        return out
    back = {id(t.elem): t for t in fakes}  # in-place ops return their own argument

    def wrap(t):
        if type(t) is not torch.Tensor:
            return t
        return back[id(t)] if id(t) in back else FakeCuda(t)

    return tree_map(wrap, out)


class _FactoryMode(TorchDispatchMode):
    """Tensors created with device='cuda' (factories, ``.to('cuda')`` of a CPU tensor) become FakeCuda."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if "device" in kwargs and _is_cuda_kw(kwargs["device"]):
            return _run(func, args, kwargs)
        return func(*args, **kwargs)


def _synchronize(device=None) -> None:
    SYNCS["torch.cuda.synchronize"] += 1


@contextlib.contextmanager
def fake_cuda() -> Iterator[Counter]:
    """Within: torch.cuda says one device is present; 'cuda' tensors are FakeCuda; yields the sync counter."""
    SYNCS.clear()
    with contextlib.ExitStack() as stack:
        for name, value in (("is_available", lambda: True), ("device_count", lambda: 1),
                            ("is_bf16_supported", lambda *a, **k: True), ("synchronize", _synchronize),
                            ("get_device_name", lambda *a, **k: "FakeCuda (CPU-backed test double)"),
                            ("current_device", lambda: 0), ("_lazy_init", lambda: None)):
            stack.enter_context(mock.patch.object(torch.cuda, name, value))
        stack.enter_context(mock.patch("torch.backends.cudnn.is_available", lambda: True))
        for name, fn in (("to", _to), ("cuda", _cuda), ("cpu", _cpu)):
            stack.enter_context(mock.patch.object(torch.Tensor, name, fn))
        stack.enter_context(mock.patch.object(torch, "tensor", _from_data(_ORIGINAL_TENSOR)))
        stack.enter_context(mock.patch.object(torch, "as_tensor", _from_data(_ORIGINAL_AS_TENSOR)))
        for name in ("_accelerator_graph_capture_health_check", "_cuda_graph_capture_health_check"):
            if hasattr(torch.optim.Optimizer, name):  # asks the CUDA runtime whether a graph is being captured
                stack.enter_context(mock.patch.object(torch.optim.Optimizer, name, lambda self: None))
        # Module.to assigns ``param.data`` where the types look compatible; a wrapper needs new Parameters
        overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        stack.callback(torch.__future__.set_overwrite_module_params_on_conversion, overwrite)
        stack.enter_context(_FactoryMode())
        yield SYNCS
