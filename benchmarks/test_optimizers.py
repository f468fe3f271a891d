"""Optimisers on a 2-D surface (Learn TensorFlow Now part 7; CLAIMS.md D4).

The post's animation ran SGD, momentum and Adam on the Beale function from (1, 1.5) for 120 steps (the
repository's script: 100). Three sub-claims, each decided on its own by its rule in ``harness.rulebook``, at both step counts:

* ``sgd_slow``: SGD does not reach the minimum (ends more than 0.5 from (3, 0.5), never within 0.1);
* ``momentum_overshoots``: momentum passes the minimum (largest x above 3);
* ``adam_balance``: Adam does not overshoot (largest x <= 3) and ends below SGD's cost, above momentum's.

Gradients are exact, so the runs are deterministic: n = 1, no seeds. Costs milliseconds.

    pytest benchmarks/test_optimizers.py -k ltfn7_optimizer_2d_comparison
"""
from __future__ import annotations

import numpy as np
import pytest

from fixtures.surfaces import BEALE_MINIMUM, beale, log_contour_grid, trajectory
from harness.claims import Case
from harness.profiles import Budget
from harness.plugin import ClaimBench

START = (1.0, 1.5)
SAME = Budget(seeds=1, deviation="")  # deterministic and cheap: every profile runs the posts' setup
BUDGETS = {"smoke": SAME, "cpu": SAME, "full": SAME}
SUBCLAIMS = ("sgd_slow", "momentum_overshoots", "adam_balance")
CASES = [Case("ltfn7_optimizer_2d_comparison", BUDGETS, variant=f"{sub}-{steps}steps",
              primary=(steps == 120), params=(("subclaim", sub), ("steps", steps)))
         for steps in (120, 100) for sub in SUBCLAIMS]
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

    run = ctx.run("beale", 0, fn, config={"start": START, "steps": steps})
    m = run["measure"]
    table = [[o, f"({m[o]['path'][-1][0]:.3f}, {m[o]['path'][-1][1]:.3f})", f"{m[o]['final_f']:.4f}",
              f"{m[o]['final_dist']:.3f}", f"{m[o]['min_dist']:.3f}", f"{m[o]['max_x']:.3f}", _step(m[o]["first_within_0.1"])]
             for o in COLORS]
    figure = {"kind": "trajectories2d", "title": f"Beale from {START}, {steps} steps",
              "contour": log_contour_grid(), "start": list(START), "minimum": list(BEALE_MINIMUM),
              **_limits(m), "xlabel": "x", "ylabel": "y",
              "paths": [{"label": o, "x": [p[0] for p in m[o]["path"]], "y": [p[1] for p in m[o]["path"]],
                         "color": c} for o, c in COLORS.items()]}
    first_variant = case.param["subclaim"] == SUBCLAIMS[0]
    ctx.decide(
        {"beale": [run]},
        tables=[{"title": f"End of {steps} steps from {START}",
                 "columns": ["optimiser", "end point", "f", "distance to min", "closest approach", "max x",
                             "first step within 0.1"],
                 "rows": table}] if first_variant else [],
        figures=[figure] if first_variant else [],
        notes=[] if steps == 120 else ["The repository's script ran 100 steps; the post says 120."])
