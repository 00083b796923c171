"""The docs' figures from the sample photos (`make figures`): run the pipeline, downscale, copy.

    python scripts/make_figures.py [--input DIR] [--workspace DIR] [--out docs/figures]

Runs `alienstay demo` on the sample photos into a temporary workspace (or reuses --workspace
when it already holds a finished demo), then writes into docs/figures/ downscaled copies of the
figures that show photos (JPEG, a few hundred KB each: the tag examples grid, the cluster map
with thumbnails, each recipe's edit grid with the guard's verdicts) and the charts, and prints
the guard's verdicts per recipe. The photos are the Unsplash samples (their attribution is in
docs/figures/ATTRIBUTION.md); the photo files themselves are never copied.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "unsplash"
PHOTO_FIGURES = {"tags_examples.png": 900, "clusters_map.png": 1100}  # report file -> width in docs/
EDIT_GRID_WIDTH = 760
CHARTS = ["tags_informativeness.png", "dataset_images_per_chain.png"]
MAX_BYTES = 400_000


def run_demo(samples: Path, workspace: Path) -> None:
    """The same command a reader runs (`make demo INPUT=...`), into the given workspace."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    command = [sys.executable, "-m", "alienstay.cli.commands", "demo", "--workspace", str(workspace), "--input", str(samples)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env, cwd=REPO)


def save_downscaled(source: Path, target: Path, width: int) -> Path:
    """A JPEG no wider than `width`; quality, then width, lowered until it fits MAX_BYTES."""
    with Image.open(source) as original:
        original = original.convert("RGB")
    while True:
        image = original
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        for quality in (85, 75, 65):
            image.save(target, "JPEG", quality=quality, optimize=True, progressive=True)
            if target.stat().st_size <= MAX_BYTES:
                return target
        width = int(width * 0.8)


def verdicts(workspace: Path) -> str:
    import duckdb

    return str(duckdb.sql(
        "select recipe, method, value, verdict, count(*) as edits, round(median(structure_ssim), 2) as structure_median, "
        "round(min(structure_ssim), 2) as structure_min, round(min(edge_ssim), 2) as edge_min "
        f"from '{workspace / 'edits.parquet'}' group by all order by all"
    ))


def make_figures(workspace: Path, out: Path) -> list[Path]:
    report = workspace / "report"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, width in PHOTO_FIGURES.items():
        if (report / name).exists():
            written.append(save_downscaled(report / name, out / Path(name).with_suffix(".jpg").name, width))
    for grid in sorted(report.glob("edits_*.png")):
        written.append(save_downscaled(grid, out / grid.with_suffix(".jpg").name, EDIT_GRID_WIDTH))
    for name in CHARTS:
        if (report / name).exists():
            (out / name).write_bytes((report / name).read_bytes())
            written.append(out / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=Path(os.environ.get("ALIENSTAY_INPUT", SAMPLES)))
    parser.add_argument("--workspace", type=Path, help="reuse this workspace when it holds a finished demo")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    args = parser.parse_args()
    if not args.input.is_dir():
        sys.exit(f"no photo folder at {args.input}: pass --input DIR (the Unsplash samples live in ../shared/samples/unsplash)")
    with tempfile.TemporaryDirectory(prefix="alienstay-figures-") as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        if not (workspace / "report" / "REPORT.md").exists():
            run_demo(args.input, workspace)
        for path in make_figures(workspace, args.out):
            print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size / 1024:.0f} KB)")
        if (workspace / "edits.parquet").exists():
            print("\nthe guard's verdicts per recipe:\n" + verdicts(workspace))


if __name__ == "__main__":
    main()
