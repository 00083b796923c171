"""The code's shape: every module documented where docs/layout.md says, no import circles, no climbs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "src" / "alienstay"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_layout_page_is_what_src_holds():
    done = run_script("scripts/layout_doc.py", "--check")
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", (REPO / "docs" / "layout.md").read_text(encoding="utf-8"), re.M))
    modules = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               if path.name != "__init__.py" and path.parent != PACKAGE}
    assert listed == modules


def test_every_module_says_what_it_holds_and_stays_small():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert (ast.get_docstring(ast.parse(text)) or "").strip(), f"{path.relative_to(REPO)} has no docstring"
        assert text.count("\n") < 400, f"{path.relative_to(REPO)} has grown past 400 lines: split it by concern"


def test_no_import_circle_no_climb_and_every_package_in_a_layer():
    done = run_script("scripts/import_graph.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "circles: none" in done.stdout and "climbs: none" in done.stdout and "not in a layer: none" in done.stdout


def test_a_planted_circle_and_climb_are_found(tmp_path):
    """The check itself can fail: a package with a loop and an upward import is reported."""
    sys.path.insert(0, str(REPO / "scripts"))
    import import_graph

    root = tmp_path / "planted"
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    for folder in (root, root / "low", root / "high"):
        (folder / "__init__.py").write_text('"""x"""\n')
    (root / "low" / "a.py").write_text("import planted.low.b\nimport planted.high.c\n")
    (root / "low" / "b.py").write_text("import planted.low.a\n")
    (root / "high" / "c.py").write_text('"""x"""\n')
    sys.path.insert(0, str(tmp_path))
    try:
        import grimp

        graph = grimp.build_graph("planted")
        assert import_graph.circles(graph) == [["planted.low.a", "planted.low.b"]]
        original = import_graph.PACKAGE, import_graph.LAYERS
        import_graph.PACKAGE, import_graph.LAYERS = "planted", ("high", "low")
        try:
            assert any("planted.low.a -> planted.high.c" in line for line in import_graph.climbs(graph))
        finally:
            import_graph.PACKAGE, import_graph.LAYERS = original
    finally:
        sys.path.remove(str(tmp_path))
