"""Fixtures: the posts' models have the posts' sizes; the Beale trajectories match docs/claims.md D4."""
import math

import numpy as np
import pytest
import torch

from fixtures.models import (count_weights, layer_table, make_convnet4, make_modified_vgg, make_vgg16,
                             tf_he_truncated_)
from fixtures.surfaces import beale, trajectory


def test_model_sizes_match_claims_md():
    assert count_weights(make_convnet4()) == (321_344, 394)
    assert count_weights(make_modified_vgg(1)) == (16_060_992, 6_794)
    assert count_weights(make_modified_vgg(3)) == (16_062_144, 6_794)
    with torch.device("meta"):
        assert sum(count_weights(make_vgg16())) == 138_357_544


def test_modified_vgg_pads_mnist_to_32():
    m = make_modified_vgg(1, width=0.125)
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    rows = layer_table(make_modified_vgg(1), (1, 28, 28))
    assert rows[0]["shape"] == (32, 32, 64) and rows[-1]["shape"] == (1, 1, 10)


def test_tf_he_init_statistics():
    torch.manual_seed(0)
    w = torch.empty(256, 128, 3, 3)
    tf_he_truncated_(w)
    fan_in = 128 * 9
    sigma = math.sqrt(2.6 / fan_in)
    assert w.abs().max() <= 2 * sigma + 1e-6
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)  # about He's sqrt(2/fan_in)


@pytest.mark.parametrize("opt,steps,end,f", [
    ("sgd", 100, (2.176, 0.207), 0.298), ("sgd", 120, (2.257, 0.244), 0.220),
    ("momentum", 100, (3.291, 0.566), 0.0101), ("momentum", 120, (3.234, 0.554), 0.0069),
    ("adam", 100, (2.511, 0.335), 0.073), ("adam", 120, (2.612, 0.385), 0.038)])
def test_beale_trajectories_match_claims_md(opt, steps, end, f):
    path = trajectory(opt, (1.0, 1.5), steps)
    assert path.shape == (steps + 1, 2)
    assert path[-1] == pytest.approx(np.array(end), abs=2e-3)
    assert beale(*path[-1]) == pytest.approx(f, rel=0.02, abs=5e-4)


def test_beale_minimum_and_stationary_start():
    assert beale(3.0, 0.5) == 0.0
    assert np.allclose(trajectory("sgd", (0.0, 1.0), 10)[-1], (0.0, 1.0))  # (0, 1) is stationary
    with pytest.raises(ValueError, match="unknown optimizer"):
        trajectory("lbfgs")


def test_convnet_inits_follow_the_posts():
    from fixtures.activations import activation_report, he_variance_ratio
    from fixtures.models import init_convnet4

    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 28, 28, generator=g)
    large = init_convnet4(make_convnet4(), "large", g)
    assert large.conv2.weight.std().item() == pytest.approx(1.0, rel=0.02) and large.fc.bias.abs().sum() == 0
    assert activation_report(large, x)["spread_ratio_4_1"] > 1e3
    small = init_convnet4(make_convnet4(), "small_conv", g)
    assert small.conv2.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert small.fc.weight.std().item() == pytest.approx(1.0, rel=0.05)  # the code left the FC unscaled
    small_all = init_convnet4(make_convnet4(), "small_all", g)
    assert small_all.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    he = init_convnet4(make_convnet4(), "he_xavier", g)
    assert he_variance_ratio(he.conv3) == pytest.approx(1.0, rel=0.1)  # He keeps the variance
    assert 0.1 < activation_report(he, x)["spread_ratio_4_1"] < 10
    assert he.fc.weight.abs().max() <= math.sqrt(6 / (6272 + 10))
    with pytest.raises(ValueError, match="unknown init"):
        init_convnet4(make_convnet4(), "orthogonal")


def test_evaluate_while_training_trains_a_copy_on_the_test_batches():
    from harness.train import evaluate, evaluate_while_training

    torch.manual_seed(0)
    m = make_convnet4(width=0.125)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x, y = torch.rand(2000, 1, 28, 28), torch.randint(0, 10, (2000,))
    x[y % 2 == 0] += 1.0  # a learnable signal, so training on the test batches changes the score
    before = [p.clone() for p in m.parameters()]
    state = {k: v for k, v in opt.state_dict().items()}
    buggy = evaluate_while_training(m, opt, (x, y))
    clean = evaluate(m, (x, y))
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # the real model is untouched
    assert opt.state_dict()["state"] == state["state"]
    assert buggy["acc"] != clean["acc"]  # the copy did learn from the test batches
