"""One training function for every claim family.

Model, data (tensors), optimiser and schedule go in; a plain :class:`RunResult` comes out with the
per-epoch table the posts print (epoch | train_loss | valid_loss | error_rate), final metrics, steps and
wall seconds. Data lives on the device for the whole run (MNIST and CIFAR-10 fit easily), batches are
index slices, so the loop has no DataLoader overhead.

Batch order follows one of two conventions:

* ``"shuffle"``: a fresh permutation each epoch from the run's generator (PyTorch / fastai style);
  ``drop_last`` drops the final partial batch.
* ``"contiguous"``: the Learn-TensorFlow-Now scripts' order, batch k starts at (k·bs) mod (N − bs),
  no reshuffle, the last bs images never used.

A non-finite loss ends the run cleanly with ``diverged = {"step": k, "loss": "nan"}``; the losses are
checked at every evaluation point (and at the end) from an on-device buffer, so no per-step host sync.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from harness.device import autocast, channels_last, prepare_model, synchronize
from harness.progress import Progress

Batch = tuple[torch.Tensor, torch.Tensor]
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    steps: Optional[int] = None  # optimiser steps (TF scripts); give steps or epochs
    epochs: Optional[int] = None  # passes over the training data (fastai)
    batch_size: int = 100
    order: str = "shuffle"  # "shuffle" | "contiguous"
    drop_last: bool = True
    eval_every: Optional[int] = None  # steps between evaluations; None = each epoch (epochs) / end (steps)
    eval_batch_size: int = 1000
    use_autocast: bool = True  # bf16 when the session's precision is bf16 (the default on CUDA)
    channels_last: bool = True  # NHWC model and 4-D batches where the device takes them (CUDA, or bf16)

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps or epochs")
        if self.order not in ("shuffle", "contiguous"):
            raise ValueError(f"order must be 'shuffle' or 'contiguous', got {self.order!r}")


@dataclass
class RunResult:
    history: list[dict] = field(default_factory=list)  # one row per evaluation point
    final: dict = field(default_factory=dict)
    steps: int = 0
    epochs: float = 0.0
    wall_s: float = 0.0
    images_per_s: float = 0.0
    diverged: Optional[dict] = None

    def as_dict(self) -> dict:
        return asdict(self)


def as_batch(x: torch.Tensor, device: torch.device, use_channels_last: bool = True) -> torch.Tensor:
    """A 4-D image batch in the memory format the session trains in (NHWC where ``channels_last(device)``),
    so training, evaluation, the LR finder and the flawed evaluation all run the same kernels."""
    if use_channels_last and x.dim() == 4 and channels_last(device):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def forward(model: nn.Module, x: torch.Tensor, device: torch.device, *, use_autocast: bool = True,
            use_channels_last: bool = True) -> torch.Tensor:
    """``model(x)`` at the session's precision (bf16 autocast when it is bf16), as float32 logits (float64 ones
    stay float64: the equivalence tests train in float64)."""
    x = as_batch(x, device, use_channels_last)
    with autocast(device) if use_autocast else contextlib.nullcontext():
        return upcast(model(x))


def upcast(out: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: bf16 / fp16 ones to float32, float32 and float64 as they are."""
    return out if out.dtype == torch.float64 else out.float()


@torch.no_grad()
def evaluate(model: nn.Module, data: Batch, *, batch_size: int = 1000,
             loss_fn: Callable = F.cross_entropy, transform: Optional[Callable] = None,
             use_autocast: bool = True, use_channels_last: bool = True) -> dict:
    """Mean loss and accuracy over a whole tensor dataset, in eval mode, without updating anything."""
    x_all, y_all = data
    device = x_all.device
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = x_all.shape[0]
    for i in range(0, n, batch_size):
        x, y = x_all[i:i + batch_size], y_all[i:i + batch_size]
        if transform is not None:
            x = transform(x)
        out = forward(model, x, device, use_autocast=use_autocast, use_channels_last=use_channels_last)
        total_loss += loss_fn(out, y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    loss = float(total_loss / n)
    acc = float(correct) / n
    return {"loss": loss, "acc": acc, "error_rate": 1.0 - acc}


def evaluate_while_training(model: nn.Module, optimizer: torch.optim.Optimizer, data: Batch, *,
                            batch_size: int = 100, loss_fn: Callable = F.cross_entropy) -> dict:
    """The posts' flawed evaluation (docs/claims.md section C), kept as a flagged variant: each test batch is
    scored with the current weights, then the optimiser *also trains on it* before the next batch.

    Works on a copy of the model and of the optimiser's state (bound to the copy's parameters), so the
    real model and optimiser are left untouched. Runs at the session's precision, like the training it follows.
    """
    model = copy.deepcopy(model)
    state = optimizer.state_dict()
    optimizer = type(optimizer)(model.parameters(), **optimizer.defaults)
    optimizer.load_state_dict(state)  # moments and step counts, matched by parameter order
    x_all, y_all = data
    device = x_all.device
    model.train()
    total_loss, correct, n = 0.0, 0, x_all.shape[0]
    for i in range(0, n, batch_size):
        x, y = x_all[i:i + batch_size], y_all[i:i + batch_size]
        out = forward(model, x, device)
        loss = loss_fn(out, y)
        total_loss += float(loss.detach()) * x.shape[0]
        correct += int((out.argmax(1) == y).sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"loss": total_loss / n, "acc": correct / n, "error_rate": 1 - correct / n}


def _batches(n: int, cfg: TrainConfig, generator: torch.Generator, device: torch.device | None = None):
    """Yield (epoch_index, index tensor or slice) for every optimiser step of the run. Each epoch's order is
    drawn on the host (the same numbers on every device) and copied to the device once."""
    bs = cfg.batch_size
    if cfg.order == "contiguous":
        total = cfg.steps if cfg.steps is not None else cfg.epochs * max(1, n // bs)
        span = max(1, n - bs)
        for k in range(total):
            start = (k * bs) % span
            yield (k * bs) // n, slice(start, start + bs)
        return
    per_epoch = n // bs if cfg.drop_last else math.ceil(n / bs)
    if per_epoch == 0:
        raise ValueError(f"batch size {bs} exceeds the {n} training examples with drop_last")
    total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    k = 0
    epoch = 0
    while k < total:
        perm = torch.randperm(n, generator=generator).to(device)
        for b in range(per_epoch):
            if k >= total:
                return
            yield epoch, perm[b * bs:(b + 1) * bs]
            k += 1
        epoch += 1


def train(model: nn.Module, optimizer: torch.optim.Optimizer, train_data: Batch,
          valid_data: Optional[Batch], cfg: TrainConfig, *, generator: torch.Generator,
          scheduler=None, loss_fn: Callable = F.cross_entropy, transform: Optional[Transform] = None,
          valid_transform: Optional[Callable] = None, label: str = "train",
          on_step: Optional[Callable[[int, torch.Tensor], None]] = None,
          augment_generator: Optional[torch.Generator] = None) -> RunResult:
    """Train ``model`` in place on tensors already on its device; return the run record.

    ``transform(x, generator)`` augments a training batch on the device (with ``augment_generator`` when
    given, so augmentation and data order can be varied apart; by default one generator draws both);
    ``valid_transform(x)`` prepares
    an evaluation batch. ``scheduler.step()`` runs after every optimiser step. ``on_step(k, loss)``
    sees each step's (unsynchronised) loss tensor.
    """
    x_all, y_all = train_data
    device = x_all.device
    n = x_all.shape[0]
    bs = cfg.batch_size
    per_epoch = max(1, (n // bs) if (cfg.drop_last or cfg.order == "contiguous") else math.ceil(n / bs))
    total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    eval_every = cfg.eval_every or (per_epoch if cfg.epochs is not None else total)

    losses = torch.zeros(total, device=device, dtype=torch.float32)
    result = RunResult()
    if cfg.channels_last:
        prepare_model(model, device)  # in place (Module.to): the optimiser keeps its parameters
    model.train()
    synchronize(device)
    t0 = time.perf_counter()
    last_eval = 0
    seen = 0

    def checkpoint(step: int, epoch_index: int) -> bool:
        """Record a history row for steps (last_eval, step]; return False if the run diverged."""
        nonlocal last_eval
        window = losses[last_eval:step]
        bad = (~torch.isfinite(window)).nonzero()
        row: dict = {"epoch": epoch_index + 1, "step": step}
        if bad.numel():
            k = last_eval + int(bad[0, 0])
            result.diverged = {"step": k + 1, "loss": str(float(losses[k]))}
            row["train_loss"] = float("nan")
            result.history.append(row)
            return False
        row["train_loss"] = float(window.mean()) if window.numel() else float("nan")
        if valid_data is not None:
            ev = evaluate(model, valid_data, batch_size=cfg.eval_batch_size, loss_fn=loss_fn,
                          transform=valid_transform, use_autocast=cfg.use_autocast,
                          use_channels_last=cfg.channels_last)
            row.update(valid_loss=ev["loss"], error_rate=ev["error_rate"])
        result.history.append(row)
        last_eval = step
        return True

    ok = True
    step = 0
    epoch_index = 0
    with Progress(total, label) as bar:
        for epoch_index, idx in _batches(n, cfg, generator, device):
            x, y = x_all[idx], y_all[idx]
            if transform is not None:
                x = transform(x, augment_generator if augment_generator is not None else generator)
            loss = loss_fn(forward(model, x, device, use_autocast=cfg.use_autocast,
                                   use_channels_last=cfg.channels_last), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses[step] = loss.detach()
            if on_step is not None:
                on_step(step, loss.detach())
            step += 1
            seen += x.shape[0]
            bar.update(1, images=x.shape[0], loss=lambda: float(losses[step - 1]))
            if step % eval_every == 0 or step == total:
                ok = checkpoint(step, epoch_index)
                if not ok:
                    break
    synchronize(device)
    result.wall_s = time.perf_counter() - t0
    result.steps = step if ok else result.diverged["step"]
    result.epochs = seen / n
    result.images_per_s = seen / max(result.wall_s, 1e-9)
    if ok and result.history:
        last = result.history[-1]
        result.final = {k: v for k, v in last.items() if k not in ("epoch", "step")}
    else:
        result.final = {"train_loss": float("nan")}
    return result
