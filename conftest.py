"""Root conftest: loads the claimbench plugin (options, markers, verdicts, report) for every test."""
import pytest

from harness.seeding import preserved_rng

pytest_plugins = ["harness.plugin"]


@pytest.fixture(autouse=True)
def _no_rng_leak():
    """Each test starts and ends with the same global RNG state (torchvision's prevent_leaking_rng)."""
    with preserved_rng():
        yield
