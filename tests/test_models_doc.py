"""docs/models.md is what the registry entries say (scripts/models_doc.py writes it)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

from alienstay.runtime.registry import all_registries


def test_models_page_is_what_the_registries_say():
    done = subprocess.run([sys.executable, "scripts/models_doc.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    page = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    for registry in all_registries():  # every built-in entry and every model it names is on the page
        if registry.kind.startswith("preset"):
            continue
        for entry in registry.builtin():
            assert f"| `{entry.name}` |" in page, entry.name
            for weights in (getattr(entry, "weights", None) or {}).values():
                assert weights.model in page and weights.licence in page, weights
