"""The device-only code paths, run on a pretend CUDA device (tests/fake_cuda.py) on a machine without one.

A real GPU rejects what these catch: an op mixing host and device tensors (the activation probe once built its
quantiles on the host for device data), ``.numpy()`` on a device tensor, and host reads inside the training
loop (each one a wait for the device; the loop may read per evaluation, never per step).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fake_cuda import FakeCuda, fake_cuda

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _no_bar(monkeypatch):
    """The training bar reads the loss when it redraws (every 0.5 s, on a terminal): reads bounded by time,
    which tests/test_progress.py checks. Counted here they made the per-step counts depend on the machine's
    speed (flaky under load), so these counts are taken with the bar off."""
    monkeypatch.setenv("CLAIMBENCH_NO_PROGRESS", "1")


def test_the_double_fails_where_a_gpu_would():
    """The double itself can fail: mixing raises, .numpy() raises, host reads are counted, .cpu() copies."""
    with fake_cuda() as syncs:
        x = torch.randn(5, 3).to(CUDA)
        assert isinstance(x, FakeCuda) and x.device.type == "cuda" and x.is_cuda
        with pytest.raises(RuntimeError, match="same device"):
            torch.quantile(x.flatten(), torch.tensor([0.1, 0.9]))
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.ones(5, 3)
        assert (x + torch.tensor(2.0)).device.type == "cuda"  # a 0-dim host tensor is a scalar, as on CUDA
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        assert syncs == {}
        float(x.sum())
        (x > 0).nonzero()
        host = x.cpu()
        assert type(host) is torch.Tensor and host.device.type == "cpu"
        assert syncs["aten._local_scalar_dense.default"] == 1 and syncs["aten.nonzero.default"] == 1
        assert syncs["device->host copy"] == 1
        assert torch.zeros(2, device="cuda").device.type == "cuda"
    assert not torch.cuda.is_available() or torch.cuda.device_count() > 0  # patches undone


def _reads(syncs) -> int:
    return sum(syncs.values())


@pytest.mark.parametrize("model_name", ["convnet", "vgg"])
def test_training_loop_reads_the_host_per_evaluation_not_per_step(model_name):
    """train() on the pretend device: the same number of host reads for 10 and for 40 steps when both
    evaluate once, so nothing in the step waits on the device."""
    from fixtures.models import make_convnet4, make_modified_vgg
    from harness.train import TrainConfig, train

    def reads(steps):
        with fake_cuda() as syncs:
            torch.manual_seed(0)
            model = (make_convnet4(width=0.125) if model_name == "convnet"
                     else make_modified_vgg(1, 10, width=0.0625)).to(CUDA)
            x, y = torch.rand(300, 1, 28, 28).to(CUDA), torch.randint(0, 10, (300,)).to(CUDA)
            opt = torch.optim.Adam(model.parameters())
            res = train(model, opt, (x, y), (x[:50], y[:50]),
                        TrainConfig(steps=steps, batch_size=20, order="shuffle", eval_every=steps,
                                    channels_last=True),
                        generator=torch.Generator().manual_seed(0), label="fake")
            assert res.diverged is None and math.isfinite(res.final["valid_loss"])
            assert next(model.parameters()).device.type == "cuda"
            return _reads(syncs)

    assert reads(10) == reads(40)


@pytest.mark.parametrize("stacked", [False, True], ids=["run_by_run", "stacked"])
def test_convnet_claim_runner_on_the_device(stacked):
    """The ConvNet family's run (training, the posts' flawed evaluation on copies, the activation probe after
    training) completes on the device and gives finite metrics; it used to crash in the probe. Stacked: the
    seeds of the arm trained together (what --stack auto does on CUDA), each finished on its own."""
    from benchmarks import convnet
    from harness import memo
    from benchmarks.convnet import SCALE
    from harness.profiles import Budget

    class Data:
        name = "fake-cuda-digits"

        def tensors(self, part, device="cpu", n=None):
            g = torch.Generator().manual_seed(0 if part == "train" else 1)
            n = n or (600 if part == "train" else 200)
            return (torch.rand(n, 1, 28, 28, generator=g).to(device),
                    torch.randint(0, 10, (n,), generator=g).to(device))

    ctx = SimpleNamespace(budget=Budget(seeds=1, settings=SCALE["smoke"]), device=CUDA,
                          run=lambda arm, seed, fn, config=None, experiment=None: fn(),
                          stacking=lambda n: stacked,
                          run_group=lambda arm, seeds, many, one, config=None, experiment=None: list(
                              many(list(seeds)).values()))
    try:
        with fake_cuda():
            outs = convnet.trained_seeds(ctx, Data(), "he_xavier", 1e-3, "adam", [0, 1])
    finally:
        memo.clear()  # the pretend-CUDA tensors must not reach another test
    assert [o["execution"]["mode"] for o in outs] == ["stacked" if stacked else "run-by-run"] * 2
    out = outs[1]
    m = out["metrics"]
    assert not m["diverged"] and 0 <= m["test_acc"] <= 1 and math.isfinite(m["spread_ratio_after"])
    assert math.isfinite(m["buggy_test_acc"]) and math.isfinite(m["max_prob_after"])
    assert all(isinstance(v, (float, int, bool, type(None))) for v in m.values())  # nothing left on the device


@pytest.mark.parametrize("kind", ["default", "dihedral"])
def test_fastai_recipe_on_the_device(kind):
    """fit_stages with the LR finder, both training transforms and the centre-crop validation on the device:
    no host/device mixing; an epoch of fit_one_cycle reads the host as often with 8 steps as with 4."""
    from harness import recipe as R
    from fixtures import fastai as FA

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 60), (64, 40), (32, 32)] * 16]

    def run(n_train):
        with fake_cuda() as syncs:
            bank = FA.ImageBank.from_arrays(imgs, 32).to(CUDA)
            labels = torch.tensor([0, 1] * 24).to(CUDA)
            torch.manual_seed(0)
            model = FA.create_cnn("resnet10", 2, width=0.125).to(CUDA)
            train_idx, valid_idx = torch.arange(n_train).to(CUDA), torch.arange(40, 48).to(CUDA)
            syncs.clear()
            res = R.fit_one_cycle(model, bank, train_idx, valid_idx, labels, 1, train_kind=kind,
                                  generator=torch.Generator().manual_seed(0), bs=4)
            reads = dict(syncs)
            out = R.fit_stages(model, bank, train_idx, valid_idx, labels,
                               [("as_created", 1, 1e-3), ("unfrozen", 1, slice(1e-5, 1e-3))], train_kind=kind,
                               generator=torch.Generator().manual_seed(0), bs=4, lr_find_before=1,
                               lr_find_it=12)
            assert res.steps == n_train // 4 and len(out["stages"]) == 2
            return reads

    few, more = run(16), run(32)
    assert few == more and sum(few.values()) > 0
