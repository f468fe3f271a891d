"""python -m harness.compare: verdict flips between two stores, metrics that moved, runs on one side only."""
from harness import compare
from harness.store import Store

from tests_support import decided


def test_a_flip_between_two_stores_is_found_and_fails_the_exit_status(tmp_path, capsys):
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    vgg = [{"test_acc": 0.98 + i / 1000} for i in range(5)]
    decided(a, "ltfn8_mnist_vgg_979_vs_973", {"vgg": vgg, "convnet": [{"test_acc": 0.95 + i / 1000} for i in range(5)]})
    decided(b, "ltfn8_mnist_vgg_979_vs_973", {"vgg": vgg, "convnet": [{"test_acc": 0.99 + i / 1000} for i in range(5)]})
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "FLIP  ltfn8_mnist_vgg_979_vs_973 [cpu]: analogue held -> analogue failed" in out  # cpu: an analogue
    rows = compare.against_published(b.records(), a.records())
    page = compare.render_against_published(rows, "reports/")
    assert "| **differs**: analogue failed | analogue held |" in page and "| reproduced" not in page
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert "0 verdict(s) flipped" in capsys.readouterr().out


def test_moved_metrics_and_one_sided_runs(tmp_path, capsys):
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    decided(a, "ltfn10_cifar_vgg_71pct", {"raw": [{"test_acc": 0.60 + i / 1000} for i in range(5)]})
    decided(b, "ltfn10_cifar_vgg_71pct", {"raw": [{"test_acc": 0.55 + i / 1000} for i in range(5)]})
    decided(b, "ltfn9_checkpoint_184mb", {"checkpoint": [{"size_mib": 183.8, "overhead_bytes": 3e4}]})
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b"), "--runs"]) == 0  # both reproduced at cpu
    out = capsys.readouterr().out
    assert "MOVED ltfn10_cifar_vgg_71pct [cpu]" in out and "intervals disjoint" in out
    assert "ONLY  ltfn9_checkpoint_184mb [cpu]: decided in" in out and "only in" in out


def test_bad_input_is_a_message(tmp_path, capsys):
    assert compare.main([str(tmp_path / "nope"), "not-a-revision-xyz"]) == 2
    assert "neither a store folder" in capsys.readouterr().err
