"""The decision procedure's declared version, tied to its code.

Every verdict's identity (``harness.rulebook.identity``) carries ``DECISION_VERSION``, and the confirmatory
seeds are drawn from identities, so a new version re-draws every claim's deciding seeds: no verdict of one
decision procedure is ever carried over to another. ``CODE_DIGEST`` is the digest of the decision code
(``DECISION_MODULES``: their syntax trees without docstrings, so comments and wording may change freely);
``tests/test_decision_version.py`` and ``python -m harness.report --verify`` fail when the code no longer
matches it, which forces a change of the code to come with a new version.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

DECISION_VERSION = "2"
# version 1 (no field in older verdict records): Holm across the profile, refutation only when powered
CODE_DIGEST = "00570fb718c1fd78"
DECISION_MODULES = ("rules.py", "stats.py", "decide.py", "verdict.py")
HERE = Path(__file__).resolve().parent


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_digest(root: Path = HERE) -> str:
    """The digest of the decision code as it is on disk."""
    h = hashlib.sha256()
    for name in DECISION_MODULES:
        tree = _strip_docstrings(ast.parse((root / name).read_text(), filename=name))
        h.update(name.encode() + b"\0" + ast.dump(tree, include_attributes=False).encode() + b"\0")
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
