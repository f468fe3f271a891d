"""Seeds of one arm trained together: the models' parameters stacked (``torch.func.stack_module_state``),
one vmapped forward and backward per step over a batch all models share, one optimiser over the stack.

This is exact for what the suite stacks: networks without BatchNorm or dropout (the part 6 ConvNet, the
modified VGG), element-wise optimisers (SGD, momentum, Adam: each parameter's update reads only its own
gradient and state, and the summed loss gives each model its own gradient), and a batch order shared by
the seeds (the scripts' contiguous order). A model whose loss stops being finite is masked from then on
(its gradient is exactly zero, so it cannot disturb the others; an optimiser with momentum may still move
its weights, which no longer matter) and reported, like a diverged run-by-run training.

A GPU option: on the CPU stacking is compute-bound and slower than run by run. ``--stack auto`` (the default)
stacks on CUDA only; the ConvNet runner (``benchmarks/convnet.py``) and the VGG runners (``benchmarks/vgg.py``)
both go through one adaptor, :func:`run_seeds`, which trains the seeds of an arm one by one or together with
:func:`train_stacked_runs`, which evaluates every model on the schedule
``harness.train`` keeps and returns one ``RunResult`` per model, so each seed is still stored as its own run
(with ``execution.mode = "stacked"``). ``tests/test_stacked.py`` shows it equals run-by-run training in float64, and
on the pretend CUDA device that its steps never read the host.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from harness.device import synchronize
from harness.progress import Progress
from harness.train import RunResult, TrainConfig, _batches, forward, train


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
    params, buffers, batched = _stack(models)
    opt = make_optimizer(list(params.values()))
    m = len(models)
    alive = torch.ones(m, dtype=torch.bool, device=x_all.device)
    losses = torch.empty(steps, m, dtype=torch.float64, device=x_all.device)  # read back once, at the end
    cfg = TrainConfig(steps=steps, batch_size=batch_size, order="contiguous", use_autocast=False)
    for k, (_, idx) in enumerate(_batches(x_all.shape[0], cfg, None)):
        losses[k] = _step(batched, params, buffers, opt, alive, x_all[idx], y_all[idx], loss_fn, cfg).double()
    losses = losses.cpu()
    # a model's first non-finite loss is where it diverged (it is masked from that step on)
    bad = ~torch.isfinite(losses)
    diverged: list[int | None] = [int(bad[:, i].nonzero()[0, 0]) if bad[:, i].any() else None for i in range(m)]
    _write_back(models, params)
    return StackedResult(steps, losses, diverged)


def _stack(models: Sequence[nn.Module]):
    params, buffers = stack_module_state(list(models))
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    return params, buffers, torch.vmap(one, in_dims=(0, 0, None))


def _step(batched, params: dict, buffers: dict, opt: torch.optim.Optimizer, alive: torch.Tensor, x: torch.Tensor,
          y: torch.Tensor, loss_fn, cfg: TrainConfig) -> torch.Tensor:
    """One optimiser step of every model on the shared batch; returns the (models,) losses, detached. A model
    whose loss is not finite is masked (``alive``, updated in place on the device: no step waits for the host)
    and gets an exactly zero gradient from then on."""
    out = forward(lambda b: batched(params, buffers, b), x, x.device, use_autocast=cfg.use_autocast,
                  use_channels_last=False)  # (models, batch, classes)
    per_model = torch.stack([loss_fn(out[i], y) for i in range(out.shape[0])])
    alive &= torch.isfinite(per_model.detach())
    opt.zero_grad(set_to_none=True)
    torch.where(alive, per_model, torch.zeros_like(per_model)).sum().backward()
    with torch.no_grad():
        for p in params.values():
            if p.grad is not None:
                p.grad[~alive] = 0
    opt.step()
    return per_model.detach()


def _write_back(models: Sequence[nn.Module], params: dict) -> None:
    """The trained weights of stacked model ``i`` into ``models[i]``."""
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, p in model.named_parameters():
                p.copy_(params[name][i])


@torch.no_grad()
def _evaluate_stacked(batched, params, buffers, data, batch_size: int, loss_fn, use_autocast: bool) -> torch.Tensor:
    """(models, 2): summed loss and correct count of every model over ``data``, on the device."""
    x_all, y_all = data
    m = next(iter(params.values())).shape[0]
    acc = torch.zeros(m, 2, dtype=torch.float64, device=x_all.device)
    for i in range(0, x_all.shape[0], batch_size):
        x, y = x_all[i:i + batch_size], y_all[i:i + batch_size]
        out = forward(lambda b: batched(params, buffers, b), x, x.device, use_autocast=use_autocast,
                      use_channels_last=False)
        for j in range(m):
            acc[j, 0] += loss_fn(out[j], y, reduction="sum").double()
            acc[j, 1] += (out[j].argmax(1) == y).sum()
    return acc


def train_stacked_runs(models: Sequence[nn.Module], make_optimizer: Callable[[list[torch.Tensor]],
                                                                             torch.optim.Optimizer],
                       train_data, valid_data, cfg: TrainConfig, *, loss_fn=F.cross_entropy,
                       label: str = "stacked", on_step: Callable[[int, torch.Tensor], None] | None = None
                       ) -> tuple[list[RunResult], torch.optim.Optimizer, dict]:
    """``harness.train.train`` for several models at once: the same contiguous batches, optimiser steps,
    evaluation schedule and history rows, one :class:`RunResult` per model. Returns the results, the stacked
    optimiser and the stacked parameters (for :func:`unstack_optimizer`); trained weights are written back into
    ``models``. A model whose loss stops being finite is masked from that step (on the device) and its run
    records the divergence as ``train`` would; the others go on. ``on_step(k, losses)`` sees each step's
    (unsynchronised) losses of all models, shape (models,).
    """
    if cfg.order != "contiguous":
        raise ValueError("stacked training needs a batch order shared by the seeds (order='contiguous')")
    x_all, y_all = train_data
    device = x_all.device
    n, bs, m = x_all.shape[0], cfg.batch_size, len(models)
    total = cfg.steps if cfg.steps is not None else cfg.epochs * max(1, n // bs)
    eval_every = cfg.eval_every or total
    params, buffers, batched = _stack(models)
    opt = make_optimizer(list(params.values()))
    alive = torch.ones(m, dtype=torch.bool, device=device)
    losses = torch.zeros(total, m, dtype=torch.float32, device=device)
    results = [RunResult() for _ in range(m)]
    running = list(range(m))  # models not yet reported diverged
    synchronize(device)
    t0 = time.perf_counter()
    last_eval, step = 0, 0
    with Progress(total, label) as bar:
        for epoch_index, idx in _batches(n, cfg, torch.Generator(), device):
            x, y = x_all[idx], y_all[idx]
            per_model = _step(batched, params, buffers, opt, alive, x, y, loss_fn, cfg)
            losses[step] = per_model.float()
            if on_step is not None:
                on_step(step, per_model)
            step += 1
            bar.update(1, images=x.shape[0] * m)
            if step % eval_every == 0 or step == total:
                ev = (_evaluate_stacked(batched, params, buffers, valid_data, cfg.eval_batch_size, loss_fn,
                                        cfg.use_autocast).cpu() if valid_data is not None else None)
                window_h = losses[last_eval:step].cpu()  # one host read per evaluation, as train()
                finite_h = torch.isfinite(window_h)
                for i in list(running):
                    row: dict = {"epoch": epoch_index + 1, "step": step}
                    if not bool(finite_h[:, i].all()):
                        k = last_eval + int((~finite_h[:, i]).nonzero()[0, 0])
                        results[i].diverged = {"step": k + 1, "loss": str(float(window_h[k - last_eval, i]))}
                        row["train_loss"] = float("nan")
                        results[i].history.append(row)
                        results[i].steps = k + 1
                        running.remove(i)
                        continue
                    row["train_loss"] = float(window_h[:, i].mean())
                    if ev is not None:
                        nv = valid_data[0].shape[0]
                        acc = float(ev[i, 1]) / nv
                        row.update(valid_loss=float(ev[i, 0] / nv), error_rate=1.0 - acc)
                    results[i].history.append(row)
                last_eval = step
    synchronize(device)
    wall = time.perf_counter() - t0
    for i, r in enumerate(results):
        r.wall_s = wall / m  # its share of the group's time
        if r.diverged is None:
            r.steps = step
            r.final = {k: v for k, v in r.history[-1].items() if k not in ("epoch", "step")} if r.history else {}
        else:
            r.final = {"train_loss": float("nan")}
        r.epochs = r.steps * bs / n
        r.images_per_s = step * bs * m / max(wall, 1e-9)  # the group's throughput (images of all models)
    _write_back(models, params)
    return results, opt, params


def unstack_optimizer(opt: torch.optim.Optimizer, params: dict, i: int, model: nn.Module,
                      make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> torch.optim.Optimizer:
    """Model ``i``'s own optimiser, with its slice of the stacked optimiser's state (moments, step counts), as
    if it had been trained alone (what the posts' flawed evaluation continues from)."""
    own = make_optimizer(list(model.parameters()))
    stacked = list(params.values())
    state = opt.state_dict()
    sliced = {}
    for k, st in state["state"].items():
        shape = stacked[k].shape
        sliced[k] = {name: (v[i].clone() if torch.is_tensor(v) and v.dim() > 0 and v.shape == shape else
                            (v.clone() if torch.is_tensor(v) else v)) for name, v in st.items()}
    own.load_state_dict({"state": sliced, "param_groups": state["param_groups"]})
    return own


@dataclass
class SeedSetup:
    """One seed's model, built exactly as its run-by-run training builds it, with what its training reads."""

    model: nn.Module
    make_optimizer: Callable[[Any], torch.optim.Optimizer]  # parameters -> optimiser (also for the stack)
    train: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor]  # evaluated on the TrainConfig's schedule
    generator: torch.Generator | None  # the batch order's generator
    before: Any = None  # what the finished record needs from before training (e.g. the evaluation at init)


def _stopped_at(res: RunResult) -> int:
    """The step a run-by-run training stops at: the end, or the evaluation that found a divergence."""
    return res.history[-1]["step"] if res.history else res.steps


def run_seeds(ctx, arm: str, seeds, *, setup: Callable[[int], SeedSetup], finish: Callable[..., dict],
              train_config: TrainConfig, label: str, config: dict, experiment: str, print_every: int = 0) -> list[dict]:
    """The stored runs of an arm over ``seeds`` (``ctx`` is the claim's ``ClaimContext``): trained one by one or,
    where ``ctx.stacking`` says so (CUDA by default), together; the same stored runs either way, each saying how
    it was executed. Both runners of the suite use it.

    ``setup(seed)`` builds a seed's ``SeedSetup``; ``finish(model, optimizer, result, printed, execution, before)``
    turns the trained model into the run's record, where ``printed`` lists ``[step, batch cost]`` every
    ``print_every`` steps (the posts' printed costs; empty when 0) and ``optimizer`` is the seed's own (sliced
    from the stack when trained together)."""
    seeds = list(seeds)

    def one(seed: int) -> Callable[[], dict]:
        def fn() -> dict:
            su = setup(seed)
            opt = su.make_optimizer(su.model.parameters())
            printed: dict[int, float] = {}

            def on_step(k, loss):
                if k % print_every == 0:
                    printed[k] = loss
            res = train(su.model, opt, su.train, su.valid, train_config, generator=su.generator,
                        label=f"{label} seed={seed}", on_step=on_step if print_every else None)
            return finish(su.model, opt, res, [[k, float(v)] for k, v in sorted(printed.items())],
                          {"mode": "run-by-run"}, su.before)
        return fn

    def many(todo: list[int]) -> dict[int, dict]:
        built = [setup(seed) for seed in todo]
        models, make_opt = [b.model for b in built], built[0].make_optimizer
        printed: dict[int, torch.Tensor] = {}

        def on_step(k, losses):
            if k % print_every == 0:
                printed[k] = losses
        results, opt, params = train_stacked_runs(
            models, make_opt, built[0].train, built[0].valid, train_config, on_step=on_step if print_every else None,
            label=f"{label} seeds={','.join(map(str, todo))} (stacked)")
        execution = {"mode": "stacked", "seeds": list(todo)}
        host = {k: v.cpu() for k, v in printed.items()}
        return {seed: finish(m, unstack_optimizer(opt, params, i, m, make_opt), res,
                             [[k, float(host[k][i])] for k in sorted(host) if k < _stopped_at(res)], execution,
                             built[i].before)
                for i, (seed, m, res) in enumerate(zip(todo, models, results))}

    if not ctx.stacking(len(seeds)):
        return [ctx.run(arm, seed, one(seed), config=config, experiment=experiment) for seed in seeds]
    return ctx.run_group(arm, seeds, many, one, config=config, experiment=experiment)
