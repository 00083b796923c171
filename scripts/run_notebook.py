"""Execute the story notebook into the workspace (`make notebook`), leaving the source clean.

The committed notebook has no outputs: its figures show third-party photos, which the
project does not redistribute. The executed copy lands beside the workspace it made.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def run_notebook(source: Path, target: Path, timeout: int = 3600) -> Path:
    notebook = nbformat.read(source, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "notebooks" / "alienstay.ipynb"
    workspace = Path(os.environ.setdefault("ALIENSTAY_WORKSPACE", str(REPO / "runs" / "notebook")))
    print(f"executed -> {run_notebook(source, workspace / 'alienstay.ipynb')}")
