"""The claims catalogue document is generated from the code and kept in the repository; no reference points
outside the repository."""
import re
from pathlib import Path

from harness import catalogue
from harness.claims import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent


def test_docs_claims_md_is_what_the_catalogue_and_rulebook_give():
    text = (ROOT / "docs" / "claims.md").read_text()
    assert text == catalogue.render(), "docs/claims.md is stale: python -m harness.catalogue > docs/claims.md"
    for claim in CATALOGUE.values():
        assert f"### `{claim.id}`" in text and claim.posts_value in text


def test_no_reference_to_documents_outside_the_repository():
    """The shared CLAIMS.md and STATISTICS.md the project was built from are not in the repository; code and
    docs cite docs/claims.md and docs/statistics.md instead."""
    files = [p for d in ("harness", "fixtures", "benchmarks", "tests", "scripts", "docs")
             for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".md", ".sh")]
    files += [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "tox.ini"]
    pattern = re.compile(r"(?<![\w/])(CLAIMS|STATISTICS)\.md")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files if p.is_file() and p != Path(__file__)
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
