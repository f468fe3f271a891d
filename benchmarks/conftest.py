"""Session-scoped dataset and weights access for the claim modules: thin wrappers around ``fixtures.data``
and ``fixtures.backbones``."""
from __future__ import annotations

import dataclasses

import pytest

from fixtures.backbones import (BACKBONES, USER_WEIGHTS_LABEL, BackboneUnavailable, WeightsUnavailable,
                                resnet34_imagenet_state)
from harness.memo import session_cached
from fixtures.data import (CIFARData, DataCorrupt, DataUnavailable, MNISTData, load_cifar10, load_fashion_mnist,
                           load_mnist)


class Datasets:
    """Loads each dataset once per session; a missing or damaged one is remembered as its error."""

    def __init__(self, claimbench):
        self.bench = claimbench
        self._cache: dict[str, MNISTData | CIFARData | DataUnavailable | DataCorrupt] = {}

    def get(self, name: str) -> MNISTData | CIFARData:
        if name not in self._cache:
            try:
                if name == "mnist":
                    self._cache[name] = load_mnist(self.bench.data_dir, self.bench.allow_download)
                elif name == "cifar10":
                    self._cache[name] = load_cifar10(self.bench.data_dir, self.bench.allow_download)
                elif name == "fashion-mnist":
                    self._cache[name] = load_fashion_mnist(self.bench.data_dir)
                else:
                    raise ValueError(f"unknown dataset {name!r}")
            except (DataUnavailable, DataCorrupt) as e:
                self._cache[name] = e
        got = self._cache[name]
        if isinstance(got, Exception):
            raise got
        return got


    def require(self, ctx, name: str) -> MNISTData | CIFARData:
        """The dataset, or the claim ends as "not run (data)" naming every path looked at; a damaged file also
        fails the test (one line naming the file), as a damaged image folder does."""
        try:
            return self.get(name)
        except DataUnavailable as e:
            ctx.not_run("data", str(e))
        except DataCorrupt as e:
            ctx.not_run("data", f"damaged: {e}", user_error=True)


@pytest.fixture(scope="session")
def datasets(claimbench) -> Datasets:
    return Datasets(claimbench)


class Weights:
    """ImageNet weights for the fastai claims (the posts' ResNet-34, or the backbone a profile's analogue
    names), looked up once per session."""

    def __init__(self, claimbench):
        self.bench = claimbench
        self._got: dict | WeightsUnavailable | None = None
        self.origin = ""  # where the weights came from; USER_WEIGHTS_LABEL for weights that are not the posts'

    def get(self) -> dict | None:
        """The state dict, or None when unavailable (the reason is kept for :meth:`require`)."""
        if self._got is None:
            try:
                self._got, self.origin = resnet34_imagenet_state(self.bench.weights_file, self.bench.allow_download,
                                                                 self.bench.user_weights)
            except WeightsUnavailable as e:
                self._got = e
        return None if isinstance(self._got, WeightsUnavailable) else self._got

    def require(self, ctx) -> dict:
        """The state dict, or the claim ends as "not run (weights)" saying what was tried."""
        state = self.get()
        if state is None:  # a file the user named that is not usable is their mistake: the test fails, one line
            ctx.not_run("weights", str(self._got), user_error=bool(self.bench.weights_file))
        if self.origin == USER_WEIGHTS_LABEL:
            ctx.label = USER_WEIGHTS_LABEL  # every verdict decided on them says so
        return state

    def imagenet(self, ctx) -> tuple[dict, str]:
        """The ImageNet state dict of the budget's backbone and where it came from: the posts' ResNet-34
        through :meth:`require` (--weights, torch hub's cache, a download), any other backbone from its entry in
        ``fixtures.backbones`` (checked by its checksum, read once per session); else the claim is not run
        (weights), saying why. At the smoke profile a --weights file switches the budget to the posts'
        ResNet-34, so the full profile's path runs end to end at toy size on the file."""
        arch = ctx.budget.settings.arch
        if arch != "resnet34" and self.bench.weights_file:
            if ctx.profile != "smoke":
                ctx.announce(f"--weights is the posts' ResNet-34 (the full profile's backbone); this profile's is "
                             f"{arch}, so the file is not used here")
            else:
                ctx.budget = dataclasses.replace(
                    ctx.budget, settings=dataclasses.replace(ctx.budget.settings, arch="resnet34", width=1.0),
                    deviation=f"{ctx.budget.deviation}; the posts' ResNet-34 on the --weights file instead of {arch}")
                ctx.announce(f"--weights given at smoke: the posts' ResNet-34 runs instead of {arch}")
                arch = "resnet34"
        if arch == "resnet34":
            return self.require(ctx), "ImageNet IMAGENET1K_V1"

        def load():
            try:
                return BACKBONES[arch].weights()
            except BackboneUnavailable as e:
                return e
        got = session_cached(("imagenet-weights", arch), load)
        if isinstance(got, BackboneUnavailable):
            ctx.not_run("weights", f"ImageNet {arch} weights unavailable: {got}")
        return got, BACKBONES[arch].source


@pytest.fixture(scope="session")
def weights(claimbench) -> Weights:
    return Weights(claimbench)
