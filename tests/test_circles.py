"""The circle generator: faithful geometry, exact counts, and the fast renderer agreeing with matplotlib."""
import numpy as np
import pytest

from fixtures import circles as C


def test_placement_respects_min_distance_and_seed():
    a = C.place_circles(50, np.random.default_rng(7))
    b = C.place_circles(50, np.random.default_rng(7))
    assert np.array_equal(a, b) and a.shape == (50, 2) and np.all(np.abs(a) <= 1)
    d = np.hypot(*(a[:, None, :] - a[None, :, :]).transpose(2, 0, 1))
    assert d[np.triu_indices(50, 1)].min() > C.MIN_DIST


def test_sizes():
    rng = np.random.default_rng(0)
    assert np.all(C.sizes_for(5, rng, False) == 200.0)
    v = C.sizes_for(1000, rng, True)
    assert v.min() >= 25 and v.max() <= 250


@pytest.mark.parametrize("n", [1, 3, 5, 45, 50])
def test_reference_images_hold_exactly_n_circles(n):
    rng = np.random.default_rng(n)
    img = C.render_reference(C.place_circles(n, rng), C.sizes_for(n, rng, False))
    assert img.shape == (288, 432, 3) and img.dtype == np.uint8
    assert C.count_blobs(img) == n  # equal circles never touch: one blob each, none blank
    assert ((img.min(-1) < 200) & ~C.blue_mask(img)).sum() > 1000  # frame, ticks and labels are drawn


@pytest.mark.parametrize("n,various", [(1, False), (2, False), (5, False), (45, False), (50, False),
                                       (45, True), (49, True)])
def test_fast_renderer_matches_the_reference(n, various):
    rng = np.random.default_rng(100 + n)
    centres, sizes = C.place_circles(n, rng), C.sizes_for(n, rng, various)
    ref = C.render_reference(centres, sizes)
    fast = C.render_fast([centres], [sizes])[0]
    a, b = C.blue_mask(ref), C.blue_mask(fast)
    assert (a & b).sum() / (a | b).sum() >= 0.98
    assert C.count_blobs(fast) == C.count_blobs(ref)


def test_fast_renderer_batches():
    rng = np.random.default_rng(0)
    cs = [C.place_circles(n, rng) for n in (1, 4)]
    out = C.render_fast(cs, [C.sizes_for(len(c), rng, False) for c in cs])
    assert out.shape == (2, 288, 432, 3) and [C.count_blobs(i) for i in out] == [1, 4]
