"""The story notebook runs top to bottom on the real sample photos, through the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from alienstay.workspace import Workspace

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
    assert set(tags["model_id"]) == {"offline:efficientnet-lite0+all-MiniLM-L6-v2"}
    assert tags["image_id"].nunique() == 8
    edits = pd.read_parquet(workspace / "edits.parquet")
    assert set(edits["recipe"]) >= {"time_of_day", "lights"}
    assert (workspace / "report" / "REPORT.md").read_text().count("## ") >= 5
    # the committed notebook stays without outputs (its figures would show third-party photos)
    source = nbformat.read(REPO / "notebooks" / "alienstay.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code")
