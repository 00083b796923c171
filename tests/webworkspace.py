"""A small synthetic workspace for the gallery tests: catalog, tags, clusters, edits and tiny JPEGs.

The tag probabilities are chosen by hand so the expected search order is known:
with words "pool" + "night", only `h1/a.jpg` (0.9 + 0.8) and `h2/b.jpg` (0.7 + 0.9) have
both words *selected*; `h1/c.jpg` has pool but night unselected, `h2/d.jpg` has no pool.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from alienstay.workspace.catalog import conform

# image -> {(facet, tag): (prob, selected)}
TAGS = {
    "h1/a.jpg": {("place", "pool"): (0.9, True), ("place", "bedroom"): (0.1, False),
                 ("light", "night"): (0.8, True), ("light", "bright"): (0.2, False)},
    "h2/b.jpg": {("place", "pool"): (0.7, True), ("place", "bedroom"): (0.3, False),
                 ("light", "night"): (0.9, True), ("light", "bright"): (0.1, False)},
    "h1/c.jpg": {("place", "pool"): (0.95, True), ("place", "bedroom"): (0.05, False),
                 ("light", "night"): (0.5, False), ("light", "bright"): (0.5, False)},
    "h2/d.jpg": {("place", "pool"): (0.2, False), ("place", "bedroom"): (0.8, True),
                 ("light", "night"): (0.1, False), ("light", "bright"): (0.9, True)},
}
POOL_NIGHT = ["h1/a.jpg", "h2/b.jpg"]
POOL = ["h1/c.jpg", "h1/a.jpg", "h2/b.jpg"]
COLOURS = {"h1/a.jpg": (20, 60, 160), "h2/b.jpg": (30, 120, 90), "h1/c.jpg": (200, 160, 40), "h2/d.jpg": (160, 40, 60)}


def jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path


def write_catalog(root: Path, outside_file: Path | None = None) -> None:
    rows = []
    for image_id, colour in COLOURS.items():
        prepared = jpeg(root / "prepared" / image_id.replace("/", "_"), colour)
        rows.append({"image_id": image_id, "hotel_id": image_id.split("/")[0], "chain_id": "7",
                     "source": "folder", "prepared_path": str(prepared), "status": "ok", "width": 64, "height": 48})
    rows.append({"image_id": "h3/broken.jpg", "hotel_id": "h3", "status": "rejected", "reason": "corrupt"})
    if outside_file is not None:  # a catalog row naming a file outside the workspace must not be served
        rows.append({"image_id": "h3/evil.jpg", "hotel_id": "h3", "prepared_path": str(outside_file), "status": "ok"})
    conform(pd.DataFrame(rows)).to_parquet(root / "catalog.parquet", index=False)


def write_tags(root: Path) -> None:
    rows = [
        {"image_id": image_id, "facet": facet, "tag": tag, "score": 0.25, "prob": prob, "selected": selected,
         "model_id": "tiny", "vocab_hash": "0" * 16}
        for image_id, words in TAGS.items()
        for (facet, tag), (prob, selected) in words.items()
    ]
    frame = pd.DataFrame(rows).astype({"score": "float32", "prob": "float32"})
    frame.to_parquet(root / "tags.parquet", index=False)


def write_clusters(root: Path) -> None:
    pd.DataFrame(
        {"image_id": list(TAGS), "cluster": [0, 0, 0, 1], "method": "kmeans", "k": 2, "features": "tags",
         "name": ["pool + night"] * 3 + ["bedroom"], "x": [0.0, 0.1, 0.2, 3.0], "y": [0.0, 0.1, 0.0, 2.0]}
    ).to_parquet(root / "clusters.parquet", index=False)


def write_edits(root: Path, outside_file: Path | None = None) -> None:
    rows = []
    for i, (value, verdict) in enumerate([("dusk", "faithful"), ("night", "too_strong")]):
        output = jpeg(root / "edits" / f"e{i}.jpg", (10 + 100 * i, 10, 80))
        rows.append({"edit_id": f"e{i}", "image_id": "h1/a.jpg", "recipe": "time_of_day", "parameter": "time",
                     "value": value, "method": "instruct-pix2pix", "model_id": "tiny", "seed": 0,
                     "output_path": str(output), "source_path": str(root / "prepared" / "h1_a.jpg"),
                     "structure_ssim": 0.8 - 0.4 * i, "edge_ssim": 0.7, "lpips": 0.2 + 0.3 * i,
                     "dino_distance": None, "outside_mask_change": None, "clip_direction": 0.1,
                     "verdict": verdict, "verdict_reason": "" if i == 0 else "structure ssim 0.40 < 0.5"})
    if outside_file is not None:
        rows.append({**rows[0], "edit_id": "evil", "output_path": str(outside_file)})
    pd.DataFrame(rows).to_parquet(root / "edits.parquet", index=False)


def build(root: Path, outside_file: Path | None = None) -> Path:
    """The full workspace: every table the gallery reads."""
    root.mkdir(parents=True, exist_ok=True)
    write_catalog(root, outside_file)
    write_tags(root)
    write_clusters(root)
    write_edits(root, outside_file)
    return root
