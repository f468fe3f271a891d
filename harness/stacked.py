"""Seeds of one arm trained together: the models' parameters stacked (``torch.func.stack_module_state``),
one vmapped forward and backward per step over a batch all models share, one optimiser over the stack.

This is exact for what the suite stacks: networks without BatchNorm or dropout (the part 6 ConvNet, the
modified VGG), element-wise optimisers (SGD, momentum, Adam: each parameter's update reads only its own
gradient and state, and the summed loss gives each model its own gradient), and a batch order shared by
the seeds (the scripts' contiguous order). A model whose loss stops being finite is masked from then on
(its parameters stay where they were) and reported, like a diverged run-by-run training.

A GPU option: on the CPU stacking is compute-bound and slower than run by run, so the claim modules do not
use it yet (wiring it into the ConvNet and VGG runners waits for a GPU to measure it on);
``tests/test_stacked.py`` shows it equals run-by-run training in float64, and on the pretend CUDA device that
its steps never read the host (the losses come back once, at the end).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state


@dataclass
class StackedResult:
    steps: int
    losses: torch.Tensor  # (steps, models)
    diverged_at: list[int | None] = field(default_factory=list)  # per model: first step with a non-finite loss


def train_stacked(models: Sequence[nn.Module], make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
                  x_all: torch.Tensor, y_all: torch.Tensor, *, steps: int, batch_size: int,
                  loss_fn=F.cross_entropy) -> StackedResult:
    """Train ``models`` (same architecture, different initial weights) for ``steps`` contiguous batches, as
    ``harness.train`` orders them; the trained weights are written back into ``models``."""
    params, buffers = stack_module_state(list(models))
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched = torch.vmap(one, in_dims=(0, 0, None))
    opt = make_optimizer(list(params.values()))
    m = len(models)
    alive = torch.ones(m, dtype=torch.bool, device=x_all.device)
    losses = torch.empty(steps, m, dtype=torch.float64, device=x_all.device)  # read back once, at the end
    n = x_all.shape[0]
    span = max(1, n - batch_size)
    for k in range(steps):
        start = (k * batch_size) % span
        x, y = x_all[start:start + batch_size], y_all[start:start + batch_size]
        out = batched(params, buffers, x)  # (models, batch, classes)
        per_model = torch.stack([loss_fn(out[i].float() if out.dtype != torch.float64 else out[i], y)
                                 for i in range(m)])
        alive &= torch.isfinite(per_model.detach())  # on the device: no step waits for the host
        opt.zero_grad(set_to_none=True)
        torch.where(alive, per_model, torch.zeros_like(per_model)).sum().backward()
        with torch.no_grad():  # a masked model's gradient is exactly zero; keep its state from moving too
            for p in params.values():
                if p.grad is not None:
                    p.grad[~alive] = 0
        opt.step()
        losses[k] = per_model.detach().double()
    losses = losses.cpu()
    # a model's first non-finite loss is where it diverged (it is masked from that step on)
    bad = ~torch.isfinite(losses)
    diverged: list[int | None] = [int(bad[:, i].nonzero()[0, 0]) if bad[:, i].any() else None for i in range(m)]
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, p in model.named_parameters():
                p.copy_(params[name][i])
    return StackedResult(steps, losses, diverged)
