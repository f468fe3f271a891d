"""pytest-benchmark: the harness training loop against a bare PyTorch loop on the same model and data.

Not a claim: a speed check of the instrument. Both run 20 optimiser steps of the part 6 ConvNet
(half width) on 28x28 tensors, batch 64, with the same order of operations; compare the two rows of the
``train_step`` group. The harness adds only an on-device loss buffer write per step.

    pytest benchmarks/test_harness_overhead.py --benchmark-only --benchmark-group-by=group
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fixtures.models import make_convnet4
from harness.device import prepare_model
from harness.train import TrainConfig, as_batch, train

STEPS, BATCH = 20, 64


def _setup():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * BATCH + BATCH, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (x.shape[0],), generator=g)
    torch.manual_seed(0)
    model = make_convnet4(width=0.5)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), x, y, g


def _bare(model, opt, x, y, _g):
    prepare_model(model, x.device)  # the layout the harness trains in; in place: the optimiser keeps its parameters
    x = as_batch(x, x.device)
    n = x.shape[0]
    for k in range(STEPS):
        start = (k * BATCH) % (n - BATCH)
        out = model(x[start:start + BATCH])
        loss = F.cross_entropy(out.float(), y[start:start + BATCH])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


def _harness(model, opt, x, y, g):
    res = train(model, opt, (x, y), None, TrainConfig(steps=STEPS, batch_size=BATCH, order="contiguous"),
                generator=g, label="overhead")
    return res.final["train_loss"]


@pytest.mark.benchmark(group="train_step", warmup=True, warmup_iterations=1)
@pytest.mark.parametrize("loop", [_bare, _harness], ids=["bare_pytorch", "harness_train"])
def test_train_step(benchmark, loop):
    model, opt, x, y, g = _setup()
    benchmark.pedantic(loop, args=(model, opt, x, y, g), rounds=5, iterations=1, warmup_rounds=1)


def test_harness_loop_matches_bare_loop():
    """The instrument trains what a bare loop trains: same steps, same parameters afterwards (float32,
    same layout, same op order), so the timing comparison above compares like with like."""
    from harness.device import precision_override

    a, opt_a, x, y, g = _setup()
    b, opt_b, *_ = _setup()
    with precision_override("fp32"):  # the bare loop is fp32; a bf16 session would autocast the harness's
        _bare(a, opt_a, x, y, g)
        _harness(b, opt_b, x, y, g)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=0, atol=1e-6), name
