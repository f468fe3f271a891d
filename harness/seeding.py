"""Seeding: one call reseeds every random source a run touches and hands back explicit generators."""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch


@dataclass
class Generators:
    seed: int
    torch: torch.Generator  # CPU generator for data order, augmentation, init draws
    numpy: np.random.Generator


def seed_all(seed: int) -> Generators:
    """Reseed Python, NumPy's legacy global state and torch (CPU and CUDA); return fresh generators."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    g = torch.Generator().manual_seed(seed)
    return Generators(seed=seed, torch=g, numpy=np.random.default_rng(seed))


VARY = ("all", "init", "split", "order", "augment")  # --vary: the source of randomness that follows the seed


def source_seed(source: str, seed: int, vary: str = "all") -> int:
    """The seed of one source of randomness (init, split, order, augment) in a run with ``seed``: the run's
    seed when that source varies (``vary`` is it, or "all"), else 0, so every run holds it at seed 0's value.
    After Bouthillier et al. (2021): which source drives the seed-to-seed spread?"""
    if vary not in VARY or source not in VARY[1:]:
        raise ValueError(f"source {source!r} / vary {vary!r}: sources are {', '.join(VARY[1:])}, vary also 'all'")
    return seed if vary in ("all", source) else 0


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Ask torch for deterministic kernels for the duration; restore the previous flags afterwards."""
    prev_alg = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        if enabled:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.use_deterministic_algorithms(prev_alg, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        if prev_cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = prev_cublas


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python, NumPy and torch RNG state on exit, so one test cannot leak randomness into the next."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
