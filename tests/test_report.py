"""harness.report rebuilds every page from the store alone, deterministically, with figures."""
from pathlib import Path

from harness import report
from harness.claims import CATALOGUE
from harness.store import Store


def _verdict(claim_id, verdict, profile="cpu", variant="", **kw):
    rec = {"kind": "verdict", "claim_id": claim_id, "variant": variant, "primary": kw.pop("primary", True),
           "profile": profile, "verdict": verdict, "not_run_reason": kw.pop("not_run_reason", ""),
           "reason": "", "posts_value": CATALOGUE[claim_id].posts_value, "ours": kw.pop("ours", "0.97 (n=5)"),
           "seeds": [0, 1, 2, 3, 4], "device_name": "CPU", "deviation": "narrower", "checks": [
               {"name": "acc", "expected": "> 0.9", "observed": "0.97", "passed": verdict == "reproduced"}],
           "tables": [{"title": "per epoch", "columns": ["epoch", "error_rate"], "rows": [[1, "0.10"]]}],
           "figures": kw.pop("figures", []), "notes": ["a note"], "recorded_at": "2026-11-28T00:00:00+00:00"}
    rec.update(kw)
    return rec


FIGS = [{"kind": "lines", "title": "curve", "series": [{"label": "a", "x": [1, 2, 3], "y": [3, 2, 1],
                                                       "lo": [2.5, 1.5, .5], "hi": [3.5, 2.5, 1.5]}]},
        {"kind": "strip", "title": "seeds", "groups": [{"label": "A", "values": [1, 2, 3]},
                                                      {"label": "B", "values": [2, 3]}],
         "refs": [{"y": 2, "label": "posts"}]},
        {"kind": "bars", "title": "bars", "labels": ["a", "b"], "values": [1, 2]},
        {"kind": "trajectories2d", "title": "paths", "paths": [{"label": "p", "x": [0, 1], "y": [0, 1]}],
         "contour": {"x": [0, 1, 2], "y": [0, 1, 2], "z": [[1, 2, 3], [2, 3, 4], [3, 4, 5]]},
         "minimum": [1, 1], "start": [0, 0]}]


def _fill(store_dir: Path):
    store = Store(store_dir)
    store.append(_verdict("ltfn9_checkpoint_184mb", "reproduced", figures=FIGS))
    store.append(_verdict("ltfn7_optimizer_2d_comparison", "reproduced", variant="a"))
    store.append(_verdict("ltfn7_optimizer_2d_comparison", "not_reproduced", variant="b"))
    store.append(_verdict("ltfn7_optimizer_2d_comparison", "not_reproduced", variant="c", primary=False))
    store.append(_verdict("ltfn8_vgg_param_tables", "not_run", profile="full", not_run_reason="device"))
    return store


def test_index_has_one_row_per_claim_and_profile(tmp_path):
    _fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    index = (tmp_path / "out" / "README.md").read_text()
    assert "do not edit" in index and "## Profile `cpu`" in index and "## Profile `full`" in index
    cpu = index.split("## Profile `cpu`")[1].split("## Families")[0]
    for cid in CATALOGUE:
        assert cpu.count(f"{cid}") >= 1
    row = next(line for line in cpu.splitlines() if "ltfn7_optimizer_2d_comparison" in line)
    assert "not reproduced" in row and "1/2 sub-claims hold" in row  # secondary variant not counted
    assert "not run (pending)" in cpu
    full = index.split("## Profile `full`")[1]
    assert "not run (device)" in full


def test_family_page_has_checks_tables_and_figures(tmp_path):
    _fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    page = (tmp_path / "out" / "params.md").read_text()
    assert "| check" in page and "**per epoch**" in page and "> a note" in page
    pngs = sorted((tmp_path / "out" / "figures").glob("*.png"))
    assert len(pngs) == len(FIGS)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_rebuild_is_byte_identical(tmp_path):
    _fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "a")
    report.build(tmp_path / "store", tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_cli_rebuilds_without_training(tmp_path, capsys):
    _fill(tmp_path / "store")
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "o")]) == 0
    assert "README.md" in capsys.readouterr().out
    assert report.main(["--store", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_empty_store_says_so(tmp_path):
    report.build(tmp_path / "none", tmp_path / "out")
    assert "holds no verdicts" in (tmp_path / "out" / "README.md").read_text()


def test_pipes_in_cells_are_escaped(tmp_path):
    store = Store(tmp_path / "store")
    store.append(_verdict("ltfn9_checkpoint_184mb", "reproduced", ours="max |diff| 0"))
    report.build(tmp_path / "store", tmp_path / "out")
    row = next(line for line in (tmp_path / "out" / "README.md").read_text().splitlines()
               if "ltfn9_checkpoint_184mb" in line)
    assert "max \\|diff\\| 0" in row and row.count(" | ") == 7
