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


def test_an_empty_class_folder_or_a_loop_is_an_error_naming_it(tmp_path):
    root = _write(tmp_path)
    (root / "dog").mkdir()
    with pytest.raises(DataCorrupt, match=r"pets/dog: an empty class folder"):
        load_image_folder(root)
    (root / "dog").rmdir()
    (root / "loop").symlink_to(root, target_is_directory=True)
    with pytest.raises(DataCorrupt, match=r"pets/loop: a symlinked class folder that loops back"):
        load_image_folder(root)
    (root / "loop").unlink()
    (root / "again").symlink_to(root / "cat", target_is_directory=True)
    with pytest.raises(DataCorrupt, match="repeats another class"):
        load_image_folder(root)


def test_checksum_entries_with_a_leading_dot_slash_are_checked(tmp_path):
    root = _write(tmp_path)
    (tmp_path / "SHA256SUMS.folders").write_text(f"{'0' * 64}  ./pets/cat/a.jpg\n")
    with pytest.raises(DataCorrupt, match="a.jpg: sha256 does not match"):
        load_image_folder(root)


def _archive(tmp_path, files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for rel, data in files.items():
            z.writestr(f"ImageClassification-master/data/{rel}", data)
        z.writestr("ImageClassification-master/README.md", b"x")
    return buf.getvalue()


def _serve(monkeypatch, payload=None, error=None):
    import io
    import urllib.request

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def urlopen(url, timeout=None):
        assert timeout is not None  # never an unbounded wait
        if error is not None:
            raise error
        return Resp(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_the_posts_images_are_fetched_and_checked_against_the_shipped_sums(tmp_path, monkeypatch):
    import urllib.error

    from fixtures import folders

    rng = np.random.default_rng(1)
    imgs = {}
    for rel in ("paintings/impressionism/a.jpg", "paintings/modernism/b.jpg"):
        buf = __import__("io").BytesIO()
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, format="JPEG")
        imgs[rel] = buf.getvalue()
    sums = tmp_path / "folders.sha256"
    sums.write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {rel}\n" for rel, d in imgs.items()))
    monkeypatch.setattr(folders, "SHIPPED_SUMS", sums)
    data_dir = tmp_path / "data"
    _serve(monkeypatch, error=urllib.error.URLError("Name or service not known"))
    with pytest.raises(DataUnavailable, match="downloading .* failed: URLError"):
        folders.fetch_posts_folder("paintings", data_dir)
    tampered = dict(imgs, **{"paintings/modernism/b.jpg": b"\xff\xd8 replaced"})
    _serve(monkeypatch, payload=_archive(tmp_path, tampered))
    with pytest.raises(DataCorrupt, match="modernism/b.jpg differs from the checksum"):
        folders.fetch_posts_folder("paintings", data_dir)
    assert not (data_dir / "paintings").exists() and not list(data_dir.glob(".paintings-*"))  # nothing half-kept
    _serve(monkeypatch, payload=_archive(tmp_path, imgs))
    root = folders.fetch_posts_folder("paintings", data_dir)
    got = load_image_folder(root)
    assert got.classes == ["impressionism", "modernism"] and len(got) == 2


def test_the_project_ships_the_posts_checksums():
    from fixtures.folders import shipped_sums

    assert len(shipped_sums("paintings")) == 200 and len(shipped_sums("kittencat")) == 332
