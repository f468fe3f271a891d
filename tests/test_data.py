"""MNIST / Fashion-MNIST loaders on small files the tests write themselves (npz, IDX, gzip, corrupt)."""
import gzip
import hashlib
import struct

import numpy as np
import pytest

from fixtures import data as D


def _fake(n_train=60000, n_test=10000, seed=0):
    """Arrays with MNIST's exact label counts (so the count check passes) and random pixels."""
    rng = np.random.default_rng(seed)
    y_train = np.repeat(np.arange(10, dtype=np.uint8), D.MNIST_TRAIN_COUNTS)
    y_test = np.repeat(np.arange(10, dtype=np.uint8), D.MNIST_TEST_COUNTS)
    rng.shuffle(y_train)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), "y_train": y_train,
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), "y_test": y_test}


def _idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def _write_idx(raw, arrays, gz=False):
    raw.mkdir(parents=True)
    md5 = {}
    for key, stem in D.IDX_NAMES.items():
        b = _idx_bytes(arrays[key])
        md5[stem] = hashlib.md5(b).hexdigest()
        if gz:
            with gzip.open(raw / (stem + ".gz"), "wb") as f:
                f.write(b)
        else:
            (raw / stem).write_bytes(b)
    return md5


def test_npz_and_posts_split(tmp_path):
    arrays = _fake()
    (tmp_path / "mnist").mkdir()
    np.savez_compressed(tmp_path / "mnist" / "mnist.npz", **arrays)
    d = D.load_mnist(tmp_path)
    split = d.split()
    assert split["train"][0].shape == (55000, 28, 28) and split["valid"][0].shape == (5000, 28, 28)
    assert np.array_equal(split["train"][0][0], arrays["x_train"][5000])  # train starts at image 5,000
    assert np.array_equal(split["test"][1], arrays["y_test"])


@pytest.mark.parametrize("gz", [False, True])
def test_torchvision_raw_idx_layout(tmp_path, monkeypatch, gz):
    arrays = _fake()
    md5 = _write_idx(tmp_path / "MNIST" / "raw", arrays, gz=gz)
    monkeypatch.setattr(D, "MNIST_IDX_MD5", md5)  # our fake files stand in for the official ones
    d = D.load_mnist(tmp_path)
    assert np.array_equal(d.x_test, arrays["x_test"]) and d.x_train.flags.writeable


def test_idx_md5_mismatch_names_the_file(tmp_path):
    _write_idx(tmp_path / "MNIST" / "raw", _fake())
    with pytest.raises(D.DataCorrupt, match="train-images-idx3-ubyte: MD5"):
        D.load_mnist(tmp_path)


def test_truncated_idx_names_the_file(tmp_path, monkeypatch):
    arrays = _fake()
    raw = tmp_path / "MNIST" / "raw"
    monkeypatch.setattr(D, "MNIST_IDX_MD5", _write_idx(raw, arrays))
    f = raw / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(D.DataCorrupt, match=r"t10k-images-idx3-ubyte: \d+ bytes, expected"):
        D.load_mnist(tmp_path)
    f.write_bytes(b"garbage!" * 10)
    with pytest.raises(D.DataCorrupt, match="bad magic"):
        D.load_mnist(tmp_path)


def test_corrupt_npz_and_sha256sums(tmp_path):
    (tmp_path / "mnist").mkdir()
    npz = tmp_path / "mnist" / "mnist.npz"
    npz.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(D.DataCorrupt, match="mnist.npz: cannot be read"):
        D.load_mnist(tmp_path)
    np.savez_compressed(npz, **_fake())
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  mnist/mnist.npz\n")
    with pytest.raises(D.DataCorrupt, match="sha256 does not match"):
        D.load_mnist(tmp_path)
    (tmp_path / "SHA256SUMS").write_text(D.sha256_file(npz) + "  mnist/mnist.npz\n")
    assert D.load_mnist(tmp_path).name == "mnist"


def test_wrong_label_counts_are_rejected(tmp_path):
    arrays = _fake()
    arrays["y_test"] = np.zeros(10000, dtype=np.uint8)
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(D.DataCorrupt, match="label counts"):
        D.load_mnist(tmp_path)


def test_missing_data_lists_where_it_looked(tmp_path):
    with pytest.raises(D.DataUnavailable, match="looked at: .*mnist.npz.*MNIST/raw") as e:
        D.load_mnist(tmp_path)
    assert len(e.value.looked_at) == 4
    with pytest.raises(D.DataUnavailable, match="no data folder"):
        D.load_mnist(None)


def test_download_path_is_torchvision_and_fails_cleanly_offline(tmp_path, monkeypatch):
    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            raise OSError("network unreachable")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with pytest.raises(D.DataUnavailable, match="download into .* failed: OSError: network unreachable"):
        D.load_mnist(tmp_path, allow_download=True)
    assert calls == [(str(tmp_path), True, True)]


def test_fashion_mnist_from_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
              "y_train": np.repeat(np.arange(10, dtype=np.uint8), 6000),
              "x_test": rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
              "y_test": np.repeat(np.arange(10, dtype=np.uint8), 1000)}
    _write_idx(tmp_path / "fashion-mnist", arrays, gz=True)
    d = D.load_fashion_mnist(tmp_path)
    assert d.name == "fashion-mnist" and d.split()["train"][0].shape[0] == 55000


def test_fashion_mnist_absent_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "FASHION_DIRS", (tmp_path / "nowhere",))
    with pytest.raises(D.DataUnavailable, match="Fashion-MNIST not found"):
        D.load_fashion_mnist(tmp_path)


def _cifar_parts(folder, corrupt_labels=False):
    folder.mkdir(parents=True)
    y = np.repeat(np.arange(10, dtype=np.uint8), 1000)
    if corrupt_labels:
        y = np.zeros_like(y)
    for i in range(5):
        x = np.full((10000, 32, 32, 3), i, dtype=np.uint8)
        np.savez_compressed(folder / f"cifar10_train_{i}.npz", x=x, y=y)
    x = np.arange(10000, dtype=np.int64).astype(np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    np.savez_compressed(folder / "cifar10_test.npz", x=x, y=y)


def test_cifar_parts_order_shuffle_and_mean(tmp_path):
    _cifar_parts(tmp_path / "cifar10")
    d = D.load_cifar10(tmp_path)
    assert d.x_train.shape == (50000, 32, 32, 3) and d.x_train[10000, 0, 0, 0] == 1  # parts concatenated in order
    assert d.mean_image().shape == (32, 32, 3) and d.mean_image()[0, 0, 0] == pytest.approx(2.0)
    p = d.posts_order()
    perm = np.random.RandomState(42).permutation(10000)
    assert np.array_equal(p.x_test[:, 0, 0, 0], d.x_test[perm, 0, 0, 0])
    assert np.array_equal(p.y_train, d.y_train[np.random.RandomState(42).permutation(50000)])


def test_cifar_bad_counts_and_corrupt_part(tmp_path):
    _cifar_parts(tmp_path / "cifar10", corrupt_labels=True)
    with pytest.raises(D.DataCorrupt, match="class counts"):
        D.load_cifar10(tmp_path)
    (tmp_path / "cifar10" / "cifar10_train_3.npz").write_bytes(b"truncated")
    with pytest.raises(D.DataCorrupt, match="cifar10_train_3.npz: cannot be read"):
        D.load_cifar10(tmp_path)


def test_cifar_batches_py_md5_is_checked(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (*D.CIFAR_BATCHES, "test_batch"):
        (folder / name).write_bytes(b"not the official pickle")
    with pytest.raises(D.DataCorrupt, match="data_batch_1: MD5 differs"):
        D.load_cifar10(tmp_path)


def test_cifar_missing(tmp_path):
    with pytest.raises(D.DataUnavailable, match="CIFAR-10 not found"):
        D.load_cifar10(tmp_path)


def test_cifar_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake(root, train, download):
        calls.append(train)
        raise ConnectionError("offline")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    with pytest.raises(D.DataUnavailable, match="download into .* failed: ConnectionError: offline"):
        D.load_cifar10(tmp_path, allow_download=True)
    assert calls == [True]


def test_mnist_tensors_are_the_tf_readers_scaling(tmp_path):
    arrays = _fake()
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    x, y = D.load_mnist(tmp_path).tensors("train", n=3)
    assert x.shape == (3, 1, 28, 28) and str(x.dtype) == "torch.float32" and str(y.dtype) == "torch.int64"
    assert np.allclose(x[0, 0].numpy(), arrays["x_train"][5000] / 255.0)
