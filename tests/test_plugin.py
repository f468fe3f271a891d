"""The plugin end to end: verdicts become test outcomes, land in the store, and the report is rebuilt."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CLAIM_TESTS = textwrap.dedent('''
    import pytest
    from harness import rulebook
    from harness.claims import Case
    from harness.profiles import Budget
    from harness.rulebook import Decision
    from harness.rules import AtLeast, M

    # rules for the demo's variants, registered before any run (as the rulebook does for the real claims)
    for variant, level, stat in (("holds", 0.0, "each"), ("fails", 100.0, "each"), ("undecided", 0.5, "mean")):
        rule = AtLeast(M("arm", "v"), level, stat=stat)
        rulebook.RULES[("ltfn9_checkpoint_184mb", variant)] = {"cpu": Decision(rule), "full": Decision(rule)}

    B = {p: Budget(seeds=2, settings={"x": 1}) for p in ("smoke", "cpu", "full")}
    GPU = {p: Budget(seeds=1, needs_cuda=True) for p in ("smoke", "cpu", "full")}
    CASES = [Case("ltfn9_checkpoint_184mb", B, "holds"), Case("ltfn9_checkpoint_184mb", B, "fails"),
             Case("ltfn9_checkpoint_184mb", B, "undecided")]

    @pytest.mark.parametrize("case", CASES, ids=str)
    def test_claim(case, claimbench):
        ctx = claimbench.start(case)
        # the i-th seed's value is i: the same numbers whatever seeds the rule draws
        runs = [ctx.run("arm", s, lambda i=i: {"metrics": {"v": float(i)}}) for i, s in enumerate(ctx.seeds)]
        ctx.decide({"arm": runs})

    @pytest.mark.parametrize("case", [Case("ltfn9_checkpoint_restore_roundtrip", GPU)], ids=str)
    def test_needs_gpu(case, claimbench):
        claimbench.start(case)
        raise AssertionError("a CUDA-only budget must not run on the CPU")
''')


def _records(tmp_path) -> list[dict]:
    """Every line of the session's store (``_run`` writes it under ``tmp_path / "rep"``), as written."""
    return [json.loads(line) for line in (tmp_path / "rep" / "store" / "runs.jsonl").read_text().splitlines()]


def _run(tmp_path, *args, tests=CLAIM_TESTS, ci=None):
    (tmp_path / "test_claims_demo.py").write_text(tests)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAIMBENCH_DEVICE": "cpu", "CLAIMBENCH_OFFLINE": "1"}
    env.pop("CLAIMBENCH_PROFILE", None)
    if ci is False:  # a person's terminal: claim lines on (CI turns them off)
        env.pop("CI", None)
    return subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_claims_demo.py"), "-p",
                           "harness.plugin", "-rA", "--report-dir", str(tmp_path / "rep"), "-p", "no:cacheprovider",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("ci", [None, False], ids=["as-is", "claim-lines"])
def test_verdicts_map_to_outcomes_and_reach_the_report(tmp_path, ci):
    """Also with the claim lines of a person's terminal on: an inconclusive claim whose line was printed
    once reached pytest's summary as a skip without a reason, and pytest crashed on it (exit 1, no summary)."""
    r = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", ci=ci)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in out
    assert "ltfn9_checkpoint_184mb-fails: not reproduced" in out
    assert "inconclusive: ltfn9_checkpoint_184mb-undecided" in out
    assert "not run (device)" in out and "claimbench verdicts (profile cpu" in out
    assert "not run in this session (not selected, or no test collected): paintings_resnet34_95pct" in out
    recs = _records(tmp_path)
    assert sum(r["kind"] == "run" for r in recs) == 6  # 3 variants x 2 seeds; the GPU claim never ran
    verdicts = [r for r in recs if r["kind"] == "verdict"]
    assert {r["verdict"] for r in verdicts} == {"reproduced", "not_reproduced", "inconclusive", "not_run"}
    for v in verdicts:  # each decided verdict names its rule, the rule's hash, its runs and the code
        if v["verdict"] != "not_run":
            assert v["rule_hash"] and v["rule"]["type"] == "at_least" and len(v["arms"]["arm"]) == 2
            assert set(v["code"]) == {"commit", "dirty"}
    index = (tmp_path / "rep" / "README.md").read_text()
    assert "## Profile `cpu`" in index and "Not run at this profile: device:" in index


def test_smoke_never_gives_a_verdict_and_seeds_override(tmp_path):
    r = _run(tmp_path, "--profile", "smoke", "--seeds", "5,6,7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed, 1 skipped" in r.stdout
    recs = _records(tmp_path)
    verdicts = [r for r in recs if r["kind"] == "verdict"]
    assert {v["verdict"] for v in verdicts} == {"not_run"}
    assert sorted(v["not_run_reason"] for v in verdicts) == ["device", "profile", "profile", "profile"]
    assert {r["seed"] for r in recs if r["kind"] == "run"} == {5, 6, 7}
    assert "would-be outcome: not reproduced" in json.dumps(verdicts)


def test_only_the_draw_of_the_registered_seed_count_decides(tmp_path, monkeypatch):
    """The confirmatory seeds extend as a prefix (the first n of a longer draw are the same), so a longer list
    given by hand after an open verdict would be optional stopping: more seeds until the interval clears the
    level. Only the draw of the count the claim's budget registers decides; any --seeds list is exploratory."""
    from harness import decide as D
    from harness import rulebook
    from harness.rulebook import Decision
    from harness.rules import AtLeast, M

    for variant, level, stat in (("holds", 0.0, "each"), ("fails", 100.0, "each"), ("undecided", 0.5, "mean")):
        rule = AtLeast(M("arm", "v"), level, stat=stat)  # the demo's rules, as its module registers them
        monkeypatch.setitem(rulebook.RULES, ("ltfn9_checkpoint_184mb", variant), {"cpu": Decision(rule),
                                                                                   "full": Decision(rule)})
    registered, longer = (D.confirmatory_seeds("ltfn9_checkpoint_184mb", "cpu", n) for n in (2, 3))
    assert longer[:2] == registered
    outcomes = []
    for seeds in (None, longer, registered):
        r = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", "-k", "holds",
                 *(("--seeds", ",".join(map(str, seeds))) if seeds else ()))
        assert r.returncode == 0, r.stdout + r.stderr
        recs = _records(tmp_path)
        rec = [x for x in recs if x["kind"] == "verdict" and x["variant"] == "holds"][-1]
        outcomes.append((tuple(rec["seeds"]), rec["exploratory"], rec["verdict"]))
    assert outcomes == [(registered, False, "reproduced"), (longer, True, "reproduced"),
                        (registered, True, "reproduced")]
    current = D.latest_decided(recs, "cpu")
    assert current[("ltfn9_checkpoint_184mb", "holds")]["seeds"] == list(registered)


FIXED_SEED_TESTS = textwrap.dedent('''
    import pytest
    from harness import rulebook
    from harness.claims import Case
    from harness.profiles import Budget
    from harness.rulebook import Decision
    from harness.rules import AtLeast, M

    for variant in ("seed-0", "drawn"):
        rulebook.RULES[("ltfn9_checkpoint_184mb", variant)] = {p: Decision(AtLeast(M("arm", "v"), 0.0, stat="each"))
                                                               for p in ("cpu", "full")}
    ONE = {p: Budget(seeds=1) for p in ("smoke", "cpu", "full")}

    @pytest.mark.parametrize("case", [Case("ltfn9_checkpoint_184mb", ONE, v) for v in ("seed-0", "drawn")], ids=str)
    def test_claim(case, claimbench):
        ctx = claimbench.start(case)
        seed = 0 if case.variant == "seed-0" else ctx.seeds[0]  # a deterministic run keyed to a fixed seed, or not
        ctx.decide({"arm": [ctx.run("arm", seed, lambda: {"metrics": {"v": 1.0}})]})
''')


def test_a_run_on_a_seed_outside_the_draw_decides_nothing(tmp_path):
    """A run on a seed the rule did not draw could have existed before the rule (seed 0 did, for every
    claim), so a verdict resting on one is exploratory even where the seed list is the registered draw."""
    r = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", tests=FIXED_SEED_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = _records(tmp_path)
    verdicts = {v["variant"]: v for v in recs if v["kind"] == "verdict"}
    drawn = tuple(verdicts["drawn"]["seeds"])  # the subprocess's draw (its rules are the demo's)
    assert len(drawn) == 1 and drawn != (0,)
    assert {k: (tuple(v["seeds"]), v["exploratory"], v["verdict"]) for k, v in verdicts.items()} == {
        "seed-0": (drawn, True, "reproduced"), "drawn": (drawn, False, "reproduced")}
    assert sorted(r["seed"] for r in recs if r["kind"] == "run") == sorted([0, drawn[0]])


def test_posts_pretrained_claim_runs_with_a_weights_file(tmp_path):
    """The fastai claims' real path with ImageNet weights, fed a ResNet-34 state dict saved here (the real
    weights cannot be downloaded offline): without it the smoke profile runs the cpu profile's Lite0; with it
    but without --user-weights the session fails saying so; with both the posts' ResNet-34 trains."""
    import torch
    from torchvision.models import resnet34

    weights = tmp_path / "resnet34.pth"
    torch.save(resnet34(weights=None).state_dict(), weights)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAIMBENCH_DEVICE": "cpu", "CLAIMBENCH_OFFLINE": "1"}
    for k in ("CLAIMBENCH_PROFILE", "CLAIMBENCH_WEIGHTS", "CLAIMBENCH_USER_WEIGHTS"):  # never the real download
        env.pop(k, None)
    base = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_counting.py"), "-rA", "-p",
            "no:cacheprovider", "--profile", "smoke", "--report-dir", str(tmp_path / "rep"), "--cache-dir",
            str(tmp_path / "cache"), "-k", "counting_1to5_baseline_86pct"]
    r = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**env, "TORCH_HOME": str(tmp_path / "hub")})
    assert r.returncode == 0, r.stdout + r.stderr  # no file: the cpu profile's backbone (Lite0) at toy size
    recs = _records(tmp_path)
    assert [x["config"]["arch"] for x in recs if x["kind"] == "run"] == ["efficientnet_lite0"]
    shutil.rmtree(tmp_path / "rep")
    r = subprocess.run(base + ["--weights", str(weights)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=env)
    # a file the user named that the claim cannot use is their mistake: recorded not run, and exit 1
    assert r.returncode == 1 and "not torchvision's ImageNet weights" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(base + ["--weights", str(weights), "--user-weights"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = _records(tmp_path)
    runs = [x for x in recs if x["kind"] == "run"]
    assert len(runs) == 1 and runs[0]["config"]["pretrained"] and runs[0]["config"]["arch"] == "resnet34"
    assert len(runs[0]["stages"]) == 2 and "error_rate" in runs[0]["stages"][0]["history"][-1]
    assert recs[-1]["kind"] == "verdict" and "would-be outcome" in recs[-1]["reason"]
    assert recs[-1]["label"] == "user-supplied weights, not the posts'"
    assert runs[0]["config"]["weights"] == recs[-1]["label"]


def test_transfer_runs_on_a_user_folder_and_a_missing_one_is_not_run(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3),
                                         dtype=np.uint8)).save(tmp_path / "pets" / cls / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAIMBENCH_DEVICE": "cpu", "CLAIMBENCH_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("CLAIMBENCH_FOLDER_") and k != "CLAIMBENCH_DATA_DIR"}
    base = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_transfer.py"), "-rA", "-p",
            "no:cacheprovider", "--profile", "smoke", "--report-dir", str(tmp_path / "rep"), "-k",
            "transfer_from_scratch"]
    r = subprocess.run(base + ["--folder", f"paintings={tmp_path / 'pets'}", "--folder",
                               f"kittencat={tmp_path / 'pets'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = _records(tmp_path)
    assert {x["config"]["n_images"] for x in recs if x["kind"] == "run"} == {24}
    r = subprocess.run(base + ["--folder", f"paintings={tmp_path / 'nothing'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0 and "not run (data)" in r.stdout and "nothing" in r.stdout, r.stdout + r.stderr


def test_a_newcomer_offline_gets_clear_not_run_lines_within_a_minute(tmp_path):
    """No data folder, no network: every data-bound claim says "not run (data)" naming what was tried, fast."""
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(PYTHONPATH=str(ROOT), CLAIMBENCH_DEVICE="cpu", XDG_CACHE_HOME=str(tmp_path / "cache"))
    mods = [str(ROOT / "benchmarks" / m) for m in ("test_init.py", "test_vgg_mnist.py", "test_cifar.py")]
    t0 = time.perf_counter()
    # (Fashion-MNIST may be installed system-wide by Debian's package: those variants would really train)
    r = subprocess.run([sys.executable, "-m", "pytest", *mods, "-k", "not fashion", "--profile", "cpu", "--offline",
                        "-rs", "-p",
                        "no:cacheprovider", "--report-dir", str(tmp_path / "rep")], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < 60, took
    assert "data-dir=" + str(tmp_path / "cache" / "claimbench" / "data") in r.stdout  # the default data folder
    for cid in ("ltfn6_large_init_overconfident", "ltfn8_mnist_vgg_979_vs_973", "ltfn10_cifar_vgg_71pct"):
        line = next(x for x in r.stdout.splitlines() if x.startswith("SKIPPED") and cid in x)
        assert "not run (data)" in line and "downloading is off" in line and "looked at" in line, line
    # the store keeps no path of this machine: the data folder is written as <data-dir> (the header names it)
    recs = _records(tmp_path)
    reasons = [x["reason"] for x in recs if x.get("not_run_reason") == "data"]
    assert reasons and all(str(tmp_path) not in x for x in reasons), reasons
    assert all("<data-dir>" in x for x in reasons), reasons


def test_a_not_run_reason_names_the_data_and_cache_folders_by_role(tmp_path):
    from pathlib import Path

    from harness.summary import named_paths

    data, cache = tmp_path / "data", tmp_path / "c"
    roles = {"<data-dir>": data, "<cache-dir>": cache}
    got = named_paths(f"MNIST not found; looked at: {data}/mnist.npz, {cache}/w.pth, /usr/share/x", roles)
    assert got == "MNIST not found; looked at: <data-dir>/mnist.npz, <cache-dir>/w.pth, /usr/share/x"
    hub = named_paths(f"no weights at {Path.home()}/.cache/torch/hub/checkpoints/r.pth", roles)
    assert hub == "no weights at ~/.cache/torch/hub/checkpoints/r.pth"  # torch hub's cache: the home folder as ~
    assert named_paths("no folder", {"<data-dir>": None, "<cache-dir>": None}) == "no folder"


def test_a_wrong_data_folder_leaves_the_published_verdicts_intact(tmp_path):
    """A misconfigured run (a data folder without MNIST) into a copy of the published report: the decided verdict
    stays on the index, the page shows the failed attempt beside it. (A folder that does not exist at all is a
    usage error: tests/test_options.py.)"""
    import shutil

    published = ROOT / "reports" / "store" / "runs.jsonl"
    if not published.exists():
        import pytest

        pytest.skip("no published store in this checkout")
    (tmp_path / "rep" / "store").mkdir(parents=True)
    shutil.copy(published, tmp_path / "rep" / "store" / "runs.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(PYTHONPATH=str(ROOT), CLAIMBENCH_DEVICE="cpu", CLAIMBENCH_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_vgg_mnist.py"), "--profile",
                        "cpu", "--data-dir", str(tmp_path), "--report-dir", str(tmp_path / "rep"),
                        "-p", "no:cacheprovider", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and "not run (data)" in r.stdout, r.stdout + r.stderr
    index = (tmp_path / "rep" / "README.md").read_text()
    def cells(text):  # claim, posts' number, ours, verdict, decided by (the date moves with the new attempt)
        line = next(x for x in text.splitlines() if "[ltfn8_mnist_vgg_979_vs_973]" in x)
        return [c.strip() for c in line.split("|")[1:6]]

    assert cells(index) == cells((ROOT / "reports" / "README.md").read_text())
    assert "not run" not in cells(index)[3]
    page = (tmp_path / "rep" / "vgg_mnist.md").read_text()
    assert "latest attempt" in page and "could not run: not run (data)" in page


def test_bf16_session_trains_one_fp32_control_seed_per_family(tmp_path):
    """Under bf16 the first claim a family decides gets its first arm's first run again in fp32: stored with
    its own environment and role, named by the verdict, never among the runs that decide, shown on the page."""
    r = _run(tmp_path, "--profile", "cpu", "--precision", "bf16")
    assert "precision=bf16" in r.stdout, r.stdout + r.stderr
    recs = _records(tmp_path)
    runs = [x for x in recs if x["kind"] == "run"]
    controls = [x for x in runs if x.get("role") == "precision-control"]
    assert len(runs) == 7 and len(controls) == 1  # 3 variants x 2 seeds + one control for the family
    fp32 = "fp32 channels_last"  # the control differs from its twin in precision only, not in layout
    assert controls[0]["env"]["precision"] == fp32 and {x["env"]["precision"] for x in runs} == {fp32, "bf16"}
    decided = [v for v in recs if v["kind"] == "verdict" and v.get("precision_control")]
    assert len(decided) == 1
    pc = decided[0]["precision_control"]
    assert pc["fp32_run"] == controls[0]["run_id"] and pc["fp32_run"] not in decided[0]["arms"]["arm"]
    assert pc["bf16_run"] in decided[0]["arms"]["arm"]
    page = (tmp_path / "rep" / "params.md").read_text()
    assert "**precision control**" in page and "fp32 control" in page
    assert "(no autocast, channels_last memory like its twin)" in page
    assert "one fp32 control seed per family" in page  # declared in the deviation


ENV_TESTS = textwrap.dedent('''
    import pytest
    from harness import rulebook
    from harness.claims import Case
    from harness.device import precision
    from harness.profiles import Budget
    from harness.rulebook import Decision
    from harness.rules import AtLeast, M

    for variant, level in (("stays", 0.0), ("flips", 100.0)):
        rule = AtLeast(M("arm", "v"), level, stat="each")
        rulebook.RULES[("ltfn9_checkpoint_184mb", variant)] = {"cpu": Decision(rule), "full": Decision(rule)}
    B = {p: Budget(seeds=2) for p in ("smoke", "cpu", "full")}

    @pytest.mark.parametrize("case", [Case("ltfn9_checkpoint_184mb", B, v) for v in ("stays", "flips")], ids=str)
    def test_claim(case, claimbench):
        ctx = claimbench.start(case)
        # a metric that depends on the environment: +10 under bf16 ("stays" holds in both), 200 ("flips")
        shift = (10.0 if case.variant == "stays" else 200.0) if precision() == "bf16" else 0.0
        runs = [ctx.run("arm", s, lambda i=i: {"metrics": {"v": float(i) + shift}})
                for i, s in enumerate(ctx.seeds)]
        ctx.decide({"arm": runs})
''')


def test_environments_share_a_store_and_the_stability_page_shows_flips(tmp_path):
    """The same claims in two environments (fp32, bf16) into one store: nothing resumes across them, each
    environment's verdicts are derived from its own runs, and stability.md puts the flip first and names the
    metric that moved beyond its seed spread where the verdict held."""
    a = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", tests=ENV_TESTS)
    assert a.returncode == 1, a.stdout + a.stderr  # "flips" fails in fp32
    b = _run(tmp_path, "--profile", "cpu", "--precision", "bf16", tests=ENV_TESTS)
    assert b.returncode == 0, b.stdout + b.stderr
    recs = _records(tmp_path)
    runs = [r for r in recs if r["kind"] == "run" and r.get("role") != "precision-control"]
    assert len(runs) == 8 and len({r["env_hash"] for r in runs}) == 2  # 2 variants x 2 seeds x 2 environments
    page = (tmp_path / "rep" / "stability.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ltfn9_checkpoint_184mb")]
    assert len(rows) == 2 and "flips / **flips**" not in rows[0]
    assert rows[0].startswith("| ltfn9_checkpoint_184mb / flips") and "**flips**" in rows[0]
    assert "held · " in rows[0] and "failed · " in rows[0]  # a cell: the verdict in a word, the first number
    assert rows[1].startswith("| ltfn9_checkpoint_184mb / stays") and "| stable" in rows[1]
    assert "- ltfn9_checkpoint_184mb / stays: v[arm]: 10 = 14.1 seed sd" in page  # listed under the grid
    assert "1 flip, 1 stable" in page and "bf16" in page and "fp32" in page
    assert "**Left out of the grid**" in page and "- ltfn6_init_controlled: not run in the matrix" in page
    index = (tmp_path / "rep" / "README.md").read_text()
    assert "verdicts from 2 environments" in index and "(stability.md)" in index



def _verdict_lines(out: str) -> list[str]:
    lines = out.split("claimbench verdicts (profile", 1)[1].splitlines()[1:]
    return sorted(line for line in lines if line.startswith("ltfn"))


def test_xdist_controller_reports_once_with_every_workers_verdicts(tmp_path):
    """With -n 2 the verdict summary and the report come from the controller after both workers finish, and
    say what a serial run says (same verdicts and numbers; the report's rows equal up to dates)."""
    for side in ("serial", "par"):  # the controller imports no test module: it learns the demo's rules from here
        (tmp_path / side).mkdir()
        (tmp_path / side / "conftest.py").write_text(CLAIM_TESTS.split("\nB = {p:")[0])
    serial = _run(tmp_path / "serial", "--profile", "cpu", "--precision", "fp32")
    par = _run(tmp_path / "par", "--profile", "cpu", "--precision", "fp32", "-n", "2")
    assert "2 workers" in par.stdout, par.stdout + par.stderr
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in par.stdout
    assert _verdict_lines(par.stdout) == _verdict_lines(serial.stdout) and len(_verdict_lines(par.stdout)) == 4
    assert "report: " in par.stdout
    assert "not run in this session (not selected, or no test collected): paintings_resnet34_95pct" in par.stdout
    assert "transfer_from_scratch" in par.stdout.split("not run in this session")[1]
    assert "ltfn9_checkpoint_184mb" not in par.stdout.split("not run in this session")[1].splitlines()[0]

    def rows(d):  # the device line above the table differs (each of 2 workers on 1 of the 2 cores says so)
        return [line for line in (d / "rep" / "README.md").read_text().splitlines() if line.startswith("| ")]
    assert rows(tmp_path / "par") == rows(tmp_path / "serial")
    assert not list((tmp_path / "par" / "rep").glob(".report-*"))  # no half-built report left behind


def test_xdist_controller_prints_each_claim_line_as_workers_finish(tmp_path):
    """With -n 2 on a person's terminal the workers have none: each claim's line reaches the controller with the
    test's report and is printed there once, numbered across both workers, naming the worker and its runs."""
    (tmp_path / "conftest.py").write_text(CLAIM_TESTS.split("\nB = {p:")[0])
    r = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", "-n", "2", ci=False)
    assert "2 workers" in r.stdout, r.stdout + r.stderr
    # the published cpu verdicts give the costs: xdist's scheduler is claimbench's (harness.schedule)
    assert "claimbench: claims handed to the workers costliest first, by the published cpu runs' times" in r.stdout
    lines = [line for line in r.stdout.splitlines() if line.startswith("claimbench: [")]
    assert sorted(line.split("]")[0] for line in lines) == [f"claimbench: [{k}/4" for k in range(1, 5)], lines
    names = sorted(line.split("] ", 1)[1].split(":")[0] for line in lines)
    assert names == ["ltfn9_checkpoint_184mb-fails", "ltfn9_checkpoint_184mb-holds",
                     "ltfn9_checkpoint_184mb-undecided", "ltfn9_checkpoint_restore_roundtrip"], lines
    assert all(" of 2 workers: runs " in line and " min elapsed" in line for line in lines), lines
    assert any(" gw0 " in line for line in lines) or any(" gw1 " in line for line in lines)
    trained = [line for line in lines if "not run" not in line]
    assert trained and all("min left" in line for line in trained[1:] if "[1/" not in line), lines
    # a worker has no bars: each run it trains is a line on the controller's terminal, before its claim's line
    out = r.stdout.splitlines()
    shown = re.compile(r"gw[01]: \[ltfn9_checkpoint_184mb-\w+\] run \d+ trained in ")
    runs = [i for i, line in enumerate(out) if shown.match(line)]
    assert len(runs) == 6, r.stdout  # 3 variants x 2 seeds, each shown once
    for i in runs:
        name = out[i].split("[", 1)[1].split("]")[0]
        claim_line = next(k for k, line in enumerate(out) if line.startswith("claimbench: [") and f"] {name}:" in line)
        assert i < claim_line, r.stdout


VARY_TESTS = textwrap.dedent('''
    import pytest
    from harness import rulebook
    from harness.claims import Case
    from harness.profiles import Budget
    from harness.rulebook import Decision
    from harness.rules import AtLeast, M
    from harness.seeding import source_seed

    VARIES = ("init", "split")
    rulebook.RULES[("ltfn9_checkpoint_184mb", "v")] = {p: Decision(AtLeast(M("arm", "v"), 0.0, stat="each"))
                                                       for p in ("cpu", "full")}
    B = {p: Budget(seeds=3) for p in ("smoke", "cpu", "full")}

    @pytest.mark.parametrize("case", [Case("ltfn9_checkpoint_184mb", B, "v")], ids=str)
    def test_claim(case, claimbench):
        ctx = claimbench.start(case)
        cfg = {"vary": ctx.vary} if ctx.vary != "all" else {}
        # the split moves the metric by 10 per seed, the initialisation by 1
        def fn(s):
            return {"metrics": {"v": 10.0 * source_seed("split", s, ctx.vary) + source_seed("init", s, ctx.vary)}}
        runs = [ctx.run("arm", s, lambda s=s: fn(s), config=cfg) for s in ctx.seeds]
        ctx.decide({"arm": runs})
''')


def test_sources_of_variance_are_stored_beside_and_named_on_the_page(tmp_path):
    bad = _run(tmp_path, "--profile", "cpu", "--vary", "weather", tests=VARY_TESTS)
    assert bad.returncode == 4 and "unknown --vary 'weather'; valid values: all, init, split" in bad.stderr
    for vary in ("all", "init", "split", "order"):
        # seeds 0-2 by hand (exploratory: the split's effect reads as 10 per seed step)
        r = _run(tmp_path, "--profile", "cpu", "--precision", "fp32", "--vary", vary, "--seeds", "0-2",
                 tests=VARY_TESTS)
        assert r.returncode in (0, 5), r.stdout + r.stderr
    recs = _records(tmp_path)
    assert sum(x["kind"] == "verdict" for x in recs) == 1  # --vary runs decide nothing
    assert sorted((x["config"].get("vary", "all"), x["seed"]) for x in recs if x["kind"] == "run") == [
        (v, s) for v in ("all", "init", "split") for s in range(3)]  # order: this family does not isolate it
    page = (tmp_path / "rep" / "params.md").read_text()
    assert "**sources of variance**" in page and "v[arm]: split (sd 10 of 11 with every source varying)" in page


def test_the_main_command_writes_the_users_own_report_and_leaves_the_published_one_alone(tmp_path):
    """The README's main command (the cpu profile, no report folder given) on a copy of the checkout, for one cheap
    claim: the runs and the report go to results/, the published reports/ stays byte for byte, and the session
    ends by comparing its verdicts with the published ones. Then the same claim again: resumed, not retrained."""
    import hashlib
    import shutil

    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("harness", "fixtures", "benchmarks", "reports"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "locks"))
    for name in ("conftest.py", "tox.ini"):
        shutil.copy(ROOT / name, copy / name)

    def digest(folder):
        return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    before = digest(copy / "reports")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(PYTHONPATH=str(copy), CLAIMBENCH_DEVICE="cpu", CLAIMBENCH_OFFLINE="1",
               CLAIMBENCH_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--profile", "cpu", "--claims", "ltfn9_checkpoint_184mb",
           "--benchmark-disable", "-p", "no:cacheprovider", "-q"]
    r = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert "compared with the published report:" in r.stdout, r.stdout
    assert (copy / "results" / "README.md").exists() and (copy / "results" / "comparison.md").exists()
    assert digest(copy / "reports") == before
    runs = [json.loads(x) for x in (copy / "results" / "store" / "runs.jsonl").read_text().splitlines()]
    again = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == r.returncode, again.stdout + again.stderr
    runs2 = [json.loads(x) for x in (copy / "results" / "store" / "runs.jsonl").read_text().splitlines()]
    assert sum(x["kind"] == "run" for x in runs2) == sum(x["kind"] == "run" for x in runs)  # resumed, its own
    assert digest(copy / "reports") == before


SLOW_TESTS = textwrap.dedent('''
    import time
    import pytest
    from harness import rulebook
    from harness.claims import Case
    from harness.profiles import Budget
    from harness.rulebook import Decision
    from harness.rules import AtLeast, M

    for variant in ("quick", "slow"):
        rule = AtLeast(M("arm", "v"), 0.0, stat="each")
        rulebook.RULES[("ltfn9_checkpoint_184mb", variant)] = {"cpu": Decision(rule), "full": Decision(rule)}
    B = {p: Budget(seeds=1) for p in ("smoke", "cpu", "full")}

    @pytest.mark.parametrize("case", [Case("ltfn9_checkpoint_184mb", B, v) for v in ("quick", "slow")], ids=str)
    def test_claim(case, claimbench):
        ctx = claimbench.start(case)
        def fn():
            if case.variant == "slow":
                time.sleep(120)
            return {"metrics": {"v": 1.0}}
        ctx.decide({"arm": [ctx.run("arm", s, fn) for s in ctx.seeds]})
''')


def test_sigterm_ends_with_the_summary_and_the_report(tmp_path):
    """A scheduler's (or tox's) SIGTERM mid-session: the verdicts so far are printed and the report is rebuilt
    from what is stored, as after Ctrl-C."""
    import signal
    import time

    (tmp_path / "test_claims_demo.py").write_text(SLOW_TESTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAIMBENCH_DEVICE": "cpu", "CLAIMBENCH_OFFLINE": "1"}
    p = subprocess.Popen([sys.executable, "-m", "pytest", str(tmp_path / "test_claims_demo.py"), "-p", "harness.plugin",
                          "--profile", "cpu", "--precision", "fp32", "--report-dir", str(tmp_path / "rep"), "-p",
                          "no:cacheprovider"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    store = tmp_path / "rep" / "store" / "runs.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (store.exists() and '"verdict"' in store.read_text()):
        time.sleep(0.2)
    time.sleep(1.0)  # the slow claim is training now
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 2, out  # pytest's "interrupted"
    assert "claimbench verdicts" in out and "ltfn9_checkpoint_184mb-quick" in out, out
    assert (tmp_path / "rep" / "README.md").exists()
