"""The fastai v1 training recipe in plain PyTorch: fastai's ``slice`` learning rates, AdamW with one-cycle,
the LR range test and the posts' sequences of ``fit_one_cycle`` calls (docs/claims.md section A). The data,
transforms and models it trains are ``fixtures.fastai``, which the claim modules import themselves.
Written by hand because it must match fastai v1's schedules and defaults exactly; fastai itself is not a
dependency.
"""
from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.device import prepare_model
from harness.train import TrainConfig, forward, train

from fixtures.fastai import ImageBank, Pipeline, layer_groups, unfreeze

__all__ = ["lr_range", "make_optimizer", "one_cycle", "fit_one_cycle", "lr_find", "sweet_spot", "random_split",
           "stage_accuracy", "fit_stages"]


def lr_range(lr: float | slice, n_groups: int = 3) -> list[float]:
    """fastai's learning rates per layer group: a float for all; slice(b) -> [b/10, ..., b/10, b];
    slice(a, b) -> geometric from a to b (even_mults)."""
    if isinstance(lr, slice):
        if lr.start is None:
            return [lr.stop / 10] * (n_groups - 1) + [lr.stop]
        step = (lr.stop / lr.start) ** (1 / (n_groups - 1))
        return [lr.start * step ** i for i in range(n_groups)]
    return [float(lr)] * n_groups


def make_optimizer(model: nn.Sequential, lrs: Sequence[float], wd: float = 1e-2) -> torch.optim.AdamW:
    groups = []
    for mods, lr in zip(layer_groups(model), lrs):
        params = [p for m in mods for p in m.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr})
    return torch.optim.AdamW(groups, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)


def one_cycle(opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps, pct_start=0.3,
        anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4, cycle_momentum=True,
        base_momentum=0.85, max_momentum=0.95)


def fit_one_cycle(model: nn.Sequential, bank: ImageBank, train_idx: torch.Tensor, valid_idx: torch.Tensor,
                  labels: torch.Tensor, epochs: int, max_lr: float | slice = slice(3e-3), *, train_kind: str,
                  generator: torch.Generator, bs: int = 64, loss_fn=F.cross_entropy, label: str = "fit",
                  augment_generator: Optional[torch.Generator] = None):
    """fastai's ``fit_one_cycle``: returns harness.train's RunResult with one history row per epoch
    (epoch, train_loss, valid_loss, error_rate). ``labels`` holds every image's target (class index, or a
    float for a regression head); the data passed around are image indices."""
    n_train = train_idx.shape[0]
    if n_train < bs:
        raise ValueError(f"{n_train} training images are fewer than one batch of {bs} (drop_last)")
    opt = make_optimizer(model, lr_range(max_lr))
    sched = one_cycle(opt, epochs * (n_train // bs))
    cfg = TrainConfig(epochs=epochs, batch_size=bs, order="shuffle", drop_last=True, eval_batch_size=bs * 4)
    return train(model, opt, (train_idx, labels[train_idx]), (valid_idx, labels[valid_idx]), cfg,
                 generator=generator, scheduler=sched, loss_fn=loss_fn, augment_generator=augment_generator,
                 transform=Pipeline(bank, train_kind), valid_transform=Pipeline(bank, "center"), label=label)


def lr_find(model: nn.Sequential, bank: ImageBank, train_idx: torch.Tensor, labels: torch.Tensor, *,
            train_kind: str, generator: torch.Generator, bs: int = 64, start_lr: float = 1e-7,
            end_lr: float = 10.0, num_it: int = 100, loss_fn=F.cross_entropy,
            augment_generator: Optional[torch.Generator] = None) -> dict:
    """fastai's LR range test at the session's precision; the model (weights and BN statistics) is restored
    afterwards.

    Returns lrs, raw and smoothed losses per iteration, whether it stopped early, and the points
    fastai's ``recorder.plot()`` shows (skipping the first 10 and the last 5)."""
    state = copy.deepcopy(model.state_dict())
    dev = train_idx.device
    prepare_model(model, dev)  # the layout and precision the training that follows uses (in place)
    opt = make_optimizer(model, lr_range(start_lr))
    pipe = Pipeline(bank, train_kind)
    y_all = labels
    n = train_idx.shape[0]
    lrs, raw, smooth = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    perm = train_idx[torch.randperm(n, generator=generator).to(train_idx.device)]
    pos = 0
    model.train()
    for i in range(num_it):
        lr = start_lr * (end_lr / start_lr) ** (i / (num_it - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + bs > n:
            perm = train_idx[torch.randperm(n, generator=generator).to(train_idx.device)]
            pos = 0
        idx = perm[pos:pos + bs]
        pos += bs
        x = pipe(idx, augment_generator if augment_generator is not None else generator)
        loss = loss_fn(forward(model, x, dev), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        avg = 0.98 * avg + 0.02 * value
        sm = avg / (1 - 0.98 ** (i + 1))
        lrs.append(lr)
        raw.append(value)
        smooth.append(sm)
        if not math.isfinite(sm) or (i > 0 and sm > 4 * best):
            stopped = True
            break
        best = min(best, sm)
    model.load_state_dict(state)
    shown = slice(10, -5) if len(lrs) > 15 else slice(None)
    return {"lr": lrs, "loss": raw, "smooth": smooth, "stopped_early": stopped,
            "plot_lr": lrs[shown], "plot_loss": smooth[shown]}


def sweet_spot(lrs: Sequence[float], smooth: Sequence[float], lo: float = 1e-5, hi: float = 1e-3) -> dict:
    """docs/claims.md A4's reading of an LR-finder curve: the share of falling steps of the smoothed loss in
    [lo, hi], and the lr where the shown curve is lowest."""
    lr, sm = np.asarray(lrs, float), np.asarray(smooth, float)
    if lr.size < 3:
        return {"falling_share": float("nan"), "argmin_lr": float("nan"), "n_in_range": int(lr.size)}
    inside = (lr[1:] >= lo) & (lr[:-1] <= hi)
    steps = np.diff(sm)[inside]
    finite = np.isfinite(sm)
    return {"falling_share": float(np.mean(steps < 0)) if steps.size else float("nan"),
            "argmin_lr": float(lr[finite][np.argmin(sm[finite])]) if finite.any() else float("nan"),
            "n_in_range": int(steps.size)}


def random_split(n: int, seed: int, valid_pct: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """fastai's ``random_split_by_pct``: (train, valid) indices, the first ``int(valid_pct * n)`` of a
    seeded permutation for validation."""
    perm = np.random.RandomState(seed).permutation(n)
    nv = int(valid_pct * n)
    return perm[nv:], perm[:nv]


def stage_accuracy(run: dict, stage: int = -1) -> float:
    """Final validation accuracy of one stage of a :func:`fit_stages` record (-1: the last); a diverged
    run counts as 0 from the stage it broke in."""
    if run.get("diverged") is not None and (stage == -1 or stage >= run["diverged"]["stage"] - 1):
        return 0.0
    return 1 - run["stages"][stage]["history"][-1]["error_rate"]


def fit_stages(model: nn.Sequential, bank: ImageBank, train_idx: torch.Tensor, valid_idx: torch.Tensor,
               targets: torch.Tensor, stages, *, train_kind: str, generator: torch.Generator, bs: int = 64,
               lr_find_before: Optional[int] = None, lr_find_it: int = 100, loss_fn=F.cross_entropy,
               label: str = "fit", augment_generator: Optional[torch.Generator] = None) -> dict:
    """The posts' sequences of ``fit_one_cycle`` calls. ``stages`` holds (mode, epochs, lr) with mode
    ``"as_created"`` (frozen when the body is pretrained) or ``"unfrozen"`` (``unfreeze()`` first), lr a
    float or slice; the LR finder runs just before stage ``lr_find_before`` (after its unfreeze), as the
    posts did. A diverging stage ends the sequence; the record says where."""
    out = {"stages": [], "lr_find": None, "diverged": None}
    for k, (mode, epochs, lr) in enumerate(stages):
        if mode == "unfrozen":
            unfreeze(model)
        if lr_find_before == k:
            out["lr_find"] = lr_find(model, bank, train_idx, targets, train_kind=train_kind, generator=generator,
                                     bs=bs, num_it=lr_find_it, loss_fn=loss_fn, augment_generator=augment_generator)
        res = fit_one_cycle(model, bank, train_idx, valid_idx, targets, epochs, lr, train_kind=train_kind,
                            generator=generator, bs=bs, loss_fn=loss_fn, label=f"{label} stage {k + 1}",
                            augment_generator=augment_generator)
        out["stages"].append({"mode": mode, "epochs": epochs, "history": res.history, "wall_s": res.wall_s,
                              "images_per_s": res.images_per_s})
        if res.diverged is not None:
            out["diverged"] = {"stage": k + 1, **res.diverged}
            break
    return out
