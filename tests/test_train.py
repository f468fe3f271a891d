"""harness.train: learns a separable toy, records divergence cleanly, is bit-identical per seed on CPU."""
import math

import pytest
import torch
from torch import nn

from harness.seeding import deterministic, seed_all
from harness.train import TrainConfig, _batches, evaluate, train


def _toy(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def _fit(seed, lr=0.1, epochs=5, model=None):
    gens = seed_all(seed)
    model = model or nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    data = _toy()
    res = train(model, opt, data, _toy(256, 1), TrainConfig(epochs=epochs, batch_size=32),
                generator=gens.torch)
    return model, res


def test_learns_a_separable_toy_and_prints_the_posts_table():
    model, res = _fit(0)
    assert res.final["error_rate"] <= 0.03
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    assert set(res.history[0]) >= {"epoch", "train_loss", "valid_loss", "error_rate"}
    assert res.steps == 5 * (512 // 32) and res.diverged is None and res.wall_s > 0


def test_bit_identical_for_a_seed_on_cpu():
    with deterministic():
        m1, r1 = _fit(3)
        m2, r2 = _fit(3)
        m3, _ = _fit(4)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert r1.history == r2.history
    assert not all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m3.state_dict().values()))


def test_divergence_is_recorded_not_raised():
    _, res = _fit(0, lr=1e6, epochs=50)
    assert res.diverged is not None and res.diverged["step"] >= 1
    assert res.diverged["loss"] in ("nan", "inf", "-inf")
    assert math.isnan(res.final["train_loss"])
    assert res.steps == res.diverged["step"] < 50 * 16


def test_contiguous_order_is_the_tf_scripts_order():
    cfg = TrainConfig(steps=7, batch_size=100, order="contiguous")
    slices = [s for _e, s in _batches(550, cfg, torch.Generator())]
    assert [s.start for s in slices] == [0, 100, 200, 300, 400, 50, 150]  # (k*100) mod (550-100)


def test_shuffle_order_drops_last_and_reshuffles():
    cfg = TrainConfig(epochs=2, batch_size=3)
    batches = list(_batches(10, cfg, torch.Generator().manual_seed(0)))
    assert len(batches) == 6 and all(len(ix) == 3 for _e, ix in batches)
    first, second = torch.cat([ix for e, ix in batches if e == 0]), torch.cat([ix for e, ix in batches if e == 1])
    assert not torch.equal(first, second)


def test_config_validation():
    with pytest.raises(ValueError, match="exactly one"):
        TrainConfig()
    with pytest.raises(ValueError, match="order"):
        TrainConfig(steps=1, order="random")


def test_evaluate_does_not_change_the_model():
    model, _ = _fit(0, epochs=1)
    before = [p.clone() for p in model.parameters()]
    ev = evaluate(model, _toy(100, 5), batch_size=7)
    assert 0 <= ev["acc"] <= 1 and ev["loss"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_flop_counter_estimates_match_the_architectures():
    """FLOPs per training image from PyTorch's counter (forward + backward), not rules of thumb."""
    from harness.estimate import estimate, model_table

    table = dict(model_table())
    assert 0.40 < table["part 6 ConvNet, MNIST 28x28"] < 0.48
    assert 1.70 < table["modified VGG, CIFAR-10 32x32"] < 1.80
    assert 21.0 < table["ResNet-34 + fastai head, 224x224 (unfrozen)"] < 22.5  # not the 11 G of multiply-adds
    assert "PFLOP" in estimate(21.75e9, 2.3e6, "NVIDIA H200")


def test_a_depthwise_convolution_backward_costs_two_forwards():
    """PyTorch's counter counts a grouped convolution's weight gradient groups-fold (40x Lite0's forward at
    64 px); the suite's formula counts each gradient as one forward pass, exact for grouped and plain ones."""
    import torch.nn as nn

    from fixtures.fastai import create_cnn
    from harness.estimate import train_flops_per_image

    depthwise = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1, groups=64),
                              nn.Flatten(), nn.Linear(64 * 8 * 8, 2))
    conv = 2 * 9 * 64 * 64  # multiply-adds x 2 per image of the depthwise layer
    first = 2 * 27 * 64 * 64  # the first layer's input needs no gradient: forward + weight gradient only
    linear = 3 * 2 * 64 * 64 * 2
    assert train_flops_per_image(depthwise, (3, 8, 8)) == 3 * conv + 2 * first + linear
    assert 0.15e9 < train_flops_per_image(create_cnn("efficientnet_lite0", 5), (3, 64, 64)) < 0.25e9


def test_full_profile_estimates_per_family_on_the_detected_device():
    from harness.estimate import family_estimates

    lines = {line.split(":")[0]: line for line in family_estimates("NVIDIA H200", {"cifar", "counting"})}
    assert sorted(lines) == ["cifar", "counting"]
    assert lines["cifar"].startswith("cifar: 17.5") and "min on NVIDIA H200" in lines["cifar"]
    assert lines["counting"].startswith("counting: 32") and " h on NVIDIA H200" not in lines["counting"]  # minutes
    from harness.claims import FAMILY

    for fam, line in lines.items():  # the figure each family's page quotes is the one the counter gives
        assert f"{FAMILY[fam].full_pflop:.2f} PFLOP" in line, (fam, line)
    cpu = family_estimates("CPU (AMD EPYC, 2 threads)", {"cifar"})[0]
    assert "days on CPU" in cpu


@pytest.mark.parametrize("mode", ["fp32", "bf16"])
def test_every_pass_of_a_run_uses_the_sessions_precision_and_layout(mode):
    """Training, evaluation, the LR finder and the posts' flawed evaluation all run the convolutions at the
    session's precision and in channels_last, fp32 included (before, the LR finder and the flawed evaluation
    ran fp32 NCHW inside bf16 runs, and fp32 sessions trained NCHW on the CPU)."""
    from fixtures.models import make_convnet4
    from harness import recipe as R
    from fixtures import fastai as FA
    from harness.device import precision_override
    from harness.train import evaluate_while_training

    seen = []

    def hook(mod, inp, out):
        seen.append((out.dtype, inp[0].is_contiguous(memory_format=torch.channels_last)))

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g)
    want = (torch.bfloat16, True) if mode == "bf16" else (torch.float32, True)
    with precision_override(mode):
        model = make_convnet4(width=0.125)
        model.convs()[1].register_forward_hook(hook)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        train(model, opt, (x, y), (x, y), TrainConfig(steps=2, batch_size=20), generator=g)
        assert model.convs()[1].weight.is_contiguous(memory_format=torch.channels_last) == want[1]
        evaluate(model, (x, y))
        evaluate_while_training(model, opt, (x, y), batch_size=20)
        passes = {"train + evaluate + flawed evaluation": list(seen)}
        seen.clear()
        bank = FA.ImageBank.from_arrays(torch.randint(0, 255, (40, 40, 40, 3), dtype=torch.uint8).numpy(), 32)
        net = FA.create_cnn("resnet10", 2, width=0.125)
        net[0][4][0].conv1.register_forward_hook(hook)
        R.lr_find(net, bank, torch.arange(40), torch.randint(0, 2, (40,)), train_kind="dihedral",
                  generator=g, bs=8, num_it=3)
        passes["lr_find"] = list(seen)
    for name, got in passes.items():
        assert got and set(got) == {want}, (name, set(got))
