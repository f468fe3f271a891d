"""The decision procedure's declared version, tied to its code.

Every verdict's identity (``harness.rulebook.identity``) carries ``DECISION_VERSION``, and the confirmatory
seeds are drawn from identities, so a new version re-draws every claim's deciding seeds: no verdict of one
decision procedure is ever carried over to another. ``CODE_DIGEST`` is the digest of the decision code
(``DECISION_MODULES``); ``tests/test_decision_version.py`` and ``python -m harness.report --verify`` fail when
the code no longer matches it, which forces a change of the code to come with a new version.

The digest reads what the code does, not how it is laid out: every top-level statement of the decision
modules without docstrings (comments and wording may change freely), as a sorted multiset, so a definition
may move from one decision module to another without a new version; imports between decision modules only
make such a definition visible and are left out unless they rename it (``import x as y`` is kept), and
every other import counts once. A changed statement, a renamed binding or a new import from outside the
decision code changes the digest.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

DECISION_VERSION = "3"
# version 1 (no field in older verdict records): Holm across the profile, refutation only when powered
# version 2: each row at its own level, refuted by an interval that excludes the claim (digest df55661a3c502097)
# version 3: adds ``Share``, a share of 0/1 outcomes decided by the exact binomial interval (issue 20)
CODE_DIGEST = "5d9996bdfcb8203f"
DECISION_MODULES = ("rulebase.py", "rules.py", "stats.py", "decide.py", "verdict.py")
HERE = Path(__file__).resolve().parent


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _internal(module: str | None, name: str = "") -> bool:
    """Whether an import names a decision module (``harness.rules``, or ``rules`` from ``harness``)."""
    mods = {m[:-3] for m in DECISION_MODULES}
    if module == "harness":
        return name in mods
    return module is not None and module.startswith("harness.") and module[len("harness."):] in mods


def statements(root: Path = HERE) -> list[str]:
    """The decision code as the digest reads it (see the module text), one dumped statement per entry."""
    body: list[str] = []
    imports: set[str] = set()
    for name in DECISION_MODULES:
        tree = _strip_docstrings(ast.parse((root / name).read_text(), filename=name))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    inner = _internal(node.module, alias.name) or _internal(node.module)
                    if inner and (alias.asname is None or alias.asname == alias.name):
                        continue  # only makes a decision-code definition visible here
                    imports.add(f"from {node.module} import {alias.name} as {alias.asname or alias.name}")
                continue
            if isinstance(node, ast.Import):
                imports.update(f"import {a.name} as {a.asname or a.name}" for a in node.names)
                continue
            body.append(ast.dump(node, include_attributes=False))
    return sorted(imports) + sorted(body)


def code_digest(root: Path = HERE) -> str:
    """The digest of the decision code as it is on disk."""
    h = hashlib.sha256()
    for entry in statements(root):
        h.update(entry.encode() + b"\0")
    return h.hexdigest()[:16]


def mismatch() -> str:
    """'' when the decision code is the one its version declares, else what to do."""
    have = code_digest()
    if have == CODE_DIGEST:
        return ""
    return (f"the decision code ({', '.join('harness/' + m for m in DECISION_MODULES)}) has digest {have}, but "
            f"decision version {DECISION_VERSION} declares {CODE_DIGEST}: a change to how verdicts are decided needs "
            f"a new DECISION_VERSION in harness/version.py (with CODE_DIGEST = {have!r}); every claim then meets "
            f"new confirmatory seeds")
