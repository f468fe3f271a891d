"""Session-scoped dataset access for the claim modules: thin wrappers around ``fixtures.data``."""
from __future__ import annotations

import pytest

from fixtures.backbones import USER_WEIGHTS_LABEL, WeightsUnavailable, resnet34_imagenet_state
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
    """ImageNet ResNet-34 weights for the fastai claims, looked up once per session."""

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


@pytest.fixture(scope="session")
def weights(claimbench) -> Weights:
    return Weights(claimbench)
