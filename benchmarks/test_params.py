"""Parameter tables and checkpoints (Learn TensorFlow Now parts 8 and 9; docs/claims.md D6, D7).

* ``ltfn8_vgg_param_tables``: the posts' two tables (VGG-16; the modified VGG for 28x28x1 MNIST) against
  the networks built here: per-layer weight counts and output shapes, every mismatch listed as an erratum.
* ``ltfn9_checkpoint_184mb``: the modified VGG saved with its Adam state after a few steps; the file size
  against the posts' 184M, with the breakdown parameters vs optimiser moments.
* ``ltfn9_checkpoint_restore_roundtrip``: restore in a fresh Python process (``torch.load`` with
  ``weights_only=True``) and without the model's class (a ``torch.export`` program, PyTorch's analogue of
  TF's ``.meta`` graph); the restored logits must equal the saved model's bit for bit.

    pytest benchmarks/test_params.py --profile cpu
"""
from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from fixtures.models import count_weights, layer_table, make_modified_vgg, make_vgg16
from harness.claims import Case
from harness.profiles import Budget, NoNetwork, Scale
from harness.seeding import seed_all
from harness.train import TrainConfig, train
from harness.claim import ClaimBench, ClaimContext, run_case
from harness.records import Bars, Table

ROOT = Path(__file__).resolve().parent.parent
MIB = 2 ** 20

# The posts' tables, row by row: (layer, weights as printed, output shape as printed HxWxC).
VGG16_POSTS = [
    ("conv 64", 1728, (224, 224, 64)), ("conv 64", 36864, (224, 224, 64)), ("maxpool", 0, (112, 112, 64)),
    ("conv 128", 73728, (112, 112, 128)), ("conv 128", 147456, (112, 112, 128)),
    ("maxpool", 0, (56, 56, 256)),
    ("conv 256", 294912, (56, 56, 256)), ("conv 256", 589824, (56, 56, 256)),
    ("conv 256", 589824, (56, 56, 256)), ("maxpool", 0, (28, 28, 256)),
    ("conv 512", 1179648, (28, 28, 512)), ("conv 512", 2359296, (28, 28, 512)),
    ("conv 512", 2359296, (28, 28, 512)), ("maxpool", 0, (14, 14, 512)),
    ("conv 512", 2359296, (14, 14, 512)), ("conv 512", 2359296, (14, 14, 512)),
    ("conv 512", 2359296, (14, 14, 512)), ("maxpool", 0, (7, 7, 512)),
    ("fc 4096", 102760448, (1, 1, 4096)), ("fc 4096", 16777216, (1, 1, 4096)),
    ("fc 1000", 4096000, (1, 1, 1000)),
]
MODIFIED_POSTS = [
    ("conv 64", 1728, (32, 32, 64)), ("conv 64", 36864, (32, 32, 64)), ("maxpool", 0, (16, 16, 64)),
    ("conv 128", 73728, (16, 16, 128)), ("conv 128", 147456, (16, 16, 128)), ("maxpool", 0, (8, 8, 256)),
    ("conv 256", 294912, (8, 8, 256)), ("conv 256", 589824, (8, 8, 256)), ("conv 256", 589824, (8, 8, 256)),
    ("maxpool", 0, (4, 4, 256)),
    ("conv 512", 1179648, (4, 4, 512)), ("conv 512", 2359296, (4, 4, 512)),
    ("conv 512", 2359296, (4, 4, 512)), ("maxpool", 0, (2, 2, 512)),
    ("fc 4096", 8388608, (1, 1, 4096)), ("fc 10", 40960, (1, 1, 10)),
]
POSTS_VGG16_WEIGHTS = 138_344_128
POSTS_MODIFIED_WEIGHTS = 16_062_144  # the sum of the posts' own rows
# TF 1.x Saver's data file for the modified VGG (3-channel rows of the posts): 16,062,144 weights + biases as
# float32, Adam's m and v for each, and Adam's two beta-power scalars (docs/claims.md D7).
TF_CHECKPOINT_BYTES = 192_813_440

SAME = Budget(seeds=1, settings=NoNetwork())  # counts on the meta device: no network trained


@dataclass(frozen=True)
class CheckpointScale(Scale):
    """The checkpoint claims' knobs: the network's width and the Adam steps' batch."""

    width: float
    batch: int


# The size claim is exact only at full width; smoke checks the machinery on a 1/8-width network.
CKPT_BUDGETS = {
    "smoke": Budget(seeds=1, deviation="1/8-width VGG, batch 4", settings=CheckpointScale(width=0.125, batch=4)),
    "cpu": Budget(seeds=2, deviation="Adam steps on random 32x32 images, batch 8 (size does not depend "
                  "on data)", settings=CheckpointScale(width=1.0, batch=8)),
    "full": Budget(seeds=3, deviation="", settings=CheckpointScale(width=1.0, batch=100)),
}
ADAM_STEPS = 3


def _fmt_shape(s) -> str:
    return " x ".join(map(str, s))


def _compare_table(name: str, posts: list, ours: list[dict]) -> tuple[list[list], list[str], int, int]:
    rows, errata, bad_w, bad_s = [], [], 0, 0
    for i, ((kind, w, shape), o) in enumerate(zip(posts, ours, strict=True), start=1):
        if kind != o["kind"]:
            raise AssertionError(f"{name} row {i}: layer kinds differ ({kind} vs {o['kind']})")
        w_ok, s_ok = w == o["weights"], tuple(shape) == tuple(o["shape"])
        bad_w += not w_ok
        bad_s += not s_ok
        if not w_ok:
            errata.append(f"{name} row {i} ({kind}): weights {w:,} in the post, {o['weights']:,} built")
        if not s_ok:
            errata.append(f"{name} row {i} ({kind}): shape {_fmt_shape(shape)} in the post, "
                          f"{_fmt_shape(o['shape'])} built")
        rows.append([i, kind, f"{w:,}" if w else "", f"{o['weights']:,}" if o["weights"] else "",
                     _fmt_shape(shape), _fmt_shape(o["shape"]), "yes" if w_ok and s_ok else "**no**"])
    return rows, errata, bad_w, bad_s


def _vgg16() -> torch.nn.Module:
    with torch.device("meta"):
        return make_vgg16()


def _modified_vgg_notes() -> list[str]:
    w3, b3 = count_weights(make_modified_vgg(in_channels=3).to("meta"))
    return [f"The posts' rows sum to {POSTS_MODIFIED_WEIGHTS:,}, which is the 3-channel (CIFAR) "
            f"network's count ({w3:,} weights, {w3 + b3:,} with biases), not the 1-channel one.",
            "The text mentions dropping the last pool and three 512-convs but not that one of the two "
            "FC-4096 layers is gone too; the code and the table have one."]


def _param_table(ctx: ClaimContext, *, name: str, posts, shape_in: tuple, build: Callable[[], torch.nn.Module],
                 notes: Callable[[], list[str]] = list, **_) -> None:
    """One of the posts' parameter tables beside the network built from the posts' code (on the meta device)."""
    def measure() -> dict:
        model = build()
        weights, biases = count_weights(model)
        rows, errata, bad_w, bad_s = _compare_table(name, posts, layer_table(model, shape_in))
        return {"rows": rows, "errata": errata, "weights": weights, "biases": biases,
                "metrics": {"weight_rows_differing": bad_w, "shape_rows_differing": bad_s, "built_weights": weights}}

    run = ctx.run("table", ctx.seeds[0], measure)
    matching = [str(r[0]) for r in run["rows"] if r[-1] == "yes"]
    ctx.decide(
        {"table": [run]},
        tables=[Table(title=f"{name}: the posts' table vs the built network ({len(matching)} of "
                          f"{len(run['rows'])} rows match: {', '.join(matching)})", columns=["#", "layer",
                                                                                             "posts' weights",
                                                                                             "our weights",
                                                                                             "posts' shape",
                                                                                             "our shape", "match"],
                                                                                             rows=run["rows"]),
                Table(title="the posts' errata (rows that differ from the built network)", columns=["erratum"],
                      rows=[[e] for e in run["errata"]] or [["none"]])],
        notes=notes())


def _save_checkpoint(width: float, batch: int, seed: int, folder: Path) -> dict:
    """Train the modified VGG a few Adam steps through the harness, save model + Adam state."""
    gens = seed_all(seed)
    model = make_modified_vgg(in_channels=1, width=width)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch * ADAM_STEPS, 1, 28, 28, generator=gens.torch)
    y = torch.randint(0, 10, (batch * ADAM_STEPS,), generator=gens.torch)
    result = train(model, opt, (x, y), None, TrainConfig(steps=ADAM_STEPS, batch_size=batch, order="contiguous"),
                   generator=gens.torch, label="vgg adam steps")
    # back to the standard layout before saving: the restore builds the class afresh (NCHW), and its logits are
    # compared with these, so both must run the same kernels (a bf16 session trains in channels_last, whose
    # convolutions round differently, ~1e-6, which is not what the round trip is about)
    model = model.to(memory_format=torch.contiguous_format)
    ckpt = folder / "vgg_net.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": ADAM_STEPS}, ckpt)
    torch.save(model.state_dict(), folder / "params_only.pt")
    probe = torch.randn(16, 1, 28, 28, generator=gens.torch)
    model.eval()
    with torch.no_grad():
        logits = model(probe)
    torch.save({"probe": probe, "logits": logits}, folder / "probe.pt")
    exported = torch.export.export(model, (probe,))
    torch.export.save(exported, folder / "vgg_net.pt2")
    weights, biases = count_weights(model)
    moments = sum(s[k].numel() for s in opt.state_dict()["state"].values() for k in ("exp_avg", "exp_avg_sq"))
    return {"bytes": ckpt.stat().st_size, "params_only_bytes": (folder / "params_only.pt").stat().st_size,
            "exported_bytes": (folder / "vgg_net.pt2").stat().st_size, "n_params": weights + biases,
            "n_moments": moments, "train_loss": result.final.get("train_loss"), "wall_s": result.wall_s}


RESTORE_WITH_CLASS = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, sys.argv[1])
    from fixtures.models import make_modified_vgg
    folder, width = sys.argv[2], float(sys.argv[3])
    ckpt = torch.load(folder + "/vgg_net.pt", weights_only=True)
    model = make_modified_vgg(in_channels=1, width=width)
    model.load_state_dict(ckpt["model"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.load_state_dict(ckpt["optimizer"])
    probe = torch.load(folder + "/probe.pt", weights_only=True)["probe"]
    model.eval()
    with torch.no_grad():
        torch.save(model(probe), folder + "/restored_logits.pt")
""")
# No import of the project: the graph and weights come from the exported program alone.
RESTORE_EXPORTED = textwrap.dedent("""
    import sys, torch
    folder = sys.argv[1]
    program = torch.export.load(folder + "/vgg_net.pt2")
    probe = torch.load(folder + "/probe.pt", weights_only=True)["probe"]
    with torch.no_grad():
        torch.save(program.module()(probe), folder + "/exported_logits.pt")
""")


def _restore(folder: Path, width: float) -> dict:
    for script, args in ((RESTORE_WITH_CLASS, [str(ROOT), str(folder), str(width)]),
                         (RESTORE_EXPORTED, [str(folder)])):
        subprocess.run([sys.executable, "-c", script, *args], check=True, cwd=folder, timeout=600)
    saved = torch.load(folder / "probe.pt", weights_only=True)["logits"]
    out = {}
    for name in ("restored", "exported"):
        got = torch.load(folder / f"{name}_logits.pt", weights_only=True)
        out[f"{name}_max_abs_diff"] = float((got - saved).abs().max())
        out[f"{name}_identical"] = bool(torch.equal(got, saved))
    return out


def _checkpoint_runs(ctx: ClaimContext, restore: bool) -> list[dict]:
    """Per seed: a checkpoint saved after Adam steps, measured; with ``restore``, also restored in a fresh
    process, with and without the model's class."""
    width, batch = ctx.budget.settings.width, ctx.budget.settings.batch

    def measure(seed: int) -> dict:
        with tempfile.TemporaryDirectory(prefix="claimbench-ckpt-") as tmp:
            res = _save_checkpoint(width, batch, seed, Path(tmp))
            metrics = {"size_mib": res["bytes"] / MIB, "bytes": res["bytes"],
                       "overhead_bytes": res["bytes"] - 3 * 4 * res["n_params"],
                       "moments_per_param": res["n_moments"] / res["n_params"]}
            if restore:
                res.update(_restore(Path(tmp), width))
                metrics.update(restored_max_abs_diff=res["restored_max_abs_diff"],
                               exported_max_abs_diff=res["exported_max_abs_diff"])
            return {"measure": res, "metrics": metrics}

    return [ctx.run("checkpoint", s, lambda s=s: measure(s)) for s in ctx.seeds]


def _checkpoint_roundtrip(ctx: ClaimContext, **_) -> None:
    ctx.decide({"checkpoint": _checkpoint_runs(ctx, restore=True)})


def _checkpoint_size(ctx: ClaimContext, **_) -> None:
    runs = _checkpoint_runs(ctx, restore=False)
    m = runs[0]["measure"]
    size = m["bytes"]
    params_b = 4 * m["n_params"]
    mib = lambda b: b / MIB  # noqa: E731
    bars = Bars(title="What the checkpoint holds (MiB), measured; TensorFlow's beside it", ylabel="MiB",
                labels=["parameters (float32)", "Adam exp_avg", "Adam exp_avg_sq", "container overhead",
                       "our checkpoint", "TF checkpoint (posts)", "exported program"], values=[mib(params_b),
                               mib(4 * m["n_moments"] / 2), mib(4 * m["n_moments"] / 2),
                       mib(size - params_b - 4 * m["n_moments"]), mib(size), mib(TF_CHECKPOINT_BYTES),
                       mib(m["exported_bytes"])], colors=["tab:blue", "tab:orange", "tab:orange", "tab:gray",
                                                          "tab:gray", "tab:red", "tab:green"], refs=[{"y": 184,
                                                                  "label": "posts: 184M", "color": "red"}], rotate=25,
                                                                  size=(7.5, 4.6))
    ctx.decide(
        {"checkpoint": runs},
        tables=[Table(title="checkpoint breakdown (counted from the saved tensors; TF's from its variable list)",
                      columns=["part", "bytes", "MiB", "share"], rows=[["parameters, float32", f"{params_b:,}",
                                                                        f"{mib(params_b):.2f}",
                                                                        f"{params_b / size:.1%}"],
                          ["Adam moments (2 per parameter), float32", f"{4 * m['n_moments']:,}",
                           f"{mib(4 * m['n_moments']):.2f}", f"{4 * m['n_moments'] / size:.1%}"],
                          ["container overhead (zip, pickle, step)", f"{size - params_b - 4 * m['n_moments']:,}",
                           f"{mib(size - params_b - 4 * m['n_moments']):.3f}", ""],
                          ["whole checkpoint", f"{size:,}", f"{mib(size):.2f}", "100%"],
                          ["TF's data file in the posts: params + Adam m, v + 2 beta-power scalars",
                           f"{TF_CHECKPOINT_BYTES:,}", f"{mib(TF_CHECKPOINT_BYTES):.2f}", ""],
                          ["exported program (graph + weights)", f"{m['exported_bytes']:,}",
                           f"{mib(m['exported_bytes']):.2f}", ""]])],
        figures=[bars],
        notes=["Only about a third of the checkpoint is parameters; the rest is Adam's two moment tensors per "
               "parameter, which TF's Saver also stored. A plain-SGD checkpoint would be about a third of the size."])


TABLE_CASES = [Case("ltfn8_vgg_param_tables", {"smoke": SAME, "cpu": SAME, "full": SAME}, variant="vgg16",
                    run=functools.partial(_param_table, name="vgg16", posts=VGG16_POSTS, shape_in=(3, 224, 224),
                                          build=_vgg16)),
               Case("ltfn8_vgg_param_tables", {"smoke": SAME, "cpu": SAME, "full": SAME}, variant="modified_vgg",
                    run=functools.partial(_param_table, name="modified_vgg", posts=MODIFIED_POSTS, shape_in=(1, 28, 28),
                                          build=lambda: make_modified_vgg(in_channels=1).to("meta"),
                                          notes=_modified_vgg_notes))]
CKPT_CASES = [Case("ltfn9_checkpoint_184mb", CKPT_BUDGETS, run=_checkpoint_size),
              Case("ltfn9_checkpoint_restore_roundtrip", CKPT_BUDGETS, run=_checkpoint_roundtrip)]


@pytest.mark.parametrize("case", TABLE_CASES + CKPT_CASES, ids=str)
def test_claim(case: Case, claimbench: ClaimBench) -> None:
    run_case(case, claimbench)
