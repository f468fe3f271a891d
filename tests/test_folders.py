"""The folder-dataset loader: fastai's extension rule, RGBA to RGB, corrupt images warned and skipped,
missing or empty folders and checksum mismatches as clear errors."""
import hashlib

import numpy as np
import pytest
from PIL import Image

from fixtures.data import DataCorrupt, DataUnavailable
from fixtures.folders import UnreadableImage, load_image_folder


def _write(tmp_path):
    root = tmp_path / "pets"
    (root / "cat").mkdir(parents=True)
    (root / "kitten").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / "cat" / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (25, 25, 3), dtype=np.uint8)).save(root / "cat" / "b.JPG", format="JPEG")
    Image.fromarray(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8), "RGBA").save(root / "kitten" / "c.png")
    (root / "kitten" / "d.img").write_bytes(b"\x00" * 100)  # not an image type: skipped by the extension rule
    (root / "kitten" / "e.jpeg").write_bytes(b"\xff\xd8 this is not a jpeg")  # corrupt
    return root


def test_loader_reads_images_skips_others_and_warns_on_corrupt(tmp_path):
    root = _write(tmp_path)
    with pytest.warns(UnreadableImage, match="e.jpeg"):
        data = load_image_folder(root)
    assert data.classes == ["cat", "kitten"]
    assert data.counts() == {"cat": 2, "kitten": 1}
    assert all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in data.images)
    reasons = dict(data.skipped)
    assert "not an image type" in reasons["kitten/d.img"]
    assert "unreadable" in reasons["kitten/e.jpeg"]


def test_missing_and_empty_folders_are_data_unavailable(tmp_path):
    with pytest.raises(DataUnavailable, match="does not exist") as e:
        load_image_folder(tmp_path / "nope")
    assert e.value.looked_at == [tmp_path / "nope"]
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataUnavailable, match="no class sub-folders with images"):
        load_image_folder(tmp_path / "empty")


def test_checksum_mismatch_is_data_corrupt(tmp_path):
    root = _write(tmp_path)
    good = hashlib.sha256((root / "cat" / "a.jpg").read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS.folders").write_text(f"{good}  pets/cat/a.jpg\n{'0' * 64}  pets/cat/b.JPG\n")
    with pytest.raises(DataCorrupt, match="b.JPG"):
        load_image_folder(root)


def test_the_posts_kittencat_folder_uses_330_images():
    import os
    from pathlib import Path

    root = Path(os.environ.get("CLAIMBENCH_DATA_DIR", "../shared/datasets")) / "kittencat"
    if not root.is_dir():
        pytest.skip(f"the posts' kittencat images are not at {root} (set CLAIMBENCH_DATA_DIR)")
    data = load_image_folder(root)  # verified against SHA256SUMS.folders beside it
    assert data.counts() == {"cat": 161, "kitten": 169} and len(data.skipped) == 2
