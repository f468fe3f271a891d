"""The import-cycle check that lint runs finds a cycle, also through an import inside a function."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_imports", ROOT / "scripts" / "check_imports.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    for pkg in check.PACKAGES:
        (tmp_path / pkg).mkdir()
    (tmp_path / "harness" / "a.py").write_text("from harness import b\n")
    (tmp_path / "harness" / "b.py").write_text("def f():\n    from harness.a import x\n")
    (tmp_path / "harness" / "c.py").write_text("import harness.a\n")
    found = check.cycles(check.graph(tmp_path))
    assert found == [["harness.a", "harness.b", "harness.a"]]


def test_the_project_has_no_import_cycle():
    assert check.cycles(check.graph()) == []
