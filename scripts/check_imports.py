"""Fail on an import cycle among the project's packages (harness, fixtures, benchmarks).

Every import counts, also one inside a function (it hides a cycle, it does not remove it). Run by
``tox -e lint`` and so by CI:

    python scripts/check_imports.py
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "fixtures", "benchmarks")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out.update(n for n in names if n in known)
    return out


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in sorted((root / pkg).glob("*.py"))]
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): imports(p, known) - {module_name(p, root)} - set(PACKAGES) for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search (each reported once, from its smallest module)."""
    found, seen = [], set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(g.get(node, ())):
            if nxt == start:
                key = tuple(sorted(path))
                if key not in seen:
                    seen.add(key)
                    found.append(path + [start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])

    for start in sorted(g):
        walk(start, start, [start])
    return found


def main() -> int:
    found = cycles(graph())
    for c in found:
        print("import cycle: " + " -> ".join(c), file=sys.stderr)
    if not found:
        print(f"no import cycle among {', '.join(PACKAGES)}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
