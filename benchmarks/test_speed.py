"""pytest-benchmark: training throughput on the session's device -- the modified VGG's images/second, seeds
stacked vs one by one (ConvNet and VGG), and one training step at each precision / memory layout.

Not a claim: it sizes the VGG family's budget. On CUDA the data lives on the GPU and training runs
under bf16 autocast with channels_last, as the full profile does; on the CPU the network is the cpu
profile's 1/8 width. ``extra_info`` carries images/s and the estimated full-profile cost of the family
(2 arms x 5 seeds x 10,000 CIFAR steps + 2 x 5 x 1,000 MNIST steps, batch 100).

    pytest benchmarks/test_speed.py --benchmark-only [--device cuda]
"""
from __future__ import annotations

import contextlib

import pytest
import torch

from fixtures.models import make_modified_vgg
from fixtures import fastai as FA
from harness.device import prepare_model, synchronize
from harness.seeding import seed_all
from harness.train import TrainConfig, train

pytestmark = pytest.mark.slow  # minutes of measurement on 2 cores; select with -m slow or by file

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


def _circle_batch(various: bool, n_images: int = 64):
    import numpy as np

    from fixtures.circles import place_circles_batch, sizes_for

    rng = np.random.default_rng(0)
    ns = rng.integers(45, 50, n_images)  # Part II's counts
    return place_circles_batch(ns, rng), [sizes_for(int(n), rng, various) for n in ns]


@pytest.mark.benchmark(group="circle_renderer")
def test_circle_renderer_reference(benchmark):
    """The matplotlib reference, one 432x288 image (as the notebooks drew them)."""
    from fixtures.circles import render_reference

    centres, sizes = _circle_batch(False, 1)
    img = benchmark.pedantic(render_reference, args=(centres[0], sizes[0]), rounds=5, iterations=1)
    assert img.shape == (288, 432, 3)


@pytest.mark.benchmark(group="circle_renderer")
@pytest.mark.parametrize("various", [False, True], ids=["equal", "various_sizes"])
def test_circle_renderer_fast(benchmark, claimbench, various):
    """The batch renderer, 64 images per call; target: >= 100x the reference per image on the CPU.

    ``extra_info['ms_per_image']`` is comparable with the reference's mean time per call."""
    from fixtures.circles import render_fast

    centres, sizes = _circle_batch(various)
    render_fast(centres[:1], sizes[:1], device=claimbench.device)  # caches the axes background
    out = benchmark.pedantic(render_fast, args=(centres, sizes), kwargs={"device": claimbench.device},
                             rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats:
        benchmark.extra_info["ms_per_image"] = 1e3 * benchmark.stats.stats.min / len(centres)
    assert out.shape == (64, 288, 432, 3)


def test_circle_renderer_speedup_target(claimbench):
    """The fast renderer must be at least 100x the matplotlib reference per image (best of 3 timings)."""
    from fixtures.circles import renderer_speed

    if not claimbench.profile.gives_verdicts:  # the smoke profile
        pytest.skip("a speed target, measured at the cpu / full profiles (smoke runs in busy CI)")
    speed = renderer_speed()
    ratios = {k: speed["reference_ms"] / speed[k] for k in ("fast_ms", "fast_various_ms")}
    assert min(ratios.values()) >= 100, f"fast renderer speed-up {ratios} (target >= 100x)"


def _bench_model(name: str, device: torch.device):
    """(model factory, input shape) of the suite's networks at the width the session's device trains them."""
    from fixtures.models import init_convnet4, make_convnet4

    full = device.type == "cuda"
    if name == "convnet":
        return (lambda s: init_convnet4(make_convnet4(width=1.0 if full else 0.25), "he_xavier",
                                        torch.Generator().manual_seed(s)), (1, 28, 28))
    if name == "vgg":
        def vgg(s):
            torch.manual_seed(s)
            return make_modified_vgg(in_channels=3, width=1.0 if full else 0.125)
        return vgg, (3, 32, 32)
    raise ValueError(name)


@pytest.mark.benchmark(group="stacked_seeds")
@pytest.mark.parametrize("mode", ["run_by_run", "stacked"])
@pytest.mark.parametrize("model", ["convnet", "vgg"])
def test_stacked_vs_run_by_run(benchmark, mode, model, claimbench):
    """Training images/s of 4 seeds (batch 100, Adam, evaluation at the end), one after another with
    harness.train, or stacked with harness.stacked.train_stacked_runs (what the runners call under --stack): the
    part 6 ConvNet and the modified VGG, at the session's precision. On the CPU stacking is compute-bound; it
    is meant for GPUs."""
    from harness.stacked import train_stacked_runs

    device = claimbench.device
    make, shape = _bench_model(model, device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1100, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (1100,), generator=g).to(device)
    valid = (x[:200], y[:200])
    steps, seeds = 10, 4
    cfg = TrainConfig(steps=steps, batch_size=100, order="contiguous")

    def models():
        return [prepare_model(make(s), device) for s in range(seeds)]

    def run_by_run():
        for m in models():
            train(m, torch.optim.Adam(m.parameters()), (x, y), valid, cfg, generator=g, label="run-by-run")

    def stacked():
        train_stacked_runs(models(), lambda p: torch.optim.Adam(p), (x, y), valid, cfg, label="stacked")

    benchmark.pedantic(run_by_run if mode == "run_by_run" else stacked, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["images_per_round"] = steps * seeds * 100


@pytest.mark.benchmark(group="training_step_precision")
@pytest.mark.parametrize("mode", ["fp32", "channels_last", "bf16", "bf16+channels_last"])
@pytest.mark.parametrize("model", ["convnet", "vgg", "resnet10", "efficientnet_lite0"])
def test_training_step_by_precision_and_layout(benchmark, mode, model, claimbench):
    """One training step (Adam) of the cpu profile's networks at the four precision / memory-layout
    combinations (the ConvNet at 1/4 width and the VGG at 1/8, batch 100; counting's quarter-width ResNet-10 at
    96 px, batch 64; ImageNet EfficientNet-Lite0 in fastai's recipe, unfrozen, at 64 px, batch 64, the size
    its transfer and counting analogues run at); full width on CUDA. Compare rows within the group: what
    ``--precision auto`` chooses between (bf16 here means autocast, as the runs use it)."""
    device = claimbench.device
    if model == "resnet10":
        net, shape, bs = FA.create_cnn("resnet10", 5, width=1.0 if device.type == "cuda" else 0.25), (3, 96, 96), 64
    elif model == "efficientnet_lite0":  # random weights: a step costs the same with the ImageNet ones
        net, shape, bs = FA.create_cnn("efficientnet_lite0", 5), (3, 64, 64), 64
        net.requires_grad_(True)
    else:
        make, shape = _bench_model(model, device)
        net, bs = make(0), 100
    net = net.to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(bs, *shape, generator=g).to(device)
    y = torch.randint(0, 5, (bs,), generator=g).to(device)
    if "channels_last" in mode:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters())
    bf16 = mode.startswith("bf16")

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = net(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)

    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=2)
    benchmark.extra_info["images_per_step"] = bs


@pytest.mark.benchmark(group="counting_batch")
@pytest.mark.parametrize("kind", ["center", "dihedral", "default"])
def test_counting_batch_pipeline(benchmark, kind, claimbench):
    """One batch of the counting runs' input pipeline (window crop, augmentation, normalisation) at the cpu
    profile's ResNet-10 size: 64 images of 96x144 px cropped to 96x96, from a bank of 4,000 (Part II's
    per-seed dataset). Compare with the ResNet-10 rows of ``training_step_precision`` (docs/guide.md, *Speed*,
    has both measured before and after the crop became one gather)."""
    device = claimbench.device
    g = torch.Generator().manual_seed(0)
    canvas = torch.randint(0, 256, (4000, 3, 96, 144), dtype=torch.uint8, generator=g)
    bank = FA.ImageBank(canvas, torch.tensor([[96, 144]] * 4000), 96).to(device)
    pipe = FA.Pipeline(bank, kind)
    idx = torch.randint(0, 4000, (64,), generator=g).to(device)

    def batch():
        out = pipe(idx, g)
        synchronize(device)
        return out

    out = benchmark.pedantic(batch, rounds=20, iterations=1, warmup_rounds=2)
    assert out.shape == (64, 3, 96, 96) and torch.isfinite(out).all()
    benchmark.extra_info["images_per_batch"] = 64
