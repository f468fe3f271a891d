"""Stacked training (seeds of an arm trained together with torch.func) equals run-by-run training."""
import pytest
import torch
import torch.nn.functional as F

from fixtures.models import init_convnet4, make_convnet4
from harness.stacked import train_stacked


def _models(seeds, dtype):
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        out.append(init_convnet4(make_convnet4(width=0.125), "he_xavier", g).to(dtype))
    return out


def _run_by_run(models, make_opt, x, y, steps, bs):
    n = x.shape[0]
    for model in models:
        opt = make_opt(list(model.parameters()))
        for k in range(steps):
            start = (k * bs) % max(1, n - bs)
            loss = F.cross_entropy(model(x[start:start + bs]), y[start:start + bs])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                                      lambda p: torch.optim.Adam(p, lr=1e-3)], ids=["momentum", "adam"])
def test_stacked_equals_run_by_run_in_float64(make_opt):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (640,), generator=g)
    seeds = (0, 1, 2)
    a, b = _models(seeds, torch.float64), _models(seeds, torch.float64)
    _run_by_run(a, make_opt, x, y, steps=200, bs=32)
    res = train_stacked(b, make_opt, x, y, steps=200, batch_size=32)
    assert res.diverged_at == [None, None, None]
    worst = max(float((pa - pb).detach().abs().max()) for ma, mb in zip(a, b)
                for pa, pb in zip(ma.parameters(), mb.parameters()))
    assert worst < 1e-10, worst


def test_a_diverging_model_is_masked_and_reported():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    models = _models((0, 1), torch.float32)
    with torch.no_grad():
        models[1].fc.weight.fill_(float("inf"))  # this one is broken from the first step
    before = [p.detach().clone() for p in models[0].parameters()]
    res = train_stacked(models, lambda p: torch.optim.SGD(p, lr=0.01), x, y, steps=20, batch_size=32)
    assert res.diverged_at == [None, 0]
    assert any(not torch.equal(p, q) for p, q in zip(models[0].parameters(), before))  # the healthy one trained


def test_stacked_steps_never_wait_for_the_device():
    """On the pretend CUDA device: the host reads of stacked training do not grow with the steps."""
    from fake_cuda import fake_cuda

    def reads(steps):
        with fake_cuda() as syncs:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(200, 1, 28, 28, generator=g).to("cuda")
            y = torch.randint(0, 10, (200,), generator=g).to("cuda")
            models = [m.to("cuda") for m in _models((0, 1), torch.float32)]
            res = train_stacked(models, lambda p: torch.optim.Adam(p, lr=1e-3), x, y, steps=steps, batch_size=20)
            assert res.diverged_at == [None, None] and res.losses.shape == (steps, 2)
            return dict(syncs)

    assert reads(5) == reads(20)
