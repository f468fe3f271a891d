"""harness.report re-derives every verdict from the store and the registered rules, writes whole pages, and
``--verify`` catches a page, a stored metric or a rule that no longer agrees."""
import json
import shutil
from pathlib import Path

import pytest

from harness import report, rulebook
from harness.claims import CATALOGUE
from harness.rulebook import Decision
from harness.rules import AtLeast, M
from harness.store import Store, _line_sha, canonical

from tests_support import decided, not_run

FIGS = [{"kind": "lines", "title": "curve", "series": [{"label": "a", "x": [1, 2, 3], "y": [3, 2, 1],
                                                       "lo": [2.5, 1.5, .5], "hi": [3.5, 2.5, 1.5]}]},
        {"kind": "strip", "title": "seeds", "groups": [{"label": "A", "values": [1, 2, 3]},
                                                      {"label": "B", "values": [2, 3]}],
         "refs": [{"y": 2, "label": "posts"}]},
        {"kind": "bars", "title": "bars", "labels": ["a", "b"], "values": [1, 2]},
        {"kind": "trajectories2d", "title": "paths", "paths": [{"label": "p", "x": [0, 1], "y": [0, 1]}],
         "contour": {"x": [0, 1, 2], "y": [0, 1, 2], "z": [[1, 2, 3], [2, 3, 4], [3, 4, 5]]},
         "minimum": [1, 1], "start": [0, 0]}]


def beale(ok=True):
    return {"sgd_final_dist": 0.8, "sgd_min_dist": 0.7, "momentum_max_x": 3.4 if ok else 2.9, "adam_max_x": 2.6,
            "sgd_final_f": 0.2, "adam_final_f": 0.04, "momentum_final_f": 0.007}


def fill(store_dir: Path) -> Store:
    store = Store(store_dir)
    decided(store, "ltfn9_checkpoint_184mb", {"checkpoint": [{"size_mib": 183.84, "overhead_bytes": 30000.0}]},
            figures=FIGS)
    for sub in ("sgd_slow", "momentum_overshoots"):
        decided(store, "ltfn7_optimizer_2d_comparison", {"beale": [beale(ok=False)]}, variant=f"{sub}-120steps")
    decided(store, "ltfn7_optimizer_2d_comparison", {"beale": [beale()]}, variant="adam_balance-100steps",
            primary=False)
    decided(store, "ltfn8_mnist_vgg_979_vs_973", {"vgg": [{"test_acc": 0.98 + i / 1000} for i in range(5)],
                                                  "convnet": [{"test_acc": 0.95 + i / 1000} for i in range(5)]})
    not_run(store, "ltfn8_vgg_param_tables", "device", profile="full")
    return store


def test_verdicts_are_re_derived_from_runs_and_rules(tmp_path):
    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    index = (tmp_path / "out" / "README.md").read_text()
    cpu = index.split("## Profile `cpu`")[1].split("## Profile")[0]
    posts, controls = cpu.split("### Controls beyond the posts")
    row = next(line for line in posts.splitlines() if "ltfn9_checkpoint_184mb" in line)
    assert "| reproduced" in row  # the stored "?" was re-derived
    assert "`ltfn9_checkpoint_184mb`: checkpoint size as `ls -h` prints it" in posts  # its parts, below the table
    row = next(line for line in posts.splitlines() if "ltfn7_optimizer_2d_comparison" in line)
    assert "not reproduced" in row and "sgd_slow-120steps:" in posts and "momentum_overshoots-120steps:" in posts
    row = next(line for line in posts.splitlines() if "ltfn8_mnist_vgg_979_vs_973" in line)
    assert "| analogue held" in row and "diff 3.00 [" in row  # the difference with its interval
    for cid, claim in CATALOGUE.items():
        assert cid in (controls if claim.post == "control" else posts)
    assert "Not run at this profile: pending:" in posts and "20 claims." in posts
    assert "Decided by a declared analogue" in posts
    assert "expected number of false *reproduced*" in cpu
    assert "Not run at this profile: device: [ltfn8_vgg_param_tables]" in index.split("## Profile `full`")[1]


def test_family_page_shows_the_rule_checks_tables_and_figures(tmp_path):
    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    page = (tmp_path / "out" / "params.md").read_text()
    d = rulebook.decision("ltfn9_checkpoint_184mb", "", "cpu")
    assert f"identity `{d.identity}`" in page and f"rule text `{d.rule.hash}`" in page and d.render() in page
    assert "**verdict history**" in page and "| current " in page
    assert "| check" in page and "**per epoch**" in page and "> a note" in page
    pngs = sorted((tmp_path / "out" / "figures").glob("*.png"))
    assert len(pngs) == len(FIGS)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
    assert not list((tmp_path / "out").glob(".report-*"))  # the temporary folder is gone


def test_the_history_words_an_analogue_verdict_as_the_analogue_s(tmp_path):
    store = Store(tmp_path / "store")
    decided(store, "ltfn8_mnist_vgg_979_vs_973", {"vgg": [{"test_acc": 0.98 + i / 1000} for i in range(5)],
                                                  "convnet": [{"test_acc": 0.95 + i / 1000} for i in range(5)]},
            verdict="reproduced")  # decided by its cpu analogue rule
    decided(store, "ltfn9_checkpoint_184mb", {"checkpoint": [{"size_mib": 183.84, "overhead_bytes": 30000.0}]},
            verdict="reproduced")  # decided by the posts' rule
    report.build(tmp_path / "store", tmp_path / "out")
    hist = next(line for line in (tmp_path / "out" / "vgg_mnist.md").read_text().splitlines()
                if "| first verdict" in line)
    assert "| analogue held " in hist and "| reproduced " not in hist
    hist = next(line for line in (tmp_path / "out" / "params.md").read_text().splitlines()
                if "| first verdict" in line)
    assert "| reproduced " in hist


def test_the_history_says_when_the_experiment_s_scale_changed_under_the_same_rule(tmp_path):
    """A rule's identity does not cover its experiment's scale, so the history names a changed budget instead of
    calling the later verdict a retraining of the same thing."""
    store = Store(tmp_path / "store")
    arms = {"checkpoint": [{"size_mib": 183.84, "overhead_bytes": 30000.0}]}
    small = {"needs_cuda": False, "settings": {"width": 0.25, "steps": 300}}
    decided(store, "ltfn9_checkpoint_184mb", arms, verdict="reproduced", budget=small)
    decided(store, "ltfn9_checkpoint_184mb", arms, verdict="reproduced", budget=small,
            recorded_at="2026-11-29T00:00:00+00:00")
    decided(store, "ltfn9_checkpoint_184mb", arms, verdict="reproduced", recorded_at="2026-11-30T00:00:00+00:00",
            budget={"needs_cuda": False, "settings": {"width": 0.25, "steps": 150}})
    report.build(tmp_path / "store", tmp_path / "out")
    rows = [line for line in (tmp_path / "out" / "params.md").read_text().splitlines()
            if line.startswith("| 2026-11-")]
    assert [r.count("experiment scale") for r in rows] == [0, 0, 1]
    assert "nothing (the same rule and seeds, retrained)" in rows[1] and "**experiment scale** (steps)" in rows[2]
    assert "nothing" not in rows[2]


def test_a_summary_interval_at_95_percent_is_told_apart_from_the_rule_s_interval():
    from harness.report import _summary_note

    rec = {"alpha": 0.005, "ours": "89.50% [82.42%, 96.58%] (n=5, 95% t-interval)"}
    assert "the rule decides on 99% intervals" in _summary_note(rec)
    assert _summary_note(dict(rec, alpha=0.025)) == ""  # the summary's intervals are the rule's
    assert _summary_note(dict(rec, ours="183.9 on every seed (n=2)")) == ""  # no interval to confuse
    assert _summary_note({"ours": rec["ours"]}) == ""  # a record without a level (older decision code)


def test_changing_a_rule_re_derives_without_training_and_marks_the_revision(tmp_path, monkeypatch):
    store = fill(tmp_path / "store")
    key = ("ltfn9_checkpoint_184mb", "")
    before = rulebook.RULES[key]["cpu"].rule
    report.build(tmp_path / "store", tmp_path / "out")
    assert report.verify(tmp_path / "store", tmp_path / "out") == []
    runs_before = [r for r in store.records() if r["kind"] == "run"]
    stricter = AtLeast(M("checkpoint", "size_mib"), 184.5, stat="each")
    monkeypatch.setitem(rulebook.RULES, key, {"cpu": Decision(stricter), "full": Decision(stricter)})
    assert stricter.hash != before.hash
    problems = report.verify(tmp_path / "store", tmp_path / "out")
    assert any("params.md" in p for p in problems) and any("README.md" in p for p in problems)
    report.build(tmp_path / "store", tmp_path / "out")
    assert [r for r in store.records() if r["kind"] == "run"] == runs_before  # nothing was trained
    page = (tmp_path / "out" / "params.md").read_text()
    new_id = rulebook.decision(*key, "cpu").identity
    assert f"identity `{new_id}`" in page and f"rule text `{stricter.hash}`" in page
    cpu = (tmp_path / "out" / "README.md").read_text().split("## Profile `cpu`")[1]
    row = next(line for line in cpu.splitlines() if "ltfn9_checkpoint_184mb" in line)
    # the stored verdict was decided under the old identity: it no longer decides, new seeds must
    assert "| not yet confirmed" in row
    assert "not yet confirmed under the current rule" in (tmp_path / "out" / "params.md").read_text()
    hist = next(line for line in page.splitlines() if "| first verdict" in line)
    assert "| confirmatory " in hist  # the earlier verdict, kept in the history


def test_verify_fails_when_a_page_is_edited_by_hand(tmp_path, capsys):
    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--verify"]) == 0
    page = tmp_path / "out" / "README.md"
    page.write_text(page.read_text().replace("| not reproduced", "| reproduced", 1))
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--verify"]) == 1
    assert "README.md: differs" in capsys.readouterr().err


def test_verify_fails_when_a_stored_metric_is_edited(tmp_path, capsys):
    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    path = tmp_path / "store" / "runs.jsonl"
    lines = path.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if '"size_mib":183.84' in line)
    forged = json.loads(lines[i])
    forged["metrics"]["size_mib"] = 190.0
    lines[i] = json.dumps(forged)  # edited by hand, checksum left stale
    path.write_text("\n".join(lines) + "\n")
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--verify"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    forged["_sha"] = _line_sha(forged)  # a careful forger recomputes the checksum: the page still differs
    lines[i] = canonical(forged)
    path.write_text("\n".join(lines) + "\n")
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--verify"]) == 1


def test_verify_fails_when_a_verdict_is_stored_as_confirmatory_on_seeds_its_rules_did_not_draw(tmp_path):
    """A page calls a row's seeds confirmatory on the strength of the stored record; --verify re-draws them,
    so a record on other seeds (the 0-4 of earlier sessions, say) marked confirmatory is caught."""
    store = Store(tmp_path / "store")
    decided(store, "ltfn9_checkpoint_184mb", {"checkpoint": [{"size_mib": 183.84, "overhead_bytes": 27915}] * 2},
            verdict="reproduced")
    report.build(tmp_path / "store", tmp_path / "out")
    assert report.verify(tmp_path / "store", tmp_path / "out") == []
    decided(store, "ltfn9_checkpoint_184mb", {"checkpoint": [{"size_mib": 183.84, "overhead_bytes": 27915}] * 2},
            verdict="reproduced", seeds=[0, 1], recorded_at="2026-11-29T00:00:00+00:00")
    report.build(tmp_path / "store", tmp_path / "out")  # the pages agree with the store: only the seeds lie
    problems = report.verify(tmp_path / "store", tmp_path / "out")
    assert len(problems) == 1 and "confirmatory on seeds its rules did not draw: 0, 1" in problems[0], problems


def test_verify_fails_when_the_deciding_verdict_rests_on_runs_outside_its_draw(tmp_path):
    """The seed list of a record can be its draw while a run it names is on another seed (a deterministic run
    keyed to seed 0, say): such a run could have existed before the rule, so the page must not rest on it."""
    store = Store(tmp_path / "store")
    metrics = {"size_mib": 183.84, "overhead_bytes": 27915}
    good = decided(store, "ltfn9_checkpoint_184mb", {"checkpoint": [metrics] * 2}, verdict="reproduced")
    report.build(tmp_path / "store", tmp_path / "out")
    assert report.verify(tmp_path / "store", tmp_path / "out") == []
    early = store.append({"kind": "run", "run_id": "seed-0-run", "claim_id": "exp", "arm": "checkpoint", "seed": 0,
                          "profile": "cpu", "status": "finished", "metrics": metrics, "wall_s": 1.0})
    later = {k: v for k, v in good.items() if k != "_sha"}
    later.update(arms={"checkpoint": [good["arms"]["checkpoint"][0], early["run_id"]]},
                 recorded_at="2026-11-29T00:00:00+00:00")
    store.append(later)
    report.build(tmp_path / "store", tmp_path / "out")  # the pages agree with the store: only a run's seed lies
    problems = report.verify(tmp_path / "store", tmp_path / "out")
    assert len(problems) == 1 and "decided by runs on seeds outside its draw: 0" in problems[0], problems
    kinds = [line.split("|")[6].strip() for line in (tmp_path / "out" / "params.md").read_text().splitlines()
             if line.startswith("| 2026-11-2")]  # the verdict history: the record on seed 0 is named so
    assert kinds == ["current", "runs on seed 0, off its draw"], kinds


def test_a_later_failed_setup_never_replaces_a_decided_verdict(tmp_path):
    store = fill(tmp_path / "store")
    not_run(store, "ltfn8_mnist_vgg_979_vs_973", "data")
    report.build(tmp_path / "store", tmp_path / "out")
    cpu = (tmp_path / "out" / "README.md").read_text().split("## Profile `cpu`")[1]
    row = next(line for line in cpu.splitlines() if "ltfn8_mnist_vgg_979_vs_973" in line)
    assert "| analogue held" in row
    page = (tmp_path / "out" / "vgg_mnist.md").read_text()
    assert "latest attempt" in page and "not run (data): no data here" in page


def test_rebuild_is_byte_identical(tmp_path):
    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "a")
    report.build(tmp_path / "store", tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_cli_messages_not_tracebacks(tmp_path, capsys):
    fill(tmp_path / "store")
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "o")]) == 0
    assert "README.md" in capsys.readouterr().out
    assert report.main(["--store", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    shutil.copy(tmp_path / "store" / "runs.jsonl", tmp_path / "x.jsonl")
    (tmp_path / "store" / "runs.jsonl").write_text("{not json\n")
    assert report.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "o")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_empty_store_says_so(tmp_path):
    report.build(tmp_path / "none", tmp_path / "out")
    assert "holds no verdicts" in (tmp_path / "out" / "README.md").read_text()


def test_pipes_in_cells_are_escaped():
    assert report.md_table(["a"], [["max |diff| 0"]]).splitlines()[-1] == "| max \\|diff\\| 0 |"


@pytest.fixture(scope="module")
def published_problems():
    root = Path(__file__).resolve().parent.parent / "reports"
    if not (root / "store" / "runs.jsonl").exists():
        pytest.skip("no published store in this checkout")
    return root, report.verify(root / "store", root)


@pytest.mark.parametrize("page", ["README.md", "params.md", "optimizers.md", "init.md", "vgg_mnist.md", "cifar.md",
                                  "counting.md", "transfer.md"])
def test_the_published_report_re_derives(page, published_problems):
    """The committed report equals what its committed store and the current rules give (what CI checks)."""
    root, problems = published_problems
    assert not [p for p in problems if p.startswith(str(root / page))], problems


def test_a_failed_rebuild_leaves_the_old_report_whole(tmp_path, monkeypatch):
    """A full disk while drawing (simulated): the previous pages and figures stay as they were, no temporary
    folder is left behind, and the error says what happened."""
    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    decided(Store(tmp_path / "store"), "ltfn9_checkpoint_restore_roundtrip",
            {"checkpoint": [{"restored_max_abs_diff": 0.0, "exported_max_abs_diff": 0.0}]}, figures=FIGS[:1])

    def full_disk(spec, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "_render_figure", full_disk)
    with pytest.raises(OSError, match="No space left"):
        report.build(tmp_path / "store", tmp_path / "out")
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    assert not list((tmp_path / "out").glob(".report-*"))


def _visible(line: str) -> str:
    import re

    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)  # a link shows its text only
    return re.sub(r"\s+", " ", text)  # a renderer drops the padding of the raw table


def test_a_reader_gets_narrow_rows_no_paths_no_figure_twice_and_the_re_run_command(tmp_path):
    store = fill(tmp_path / "store")
    store.append({"kind": "verdict", "claim_id": "paintings_resnet34_95pct", "variant": "", "primary": True,
                  "profile": "cpu", "verdict": "not_run", "not_run_reason": "weights", "arms": {},
                  "reason": f"no file in torch hub's cache ({Path.home()}/.cache/torch/hub/checkpoints/r34.pth); "
                            "looked at /srv/claimbench-data/datasets/paintings", "posts_value": "95%", "ours": "-",
                  "seeds": [], "device_name": "CPU", "tables": [], "figures": [], "notes": [],
                  "recorded_at": "2026-11-29T00:00:00+00:00"})
    decided(store, "ltfn9_checkpoint_restore_roundtrip",  # the same figure as ltfn9_checkpoint_184mb's first one
            {"checkpoint": [{"restored_max_abs_diff": 0.0, "exported_max_abs_diff": 0.0}]}, figures=FIGS[:1])
    report.build(tmp_path / "store", tmp_path / "out")
    index = (tmp_path / "out" / "README.md").read_text()
    rows = [_visible(x) for x in index.splitlines() if x.startswith("| ")]
    assert rows and max(len(r) for r in rows) <= 140, max(rows, key=len)
    for page in (tmp_path / "out").glob("*.md"):
        text = page.read_text()
        assert str(Path.home()) not in text and "/srv/claimbench-data" not in text, page.name
    transfer = (tmp_path / "out" / "transfer.md").read_text()
    assert "~/.cache/torch/hub/checkpoints/r34.pth" in transfer and "…/datasets/paintings" in transfer
    params = (tmp_path / "out" / "params.md").read_text()
    assert "the same figure as under ltfn9_checkpoint_184mb" in params
    pngs = list((tmp_path / "out" / "figures").glob("*.png"))
    assert len({p.read_bytes() for p in pngs}) == len(pngs) == len(FIGS)
    for cid in ("ltfn9_checkpoint_184mb", "ltfn9_checkpoint_restore_roundtrip"):
        section = params.split(f"## {cid}\n")[1].split("\n## ")[0]
        assert f"`tox -e cpu -- --claims {cid}`" in section


def test_the_export_round_trips_to_the_same_verdicts(tmp_path):
    import csv

    fill(tmp_path / "store")
    report.build(tmp_path / "store", tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    by_profile = report.collect(Store(tmp_path / "store").records())
    want = {(p, c, v): rec["verdict"] for p, recs in by_profile.items() for (c, v), rec in recs.items()}
    assert {(r["profile"], r["claim_id"], r["variant"]): r["verdict"] for r in rows} == want
    with open(tmp_path / "out" / "verdicts.csv") as f:
        assert [(r["claim_id"], r["verdict"]) for r in csv.DictReader(f)] == [(r["claim_id"], r["verdict"])
                                                                             for r in rows]
    row = next(r for r in rows if r["claim_id"] == "ltfn8_mnist_vgg_979_vs_973")
    assert row["outcome"] == "analogue held" and row["identity"] and row["n"] == 5
    assert report.verify(tmp_path / "store", tmp_path / "out") == []  # the export is checked like a page


def test_the_published_index_keeps_its_title_whatever_the_store_holds():
    """A published store with runs of two environments (an fp32 republication beside bf16 runs) is still the
    report; only the environment matrix's folder is titled as the matrix."""
    assert report.render_index({}, "store", n_envs=2).splitlines()[2] == "# claimbench report"
    matrix = report.render_index({}, "store", n_envs=4, is_matrix=True)
    assert "# claimbench environment matrix" in matrix and "not the published report" in matrix


def test_a_lesson_on_the_index_names_the_analogue_that_decided_it():
    """A "what we learned" bullet is read on its own: an analogue's names its setting (the network, scale),
    the posts' own rule's has none."""
    from harness.summary import learned
    from harness.verdict import NOT_REPRODUCED, REPRODUCED
    from harness.verdicts import analogue_setting

    claim = CATALOGUE["ltfn8_mnist_vgg_979_vs_973"]
    rec = {"claim_id": claim.id, "variant": "", "profile": "cpu", "verdict": NOT_REPRODUCED, "ours": "97.6% vs 98.2%"}
    setting = analogue_setting(rec)
    assert setting and setting == rulebook.decision(claim.id, "", "cpu").analogue
    [line] = learned([{"rec": rec, "recs": [rec], "claim": claim}], analogue_setting)
    assert line.startswith("**Did not hold.**") and f"(scaled-down analogue: {setting})" in line
    full = dict(rec, profile="full", verdict=REPRODUCED)
    [line] = learned([{"rec": full, "recs": [full], "claim": claim}], analogue_setting)
    assert "analogue" not in line
    # the report's numeric comparison of decision versions ("10" is newer than "9")
    assert report._newer("10", "9") and not report._newer("2", "3") and report._newer("x", "3")


def test_an_interval_end_past_0_or_100_percent_is_marked_and_explained():
    from harness.summary import PAST_RANGE, headline, mark_past_range

    assert mark_past_range("89.50% [77.76%, 101.24%] (n=5)") == f"89.50% [77.76%, 101.24%{PAST_RANGE}] (n=5)"
    assert mark_past_range("2.00% [-1.50%, 5.50%]") == f"2.00% [-1.50%{PAST_RANGE}, 5.50%]"
    assert mark_past_range("diff -1.04 [-4.35, 2.26] pts") == "diff -1.04 [-4.35, 2.26] pts"  # differences: no bound
    assert mark_past_range("97.00% [95.00%, 99.00%]") == "97.00% [95.00%, 99.00%]"
    rec = {"checks": [{"name": "acc", "expected": ">= 80.00% (99% CI)", "level": 0.005,
                       "observed": "89.50% [77.76%, 101.24%] (n=5, 99% t-interval)", "passed": None}]}
    assert headline(rec) == f"89.50% [77.76%, 101.24%{PAST_RANGE}] (n=5, 99% CI)"
    index = (Path(__file__).resolve().parents[1] / "reports" / "README.md")
    if index.exists():  # the published index explains the mark wherever it shows one
        text = index.read_text()
        assert PAST_RANGE not in text or "outside 0-100%" in text


def test_a_row_shows_the_number_of_the_part_that_decided_it_and_names_that_part():
    from harness.summary import headline
    from harness.verdict import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    share = {"name": "share of steps over 1e-5..1e-3", "level": 0.005, "passed": True,
             "observed": "0.7 [0.6132, 0.7868] (n=5, 99% t-interval)"}
    minimum = {"name": "log10 of the minimum (posts: -4)", "level": 0.005, "passed": False,
               "observed": "-1.925 [-2.199, -1.652] (n=5, 99% t-interval), TOST p = 0.998"}
    # a claim that did not hold shows its failed part, never the number of a part that held
    assert headline({"verdict": NOT_REPRODUCED, "checks": [share, minimum]}) == (
        "log10 of the minimum: -1.925 [-2.199, -1.652] (n=5, 99% CI)")
    gap = {"name": "gap > 5 points", "level": 0.005, "passed": True, "observed": "diff 18.89 pts [16.57 pts, 21.21 "
           "pts] (99% CI), p = 1e-06; MDD at 0.005: 2 pts"}
    ratio = {"name": "cost ratio", "level": 0.005, "passed": None, "observed": "1.545 [1.472, 1.618] (n=5, 99% CI)"}
    assert headline({"verdict": INCONCLUSIVE, "checks": [gap, ratio]}) == (
        "cost ratio: 1.545 [1.472, 1.618] (n=5, 99% CI)")
    assert headline({"verdict": REPRODUCED, "checks": [gap, dict(ratio, passed=True)]}) == (
        "gap > 5 points: diff 18.89 [16.57, 21.21] pts (99% CI)")
    # one check: its number alone; per-seed values as their range
    assert headline({"verdict": REPRODUCED, "checks": [share]}) == "0.7 [0.6132, 0.7868] (n=5, 99% CI)"
    seeds = {"name": "spread", "level": None, "passed": True, "observed": "830.4, 469.2, 852.7"}
    assert headline({"verdict": REPRODUCED, "checks": [seeds]}) == "469.2 to 852.7 (3 seeds)"
    assert headline({"verdict": REPRODUCED, "checks": [], "ours": "183.9 MiB"}) == "183.9 MiB"


def test_the_precision_control_words_an_analogue_s_outcome_as_the_analogue_s(tmp_path):
    from harness.sections import precision_control_section

    store = Store(tmp_path / "store")
    rec = decided(store, "ltfn8_mnist_vgg_979_vs_973", {"vgg": [{"test_acc": 0.98 + i / 1000} for i in range(5)],
                                                        "convnet": [{"test_acc": 0.95 + i / 1000} for i in range(5)]})
    runs = {r["run_id"]: r for r in store.records() if r["kind"] == "run"}
    twin = rec["arms"]["vgg"][0]
    runs["fp32"] = dict(runs[twin], run_id="fp32", metrics={"test_acc": 0.9805})
    text = precision_control_section(dict(rec, precision_control={"arm": "vgg", "seed": 1, "fp32_run": "fp32",
                                                                  "bf16_run": twin}), runs, "cpu")
    assert "The rule gives **analogue held** on the bf16 runs and **analogue held** with the fp32 run" in text


def test_a_check_that_passes_where_little_is_learned_is_shown_beside_the_claim_that_tells(tmp_path):
    """Counting 45-50 "stays near chance" holds wherever the network learns nothing at all; its page and its
    lesson on the index name its positive control (the same setup counting 1-5) with that claim's verdict."""
    from harness.claims import READ_BESIDE

    for claim_id, (other, why) in READ_BESIDE.items():
        assert claim_id in CATALOGUE and other in CATALOGUE and other != claim_id and why
    store = Store(tmp_path / "store")
    chance = [{"acc_stage1": 0.17 + i / 100, "best_acc_last_stage": 0.2 + i / 100} for i in range(5)]
    decided(store, "counting_45to50_near_chance", {"part1_large": chance})
    report.build(tmp_path / "store", tmp_path / "out")
    beside = "read beside `counting_1to5_baseline_86pct` (its positive control: the same network"
    line = (tmp_path / "out" / "counting.md").read_text().split(f"- {beside}")[1].split("\n")[0]
    assert line.endswith("near chance holds wherever nothing is learned): not run (pending)")
    decided(store, "counting_1to5_baseline_86pct", {"part1_small": [{"acc_stage1": 0.3 + i / 100} for i in range(5)]})
    report.build(tmp_path / "store", tmp_path / "out")
    index, page = ((tmp_path / "out" / name).read_text() for name in ("README.md", "counting.md"))
    held = index.split("**Held.**")[1].split("\n")[0]
    assert "Counting 45-50 circles stays near chance" in held and f"({beside}" in held
    assert "nothing is learned): analogue failed)" in held.split(beside)[1]
    assert page.split(f"- {beside}")[1].split("\n")[0].endswith("nothing is learned): analogue failed")
