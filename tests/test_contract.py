"""The claim API's contract, proved from outside: the family module that CONTRIBUTING.md shows (one Case, one
rule, a toy measurement), written to a temporary folder, is collected, decided on its confirmatory seeds,
stored and rendered by the plugin, with no file of the repository touched."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _example() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    m = re.search(r"<!-- example: outside-family -->\s*```python\n(.*?)```", text, re.S)
    assert m, "CONTRIBUTING.md lost its outside-family example"
    return m.group(1)


def _tree_digest() -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for d in ("harness", "benchmarks", "fixtures", "reports") for p in sorted((ROOT / d).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_a_family_from_outside_is_collected_decided_stored_and_rendered(tmp_path):
    (tmp_path / "test_toy_family.py").write_text(_example())
    before = _tree_digest()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMBENCH_")}
    env.update(PYTHONPATH=str(ROOT), CLAIMBENCH_DEVICE="cpu", CLAIMBENCH_OFFLINE="1",
               CLAIMBENCH_HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_toy_family.py"), "-p", "harness.plugin",
                        "--profile", "cpu", "--precision", "fp32", "--report-dir", str(tmp_path / "rep"),
                        "-p", "no:cacheprovider", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "1 passed" in out, out[-3000:]
    recs = [json.loads(x) for x in (tmp_path / "rep" / "store" / "runs.jsonl").read_text().splitlines()]
    runs = [x for x in recs if x["kind"] == "run"]
    verdicts = [x for x in recs if x["kind"] == "verdict"]
    assert len(runs) == 5 and len(verdicts) == 1, recs
    v = verdicts[0]
    assert v["claim_id"] == "toy_two_uniforms_sum_above_half" and v["verdict"] == "reproduced", v
    assert not v.get("exploratory") and sorted(v["arms"]["draw"]) == sorted(r["run_id"] for r in runs)
    assert sorted(r["seed"] for r in runs) != [0, 1, 2, 3, 4]  # confirmatory: drawn from the rule's identity
    page = (tmp_path / "rep" / "toy.md").read_text()
    assert "toy_two_uniforms_sum_above_half" in page and "A toy family from outside the package" in page
    assert "toy_two_uniforms_sum_above_half" in (tmp_path / "rep" / "README.md").read_text()
    assert _tree_digest() == before  # nothing of the repository was written


def test_family_modules_do_not_branch_on_a_claim_id_or_a_profile_name():
    """A claim's differences live in its Case (its function and arguments) and its rule, not in branches."""
    pattern = re.compile(r"(\bcid\b|claim_id|\.variant)\s*(==|!=|\bin\b|\bnot in\b)|\.profile\s*(==|!=|\bin\b)|"
                         r"profile\.name\s*(==|!=|\bin\b)|claim_id\.(endswith|startswith)\(")
    hits = [f"{p.name}:{i}: {line.strip()}" for p in sorted((ROOT / "benchmarks").glob("test_*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
