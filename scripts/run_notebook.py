"""Execute the story notebook (`make notebook`): regenerated IN PLACE, outputs included.

The committed notebook carries its outputs (figures downscaled to JPEG, a few MB at most) so
a reader sees every stage without running anything; the photos it shows are the Unsplash
samples (credits in docs/figures/ATTRIBUTION.md). Its metadata records a hash of the package's
sources (src/alienstay/**): tests/test_notebook.py fails when the code changed since, and says
to run `make notebook`. The workspace is a fresh temporary folder unless ALIENSTAY_WORKSPACE
names one, so the outputs never depend on an older run's leftovers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "alienstay.ipynb"
PACKAGE = REPO / "src" / "alienstay"
REGENERATE = "make notebook"  # the command every message about a stale notebook names
MAX_IMAGE_WIDTH = 900


def source_hash(package: Path = PACKAGE) -> str:
    """sha256 over the package's files (relative path and bytes), caches and bytecode left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        relative = path.relative_to(package)
        if "__pycache__" in relative.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def downscale_images(notebook: nbformat.NotebookNode, width: int = MAX_IMAGE_WIDTH) -> None:
    """Every PNG output becomes a JPEG at most `width` wide: the committed file stays small."""
    from PIL import Image

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            with Image.open(io.BytesIO(base64.b64decode(data["image/png"]))) as image:
                image = image.convert("RGB")
                if image.width > width:
                    image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=80, optimize=True)
            del data["image/png"]
            data["image/jpeg"] = base64.b64encode(buffer.getvalue()).decode()
            metadata = output.setdefault("metadata", {})
            if "image/png" in metadata:  # a display width asked for in the cell stays
                metadata["image/jpeg"] = metadata.pop("image/png")


def run_notebook(source: Path, target: Path, timeout: int = 3600) -> Path:
    notebook = nbformat.read(source, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(REPO)}}).execute()
    downscale_images(notebook)
    notebook.metadata["alienstay"] = {"source_hash": source_hash(), "regenerate": REGENERATE}
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else NOTEBOOK
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source  # in place by default
    with tempfile.TemporaryDirectory(prefix="alienstay-notebook-") as tmp:
        os.environ.setdefault("ALIENSTAY_WORKSPACE", str(Path(tmp) / "ws"))
        print(f"executed -> {run_notebook(source, target)} (workspace {os.environ['ALIENSTAY_WORKSPACE']})")
