"""pytest-benchmark: modified-VGG training throughput (images/second) on the session's device.

Not a claim: it sizes the VGG family's budget. On CUDA the data lives on the GPU and training runs
under bf16 autocast with channels_last, as the full profile does; on the CPU the network is the cpu
profile's 1/8 width. ``extra_info`` carries images/s and the estimated full-profile cost of the family
(2 arms x 5 seeds x 10,000 CIFAR steps + 2 x 5 x 1,000 MNIST steps, batch 100).

    pytest benchmarks/test_speed.py --benchmark-only [--device cuda]
"""
from __future__ import annotations

import pytest
import torch

from fixtures.models import make_modified_vgg
from harness.device import prepare_model
from harness.seeding import seed_all
from harness.train import TrainConfig, train

STEPS, BATCH = 20, 100
FULL_PROFILE_IMAGES = (2 * 5 * 10_000 + 2 * 5 * 1_000) * BATCH  # the VGG family at the posts' scale


@pytest.mark.benchmark(group="vgg_throughput")
def test_vgg_training_throughput(benchmark, claimbench):
    device = claimbench.device
    width = 1.0 if device.type == "cuda" else 0.125
    gens = seed_all(0)
    model = prepare_model(make_modified_vgg(in_channels=3, width=width), device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(STEPS * BATCH + BATCH, 3, 32, 32, generator=gens.torch) * 255).to(device)
    y = torch.randint(0, 10, (x.shape[0],), generator=gens.torch).to(device)
    cfg = TrainConfig(steps=STEPS, batch_size=BATCH, order="contiguous", channels_last=True)

    def run():
        return train(model, opt, (x, y), None, cfg, generator=gens.torch, label="vgg throughput")

    res = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    per_s = STEPS * BATCH / benchmark.stats.stats.min if benchmark.stats else res.images_per_s
    benchmark.extra_info.update({"device": claimbench.device_name, "width": width, "images_per_s": per_s,
                                 "full_profile_estimate_s": FULL_PROFILE_IMAGES / per_s if width == 1.0 else None})
    assert res.diverged is None and res.steps == STEPS
