"""Optimisers (Learn TensorFlow Now part 7; docs/claims.md D4): on a 2-D surface, and on the MNIST ConvNet.

The post's animation ran SGD, momentum and Adam on the Beale function from (1, 1.5) for 120 steps (the
repository's script: 100). Three sub-claims, each decided on its own by its rule in ``harness.rulebook``, at both
step counts:

* ``sgd_slow``: SGD does not reach the minimum (ends more than 0.5 from (3, 0.5), never within 0.1);
* ``momentum_overshoots``: momentum passes the minimum (largest x above 3);
* ``adam_balance``: Adam does not overshoot (largest x <= 3) and ends below SGD's cost, above momentum's.

Gradients are exact, so the runs are deterministic: n = 1 (the run is keyed to the first seed of the claim's
draw, like every deciding run, though no seed changes it). Costs milliseconds.

``ltfn7_optimizers_on_mnist`` (a control): SGD vs momentum 0.9 vs Adam (TF defaults) at lr 1e-3 on the He-init
ConvNet of ``benchmarks/convnet.py`` over shared seeds (the arms share each seed's initial weights and
batch order, so the rule pairs them), with steps to a target accuracy (never reached = infinity) shown.

    pytest benchmarks/test_optimizers.py -k ltfn7_optimizer_2d_comparison
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.convnet import OPTIMIZERS, acc_of, budgets, trained_seeds
from fixtures.surfaces import BEALE_MINIMUM, beale, log_contour_grid, trajectory
from harness import stats
from harness.claims import Case
from harness.profiles import Budget, NoNetwork
from harness.claim import ClaimBench
from harness.records import Lines, Paths, Strip, Table, accuracy_bands

START = (1.0, 1.5)
SAME = Budget(seeds=1, settings=NoNetwork())  # deterministic and cheap: every profile runs the posts' setup
BUDGETS = {"smoke": SAME, "cpu": SAME, "full": SAME}
SUBCLAIMS = ("sgd_slow", "momentum_overshoots", "adam_balance")
CASES = [Case("ltfn7_optimizer_2d_comparison", BUDGETS, variant=f"{sub}-{steps}steps",
              primary=(steps == 120), params=(("subclaim", sub), ("steps", steps)))
         for steps in (120, 100) for sub in SUBCLAIMS]
PAIRED = budgets({"smoke": 1, "cpu": 5, "full": 6})
OPT_CASES = [Case("ltfn7_optimizers_on_mnist", PAIRED, v, params=(("dataset", "mnist"),))
             for v in ("momentum_beats_sgd", "adam_best")]

COLORS = {"sgd": "tab:blue", "momentum": "tab:orange", "adam": "tab:green"}


def _measure(opt: str, steps: int) -> dict:
    path = trajectory(opt, START, steps)
    dist = np.hypot(path[:, 0] - BEALE_MINIMUM[0], path[:, 1] - BEALE_MINIMUM[1])
    near = np.nonzero(dist < 0.1)[0]
    return {"path": path.round(6).tolist(), "final_f": float(beale(*path[-1])),
            "final_dist": float(dist[-1]), "max_x": float(path[:, 0].max()), "min_dist": float(dist.min()),
            "first_within_0.1": int(near[0]) if near.size else None}


def _step(k: int | None) -> str:
    return "never" if k is None else f"step {k}"


def _limits(m: dict) -> dict:
    """Axis limits that show every path whole, within the surface's [-4.5, 4.5] square."""
    pts = np.array([p for o in COLORS for p in m[o]["path"]] + [BEALE_MINIMUM])
    lo, hi = np.clip(pts.min(0) - 0.4, -4.5, 4.5), np.clip(pts.max(0) + 0.4, -4.5, 4.5)
    return {"xlim": [float(lo[0]), float(hi[0])], "ylim": [float(lo[1]), float(hi[1])]}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_claim(case: Case, claimbench: ClaimBench) -> None:
    ctx = claimbench.start(case)
    steps = case.param["steps"]

    def fn() -> dict:
        m = {o: _measure(o, steps) for o in COLORS}
        metrics = {f"{o}_{k}": m[o][k] for o in COLORS for k in ("final_f", "final_dist", "max_x", "min_dist")}
        return {"measure": m, "metrics": metrics}

    run = ctx.run("beale", ctx.seeds[0], fn, config={"start": START, "steps": steps})
    m = run["measure"]
    table = [[o, f"({m[o]['path'][-1][0]:.3f}, {m[o]['path'][-1][1]:.3f})", f"{m[o]['final_f']:.4f}",
              f"{m[o]['final_dist']:.3f}", f"{m[o]['min_dist']:.3f}", f"{m[o]['max_x']:.3f}",
              _step(m[o]["first_within_0.1"])]
             for o in COLORS]
    figure = Paths(title=f"Beale from {START}, {steps} steps", contour=log_contour_grid(), start=list(START),
                   minimum=list(BEALE_MINIMUM), **_limits(m), xlabel="x", ylabel="y",
                   paths=[{"label": o, "x": [p[0] for p in m[o]["path"]], "y": [p[1] for p in m[o]["path"]],
                           "color": c} for o, c in COLORS.items()])
    first_variant = case.param["subclaim"] == SUBCLAIMS[0]
    ctx.decide(
        {"beale": [run]},
        tables=[Table(title=f"End of {steps} steps from {START}", columns=["optimiser", "end point", "f",
                                                                           "distance to min", "closest approach",
                                                                           "max x",
                             "first step within 0.1"], rows=table)] if first_variant else [],
        figures=[figure] if first_variant else [],
        notes=[] if steps == 120 else ["The repository's script ran 100 steps; the post says 120."])


@pytest.mark.parametrize("case", OPT_CASES, ids=str)
def test_optimizers_on_mnist(case: Case, claimbench: ClaimBench, datasets) -> None:
    ctx = claimbench.start(case)
    data = datasets.require(ctx, "mnist")
    runs = {o: trained_seeds(ctx, data, "he_xavier", 1e-3, o, ctx.seeds) for o in OPTIMIZERS}
    target = ctx.budget.settings.target_acc
    n = len(ctx.seeds)
    steps = {o: [r["metrics"]["steps_to_target"] for r in rs] for o, rs in runs.items()}
    rows = [[o, stats.summary([acc_of(r) for r in rs]).fmt(100, 2, "%"),
             f"{np.median([math.inf if x is None else x for x in steps[o]]):g}",
             f"{sum(x is None for x in steps[o])}/{n}"] for o, rs in runs.items()]
    ctx.decide(
        runs,
        tables=[Table(title=f"final test accuracy and steps to {100 * target:g}% accuracy (He init, lr 1e-3); "
                          "never reached counts as infinity", columns=["optimiser", "accuracy mean [95% CI] (n)",
                                                                       "median steps to target", "never reached"],
                                                                       rows=rows)],
        figures=[Lines(title="test accuracy during training (mean, band = min..max over seeds)", xlabel="step",
                       ylabel="test accuracy (%)", series=accuracy_bands(runs, percent=True)),
                 Strip(title="final test accuracy per seed (%)", ylabel="test accuracy (%)", groups=[{"label": o,
                         "values": [100 * acc_of(r) for r in rs]} for o, rs in runs.items()])],
        notes=["The arms share each seed's initial weights and batch order, so the rule pairs them by seed."])
