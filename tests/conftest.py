"""Unit-test fixtures: the pytest sessions some tests start as subprocesses must not inherit pytest-xdist's
worker variables (under ``pytest tests -n 2`` they made pytest-benchmark in the child believe it ran under
xdist, and its warning, an error here, failed the child)."""
import os

import pytest


@pytest.fixture(autouse=True)
def _no_xdist_env_for_children(monkeypatch):
    for name in [k for k in os.environ if k.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
    yield
