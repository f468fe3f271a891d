"""The part 6 ConvNet runs that the init family (``test_init.py``) and the optimiser family
(``test_optimizers.py``) share: one stored, resumable run per (dataset, init, scale, learning rate,
optimiser, seed), trained as the scripts trained it (plain batches of 100 in TF's order over images
5,000..59,999, evaluated cleanly on the test set; the posts' test-loop bug run as a flagged second number),
and the activation probe of the posts' full-width network at initialisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fixtures.activations import activation_report, he_variance_ratio, layer_outputs
from fixtures.models import init_convnet4, make_convnet4
from harness.rulebook import METRIC_DEFS, metric_def
from harness.device import prepare_model
from harness.memo import session_cached
from harness.claim import ClaimContext
from harness.profiles import Budget, Scale
from harness.seeding import seed_all
from harness.stacked import SeedSetup, run_seeds
from harness.train import TrainConfig, evaluate, evaluate_while_training

SATURATED = metric_def("saturated_after", "softmax_max_above")  # the definition lives in the rulebook
POSTS_LR = {"large": 1e-7, "small_conv": 1e-7, "small_all": 1e-7, "he_xavier": 1e-3}
OPTIMIZERS = {
    "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr),
    "momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8),  # TF defaults
}


@dataclass(frozen=True)
class ConvNetScale(Scale):
    """The MNIST ConvNet families' knobs (parts 6-7)."""

    width: float  # of the posts' 32/64-channel ConvNet
    steps: int  # training steps per run
    test_n: int  # test images evaluated
    eval_every: int  # steps between evaluations while training
    sweep_lrs: tuple[float, ...]  # the controlled-init learning-rate sweep
    scales: tuple[float, ...]  # He/Xavier init scales swept
    target_acc: float  # the optimisers' steps-to-accuracy target


SCALE = {
    "smoke": ConvNetScale(width=0.125, steps=20, test_n=500, eval_every=10, sweep_lrs=(1e-7, 1e-3),
                          scales=(0.1, 1.0, 10.0), target_acc=0.3),
    "cpu": ConvNetScale(width=0.25, steps=300, test_n=2000, eval_every=100, sweep_lrs=(1e-7, 1e-5, 1e-3, 1e-1),
                        scales=(0.01, 0.1, 1.0, 10.0, 100.0), target_acc=0.9),
    "full": ConvNetScale(width=1.0, steps=5000, test_n=10000, eval_every=500,
                         sweep_lrs=(1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
                         scales=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0), target_acc=0.97),
}
DEVIATION = {"smoke": "1/8 width, 20 steps, 500 test images",
             "cpu": "1/4-width ConvNet (16/32 channels) trained 300 steps (0.55 epoch) instead of 5,000; "
                    "first 2,000 test images; activation scales measured on the full-width network",
             "full": ""}


def budgets(seeds: dict[str, int]) -> dict[str, Budget]:
    return {p: Budget(seeds=seeds[p], deviation=DEVIATION[p], settings=SCALE[p]) for p in SCALE}


def tensors(data, device, test_n):
    """The TF split as float tensors in [0, 1] on the device: (train, test subset, fixed probe batch)."""
    def make():
        test = data.tensors("test", device, test_n)
        return data.tensors("train", device), test, test[0][:100]
    return session_cached(("convnet", data.name, str(device), test_n), make)


def _clean_report(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if k != "hist"}


def probe(ctx: ClaimContext, data, init, seed):
    """Activation scales of the posts' full-width network at init on the fixed probe batch (no training)."""
    def fn():
        gens = seed_all(seed)
        model = init_convnet4(make_convnet4(width=1.0), init, gens.torch)
        x = tensors(data, torch.device("cpu"), 100)[2]
        rep = activation_report(model, x, saturated_above=SATURATED)
        outs = layer_outputs(model, x)
        names = ["conv1", "conv2", "conv3", "conv4"]
        measured = [float(outs[b].var() / outs[a].var()) for a, b in zip(names, names[1:])]
        predicted = [he_variance_ratio(c) for c in model.convs()[1:]]
        return {"report": rep, "he_predicted": predicted, "he_measured": measured,
                "metrics": {"spread_ratio": rep["spread_ratio_4_1"], "saturated": rep["saturated_share"]}}

    return ctx.run(f"probe-{init}", seed, fn, experiment=f"convnet-probe-{data.name}",
                   config={"init": init, "width": 1.0, "probe": "first 100 test images", "metrics": 2})


def _config(ctx: ClaimContext, data, init, lr, opt, scale) -> dict:
    s = ctx.budget.settings
    return {"dataset": data.name, "init": init, "scale": scale, "lr": lr, "optimizer": opt,
            "width": s.width, "steps": s.steps, "test_n": s.test_n, "eval_every": s.eval_every,
            "batch": 100, "order": "contiguous", "target_acc": s.target_acc, "metrics": 2,
            "metric_defs": {"saturated_after": METRIC_DEFS["saturated_after"]}}


def _train_config(s: ConvNetScale) -> TrainConfig:
    return TrainConfig(steps=s.steps, batch_size=100, order="contiguous", eval_every=s.eval_every)


def _finish(model, optimizer, res, at_init, test_t, x_probe, target_acc, execution: dict) -> dict:
    """The run's record from its trained model: final numbers, activations after training, the posts' flawed
    evaluation, the metrics the rules read (the same whether the run trained alone or stacked)."""
    out = {"history": res.history, "diverged": res.diverged, "wall_s": res.wall_s, "steps": res.steps,
           "init_eval": at_init, "final": {}, "execution": execution}
    labels = test_t[1]
    constant = float(torch.bincount(labels.cpu(), minlength=10).max()) / labels.numel()
    # a diverged run scores 0 accuracy (a recorded outcome, not a missing one); its cost is undefined
    metrics = {"test_acc": 0.0, "test_cost": None, "init_cost": at_init["loss"], "init_acc": at_init["acc"],
               "constant_acc": constant, "diverged": res.diverged is not None,
               "steps_to_target": steps_to(res.history, target_acc)}
    if res.diverged is None:
        out["final"] = {**res.final, "test_acc": 1 - res.final["error_rate"],
                        "test_cost": res.final["valid_loss"]}
        out["after"] = _clean_report(activation_report(model, x_probe, saturated_above=SATURATED))
        # the posts' flawed evaluation, on copies, as a flagged second number
        ev = evaluate_while_training(model, optimizer, test_t)
        out["final"]["buggy_test_acc"], out["final"]["buggy_test_cost"] = ev["acc"], ev["loss"]
        acc, cost = out["final"]["test_acc"], out["final"]["test_cost"]
        metrics.update(test_acc=acc, test_cost=cost, cost_moved=abs(cost - at_init["loss"]),
                       acc_moved=abs(acc - at_init["acc"]), acc_above_constant=acc - constant,
                       spread_ratio_after=out["after"]["spread_ratio_4_1"],
                       saturated_after=out["after"]["saturated_share"],
                       max_prob_after=out["after"]["max_prob_mean"], buggy_test_acc=ev["acc"])
    out["metrics"] = metrics
    return out


def trained_seeds(ctx: ClaimContext, data, init, lr, opt, seeds, scale=1.0) -> list:
    """The runs of one arm over ``seeds`` (``harness.stacked.run_seeds``): trained together where ``ctx.stacking``
    says so (CUDA by default), else one by one; the same stored runs either way (each says how it was executed).
    Each seed's model is initialised from its own seed and evaluated at init before training."""
    s = ctx.budget.settings

    def setup(seed: int) -> SeedSetup:
        gens = seed_all(seed)
        model = prepare_model(init_convnet4(make_convnet4(width=s.width), init, gens.torch, scale), ctx.device)
        train_t, test_t, x_probe = tensors(data, ctx.device, s.test_n)
        return SeedSetup(model, lambda params: OPTIMIZERS[opt](params, lr), train_t, test_t, gens.torch,
                         before=(evaluate(model, test_t), test_t, x_probe))

    def finish(model, optimizer, res, _printed, execution, before) -> dict:
        at_init, test_t, x_probe = before
        return _finish(model, optimizer, res, at_init, test_t, x_probe, s.target_acc, execution)

    return run_seeds(ctx, f"{init}-{opt}-lr{lr:g}-x{scale:g}", seeds, setup=setup, finish=finish,
                     train_config=_train_config(s), label=f"{init} {opt} lr={lr:g}",
                     config=_config(ctx, data, init, lr, opt, scale), experiment=f"convnet-train-{data.name}")


def trained(ctx: ClaimContext, data, init, lr, opt, seed, scale=1.0):
    """One training run of the ConvNet (shared between the claims that need the same arm)."""
    return trained_seeds(ctx, data, init, lr, opt, [seed], scale)[0]


def acc_of(run) -> float:
    """Final clean test accuracy (a diverged run scores 0, as its record says)."""
    return run["metrics"]["test_acc"]


def steps_to(history, target) -> float | None:
    """First evaluated step whose test accuracy reaches the target; None (= never, +inf) otherwise."""
    for h in history:
        if 1 - h.get("error_rate", 1.0) >= target:
            return float(h["step"])
    return None


