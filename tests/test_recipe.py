"""The fastai v1 recipe in PyTorch: learning-rate slices, one-cycle, freezing, head, transforms, LR finder,
pretrained-weight loading (offline), and the counting dataset cache."""
import urllib.error

import numpy as np
import pytest
import torch

from fixtures import backbones as B
from harness import recipe as R
from fixtures import fastai as FA
from fixtures.circles import counting_dataset, crop_label_noise, place_circles_batch, sizes_for


def test_lr_range_follows_fastai_slices():
    assert R.lr_range(slice(3e-3)) == pytest.approx([3e-4, 3e-4, 3e-3])
    assert R.lr_range(slice(1e-4)) == pytest.approx([1e-5, 1e-5, 1e-4])
    assert R.lr_range(slice(1e-4, 1e-2)) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert R.lr_range(0.01) == [0.01] * 3


def test_one_cycle_shape_and_momentum():
    model = FA.create_cnn("resnet10", 3, width=0.125)
    opt = R.make_optimizer(model, R.lr_range(slice(1e-4, 1e-2)))
    assert [g["betas"][1] for g in opt.param_groups] == [0.99] * 3
    assert all(g["weight_decay"] == 1e-2 for g in opt.param_groups)
    sched = R.one_cycle(opt, 100)
    lrs, moms = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[2]["lr"])
        moms.append(opt.param_groups[2]["betas"][0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-2 / 25)
    assert max(lrs) == pytest.approx(1e-2, rel=1e-3) and int(np.argmax(lrs)) in (29, 30)
    assert lrs[-1] == pytest.approx(1e-2 / 25 / 1e4, rel=0.05)
    assert moms[0] == pytest.approx(0.95) and min(moms) == pytest.approx(0.85, rel=1e-3)


def test_freeze_keeps_head_and_batchnorm_trainable():
    model = FA.create_cnn("resnet10", 5, width=0.25)
    FA.freeze(model)
    body, head = model
    assert all(p.requires_grad for p in head.parameters())
    for m in body.modules():
        for p in m.parameters(recurse=False):
            assert p.requires_grad == isinstance(m, torch.nn.BatchNorm2d)
    FA.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_resnet34_head_is_fastais():
    model = FA.create_cnn("resnet34", 2)
    head = model[1]
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["AdaptiveConcatPool2d", "Flatten", "BatchNorm1d", "Dropout", "Linear", "ReLU",
                     "BatchNorm1d", "Dropout", "Linear"]
    assert head[4].in_features == 1024 and head[4].out_features == 512 and head[8].out_features == 2
    assert [d.p for d in head if isinstance(d, torch.nn.Dropout)] == [0.25, 0.5]
    groups = FA.layer_groups(model)
    assert len(groups) == 3 and groups[1] == [model[0].layer3, model[0].layer4]


def test_weights_file_roundtrip_and_errors(tmp_path, monkeypatch):
    from torchvision.models import resnet34

    ref = resnet34(weights=None)
    path = tmp_path / "r34.pth"
    torch.save(ref.state_dict(), path)
    # a randomly initialised ResNet-34 is not the ImageNet weights: refused, unless asked for and labelled
    with pytest.raises(B.WeightsUnavailable, match="not torchvision's ImageNet weights.*--user-weights"):
        B.resnet34_imagenet_state(path, allow_download=False)
    state, origin = B.resnet34_imagenet_state(path, allow_download=False, allow_user_weights=True)
    assert origin == B.USER_WEIGHTS_LABEL
    model = FA.create_cnn("resnet34", 2, pretrained_state=state)
    assert torch.equal(model[0].layer4[2].conv2.weight, ref.layer4[2].conv2.weight)
    assert not model[0].conv1.weight.requires_grad and model[1][8].weight.requires_grad  # created frozen
    # the published checksum decides: a file whose sha256 has the published prefix is the ImageNet one
    from fixtures.data import sha256_file

    monkeypatch.setattr(B, "IMAGENET_SHA256_PREFIX", sha256_file(path)[:8])
    assert B.resnet34_imagenet_state(path, allow_download=False)[1].startswith("ImageNet ResNet-34")
    monkeypatch.undo()
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(B.WeightsUnavailable, match="could not be read as a state dict") as e:
        B.resnet34_imagenet_state(tmp_path / "bad.pth", allow_download=False)
    assert "weights_only=False" not in str(e.value)  # never relays torch's advice to unpickle anything
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(B.WeightsUnavailable, match="not a ResNet-34"):
        B.resnet34_imagenet_state(tmp_path / "other.pth", allow_download=False)
    with pytest.raises(B.WeightsUnavailable, match="does not exist"):
        B.resnet34_imagenet_state(tmp_path / "missing.pth", allow_download=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(B.WeightsUnavailable, match="downloading is off"):
        B.resnet34_imagenet_state(None, allow_download=False)

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    import torchvision.models._api as tv_api  # where torchvision's weights download goes through

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)  # offline, even on a connected machine
    with pytest.raises(B.WeightsUnavailable, match="failed: URLError"):
        B.resnet34_imagenet_state(None, allow_download=True)
    cached = tmp_path / "hub" / "checkpoints" / "resnet34-b627a593.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), cached)  # not the real file: its checksum gives it away, naming the file
    with pytest.raises(B.WeightsUnavailable, match=r"resnet34-b627a593.pth are damaged .*delete the file"):
        B.resnet34_imagenet_state(None, allow_download=False)


def _bank(n=6, size=32):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 60), (64, 40), (32, 32)] * (n // 3)]
    return FA.ImageBank.from_arrays(imgs, size)


def test_image_bank_resizes_shorter_side_and_crops():
    bank = _bank()
    assert bank.hw[:3].tolist() == [[32, 48], [51, 32], [32, 32]]
    x = FA.Pipeline(bank, "center")(torch.arange(len(bank)))
    assert x.shape == (6, 3, 32, 32) and torch.isfinite(x).all()


@pytest.mark.parametrize("kind", ["default", "dihedral"])
def test_training_transforms_are_seeded(kind):
    bank = _bank()
    pipe = FA.Pipeline(bank, kind)
    a = pipe(torch.arange(6), torch.Generator().manual_seed(1))
    b = pipe(torch.arange(6), torch.Generator().manual_seed(1))
    c = pipe(torch.arange(6), torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (6, 3, 32, 32)


def test_crop_equals_fastais_window_per_image_in_channels_last():
    """The gather is crop_pad's window (rows int((h - s) * row_pct) on, columns likewise) of each image, on a
    canvas of images of several sizes, as float in [0, 1] laid out channels_last (as the pipeline has always
    handed batches on, so every later step sees the same tensor)."""
    bank = _bank()
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(bank), (40,), generator=g)
    row, col = torch.rand(40, generator=g), torch.rand(40, generator=g)
    s = bank.size
    want, offsets = [], set()
    for i, rp, cp in zip(idx.tolist(), row, col):
        h, w = bank.hw[i].tolist()
        r, c = int((h - s) * rp), int((w - s) * cp)
        want.append(bank.canvas[i, :, r:r + s, c:c + s].float() / 255)
        offsets.add((h, w, r, c))
    x = FA.crop_at(bank, idx, row, col)
    assert torch.equal(x, torch.stack(want)) and x.is_contiguous(memory_format=torch.channels_last)
    assert len(offsets) > 10 and {o[:2] for o in offsets} == {(32, 48), (51, 32), (32, 32)}


def test_lighting_is_fastais_brightness_and_contrast_and_keeps_its_input():
    """fastai's brightness (logit shift by logit(0.4..0.6), p 0.75) and contrast (logit scale 0.8..1.25, p 0.75)
    as its definition writes them, out of place, with the draws in the pipeline's order; the input is unchanged
    (the pipeline's in-place steps work on the clamp's copy)."""
    import math

    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 8, 8, generator=g).contiguous(memory_format=torch.channels_last)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0  # the clamp's ends
    before = x.clone()
    out = FA.Pipeline._lighting(x, torch.Generator().manual_seed(5))
    d = torch.Generator().manual_seed(5)
    change = torch.rand(40, generator=d) * 0.2 + 0.4
    change = torch.where(torch.rand(40, generator=d) < 0.75, change, torch.full((40,), 0.5))
    log_scale = torch.rand(40, generator=d) * (2 * math.log(1.25)) - math.log(1.25)
    scale = torch.where(torch.rand(40, generator=d) < 0.75, log_scale.exp(), torch.ones(40))
    logit = torch.logit(x.clamp(1e-6, 1 - 1e-6))
    want = torch.sigmoid((logit + torch.logit(change).view(40, 1, 1, 1)) * scale.view(40, 1, 1, 1))
    assert torch.equal(out, want) and torch.equal(x, before) and out.stride() == want.stride()
    assert (change != 0.5).sum() > 20 and (scale != 1).sum() > 20  # both drawn for most images


def test_dihedral_gives_the_eight_symmetries():
    x = torch.arange(16.).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    out = FA.dihedral(x, torch.arange(8))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8
    assert torch.equal(out[0], x[0])


def test_dihedral_gather_equals_the_flip_and_transpose_definition():
    """The gather is the same map as the definition (bit 0 flips x, bit 1 flips y, bit 2 transposes first),
    on a batch with every code several times and on channels_last input."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 9, 9, generator=g)
    k = torch.randint(0, 8, (40,), generator=g)
    want = []
    for img, code in zip(x, k.tolist()):
        v = img.transpose(-1, -2) if code & 4 else img
        v = v.flip(-1) if code & 1 else v
        want.append(v.flip(-2) if code & 2 else v)
    assert torch.equal(FA.dihedral(x, k), torch.stack(want))
    assert torch.equal(FA.dihedral(x.contiguous(memory_format=torch.channels_last), k), torch.stack(want))
    with pytest.raises(ValueError, match="square"):
        FA.dihedral(torch.zeros(2, 1, 4, 5), torch.zeros(2, dtype=torch.long))


def test_lr_find_restores_the_model_and_stops_on_divergence():
    bank = _bank(12)
    labels = torch.tensor([0, 1] * 6)
    torch.manual_seed(0)  # the model's init (the autouse fixture restores the global RNG afterwards)
    model = FA.create_cnn("resnet10", 2, width=0.125)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = R.lr_find(model, bank, torch.arange(12), labels, train_kind="dihedral",
                    generator=torch.Generator().manual_seed(0), bs=4, num_it=100)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert out["lr"][0] == pytest.approx(1e-7)
    assert out["stopped_early"] and len(out["lr"]) < 100  # random labels at lr up to 10: the loss blows up
    # recorder.plot() leaves out the first 10 and last 5 points, when there are more than 15
    assert out["plot_lr"] == (out["lr"][10:-5] if len(out["lr"]) > 15 else out["lr"])
    assert out["plot_loss"] == (out["smooth"][10:-5] if len(out["smooth"]) > 15 else out["smooth"])


def test_sweet_spot_reading():
    lrs = np.logspace(-7, 0, 80)
    loss = 1 - 0.5 * np.exp(-((np.log10(lrs) + 3) ** 2))  # lowest at 1e-3, falling from 1e-5 on
    sp = R.sweet_spot(lrs, loss)
    assert sp["argmin_lr"] == pytest.approx(1e-3, rel=0.3) and sp["falling_share"] > 0.9


def test_counting_dataset_is_deterministic_and_cached(tmp_path):
    a = counting_dataset((1, 2), 3, various=False, seed=5, size=24, cache_dir=str(tmp_path))
    files = list(tmp_path.glob("counting-*.npz"))
    assert len(files) == 1
    b = counting_dataset((1, 2), 3, various=False, seed=5, size=24, cache_dir=str(tmp_path))
    assert torch.equal(a[0].canvas, b[0].canvas) and a[0].canvas.shape == (6, 3, 24, 36)
    assert sorted(a[2].tolist()) == [1, 1, 1, 2, 2, 2] and a[1].tolist() == [c - 1 for c in a[2]]
    files[0].write_bytes(b"torn")  # a damaged cache file is rebuilt, not trusted
    c = counting_dataset((1, 2), 3, various=False, seed=5, size=24, cache_dir=str(tmp_path))
    assert torch.equal(a[0].canvas, c[0].canvas)


def test_random_crop_label_noise_matches_the_geometry():
    rng = np.random.default_rng(0)
    ns = np.repeat([45, 46, 47, 48, 49, 50], 150)
    centres = place_circles_batch(ns, rng)
    sizes = [sizes_for(int(n), rng, False) for n in ns]
    crop = crop_label_noise(centres, sizes, 224, torch.Generator().manual_seed(0), geometry=False)
    assert 0.20 <= crop["touched"] <= 0.29 and 0.03 <= crop["removed"] <= 0.08  # docs/claims.md: 24-25% and 5%
    full = crop_label_noise(centres, sizes, 224, torch.Generator().manual_seed(0), geometry=True)
    assert full["touched"] > crop["touched"]


@pytest.mark.parametrize("content", ["text", "tensor", "list"])
def test_a_weights_file_that_is_not_a_state_dict_is_refused_in_one_line(tmp_path, content):
    import torch

    from fixtures.backbones import WeightsUnavailable, resnet34_imagenet_state

    path = tmp_path / "weights.pth"
    if content == "text":
        path.write_text("this is not a checkpoint\n")
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(WeightsUnavailable) as e:
        resnet34_imagenet_state(path, allow_download=False)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
