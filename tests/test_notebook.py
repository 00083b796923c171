"""The story notebook runs top to bottom on the real sample photos, through the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from alienstay.workspace.layout import Workspace

REPO = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location("run_notebook", REPO / "scripts" / "run_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_executes_every_stage_on_the_samples(samples_dir: Path, tmp_path: Path, monkeypatch) -> None:
    workspace = tmp_path / "ws"
    monkeypatch.setenv("ALIENSTAY_INPUT", str(samples_dir))
    monkeypatch.setenv("ALIENSTAY_WORKSPACE", str(workspace))
    monkeypatch.setenv("ALIENSTAY_MODEL", "offline")
    monkeypatch.setenv("ALIENSTAY_EDIT_IMAGES", "5")
    import nbformat

    # nbclient raises CellExecutionError if any cell fails, naming the cell.
    executed = load_runner().run_notebook(REPO / "notebooks" / "alienstay.ipynb", tmp_path / "out.ipynb", timeout=600)
    notebook = nbformat.read(executed, as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    tags = Workspace(workspace).read_tags()
    assert set(tags["model_id"]) == {"offline:efficientnet-lite1+all-MiniLM-L6-v2"}
    assert tags["image_id"].nunique() == 8
    edits = pd.read_parquet(workspace / "edits.parquet")
    assert set(edits["recipe"]) >= {"time_of_day", "lights"}
    assert (workspace / "report" / "REPORT.md").read_text().count("## ") >= 5
    assert notebook.metadata["alienstay"]["source_hash"] == load_runner().source_hash()
    assert not [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


def test_committed_notebook_has_outputs_made_by_the_current_code() -> None:
    """Reads the committed file only (the test above executes the notebook once per suite)."""
    import nbformat

    runner = load_runner()
    path = REPO / "notebooks" / "alienstay.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    fix = f"regenerate it with `{runner.REGENERATE}` (python scripts/run_notebook.py notebooks/alienstay.ipynb) and commit it"
    missing = [i for i, c in enumerate(code, 1) if not c.get("outputs")]
    assert not missing, f"code cells {missing} of {path.name} have no outputs: {fix}"
    assert not [o for c in code for o in c["outputs"] if o.output_type == "error"], f"{path.name} holds an error: {fix}"
    recorded = notebook.metadata.get("alienstay", {}).get("source_hash")
    current = runner.source_hash()
    assert recorded == current, (
        f"{path.name} was executed with other package sources (recorded {recorded}, src/alienstay/** now {current}): {fix}"
    )
    assert path.stat().st_size < 5_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB: images must be downscaled"
